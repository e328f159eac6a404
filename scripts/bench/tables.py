#!/usr/bin/env python3
"""tables.py cache|mount RESULTS.jsonl: the markdown tables of docs/BENCHMARKS.md from the JSON
lines scripts/bench/cache or scripts/bench/mount printed."""
import json
import statistics
import sys

kind, path = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path) if l.startswith("{")]
MiB = 1 << 20


def rounds(values):
    return " / ".join(f"{v:.0f}" for v in values)


def cache():
    per = {}
    for r in rows:
        if "rep" in r:
            per.setdefault(r["what"], []).append(r)
    raw = per["raw-fetcher"]
    print("| tool | MB/s per round | median MB/s | vs raw Fetcher (median of per-round ratios) | peak RSS |")
    print("|---|---|---:|---:|---:|")
    def line(label, rs, key="MBps", rss=True):
        v = [r[key] for r in rs]
        ratio = statistics.median(r[key] / q["MBps"] for r, q in zip(rs, raw))
        peak = f"{max(r['peak_rss_bytes'] for r in rs) / MiB:.0f} MiB" if rss and "peak_rss_bytes" in rs[0] else "–"
        print(f"| {label} | {rounds(v)} | {statistics.median(v):.0f} | {ratio:.2f} | {peak} |")
    line("raw Fetcher (`weightfs-bench fetch`, 4 shards in turn, 16 streams)", raw)
    line("raw Fetcher + `sync` of the 4 files (same bytes made durable)", raw, "MBps_with_sync", rss=False)
    line("**`weightfs preload`** (fresh cache dir)", per["preload"])
    line("preload, diag: fdatasync a no-op (LD_PRELOAD)", per["preload (diag: fdatasync no-op)"], rss=False)
    line("`rclone copy` (defaults: 4 transfers × 4 streams)", per["rclone-copy"])
    d = next(r for r in rows if r.get("what") == "demand")
    print()
    print(f"Demand probe: {d['demand_read_ms']['n']} reads in {d['rounds']} preload rounds "
          f"(preload rate in those rounds: {rounds(d['preload_MBps_per_round'])} MB/s; reads taken at "
          f"{d['preload_progress_at_read']['p50'] * 100:.0f} % (median) of the preload).")
    print()
    print("| 4 KiB read / chunk GET | n | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    def lat(label, s):
        print(f"| {label} | {s['n']} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['max']:.1f} |")
    lat("one chunk (8 MiB) fetched by the Fetcher on the idle link", d["idle_chunk_fetch_ms"])
    lat("4 KiB demand read through an idle cache", d["idle_demand_read_ms"])
    lat("**4 KiB demand read of an absent offset during the preload**", d["demand_read_ms"])
    lat("… of which: read issued → its chunk's GET starts", d["demand_queue_wait_ms"])
    lat("… its GET starts → first byte", d["demand_get_ttfb_ms"])
    lat("… first byte → read returns (its 4 KiB written)", d["demand_after_first_byte_ms"])
    lat("the demand GET (read's 256 KiB-aligned offset → chunk end), start → last byte", d["demand_get_ms"])
    lat("the preload's own chunk GETs in those rounds", d["preload_chunk_get_ms"])


def mount():
    def sel(**kw):
        return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
    for link in ("unshaped", "shaped"):
        raw = sel(test="seq", mode="cold", link=link, tool="raw Fetcher")
        print(f"**Cold, {link}** (`dd bs=1M`, wall time incl. open)\n")
        print("| tool | MB/s per round | median | vs raw Fetcher (median of per-round ratios) |")
        print("|---|---|---:|---:|")
        tools = []
        for r in rows:
            if r.get("test") == "seq" and r.get("mode") == "cold" and r["link"] == link and r["tool"] not in tools:
                tools.append(r["tool"])
        for t in tools:
            rs = sel(test="seq", mode="cold", link=link, tool=t)
            v = [r["MBps"] for r in rs]
            ratio = statistics.median(r["MBps"] / q["MBps"] for r, q in zip(rs, raw))
            label = f"**{t}**" if t == "weightfs" else t
            print(f"| {label} | {rounds(v)} | {statistics.median(v):.0f} | {ratio:.2f} |")
        print()
    cat = sel(test="seq", mode="warm", tool="cat of the cache data file")
    print("**Warm** (cache on disk, page cache dropped, fresh mount; shaped link, nothing fetched)\n")
    print("| tool | MB/s per round | median | vs `cat` of the data file (median of per-round ratios) | bytes fetched |")
    print("|---|---|---:|---:|---:|")
    for t in ("cat of the cache data file", "weightfs", "rclone", "weightfs (diag: bdi read_ahead_kb=1024)"):
        rs = sel(test="seq", mode="warm", tool=t)
        if not rs:
            continue  # a diagnostic the run skipped (DIAG=0)
        v = [r["MBps"] for r in rs]
        ratio = statistics.median(r["MBps"] / q["MBps"] for r, q in zip(rs, cat))
        fetched = max(r.get("fetched_bytes") or 0 for r in rs)
        label = f"**{t}**" if t == "weightfs" else t
        print(f"| {label} | {rounds(v)} | {statistics.median(v):.0f} | {ratio:.2f} | {fetched if t != 'cat of the cache data file' else '–'} |")
    print()
    print("**200 random 4 KiB reads at uncached offsets** (2 rounds × 100, fresh cache + mount each, one read at a time)\n")
    print("| link | tool | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in sel(test="random-4k"):
        print(f"| {r['link']} | {r['tool']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['mean_ms']:.1f} |")
    print()
    print("**Cold `safe_open`, every tensor read** (1 file, numpy)\n")
    print("| link | tool | MB/s per round | median | weightfs / rclone |")
    print("|---|---|---|---:|---:|")
    for link in ("unshaped", "shaped"):
        med = {}
        for t in ("weightfs", "rclone"):
            v = [r["MBps"] for r in sel(test="safe_open", link=link, tool=t)]
            med[t] = statistics.median(v)
            print(f"| {link} | {t} | {rounds(v)} | {med[t]:.0f} | {'%.2f' % (med['weightfs'] / med['rclone']) if t == 'rclone' else ''} |")
    print()
    print("**Daemon memory while a 4-shard model is read through the mount** (shaped link, `st_read.py` over the shards)\n")
    print("| tool | bytes read | read MB/s | VmHWM | peak RssAnon | peak RssFile |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in sel(test="rss-4gib-model"):
        print(f"| {r['tool']} | {r['bytes'] / (1 << 30):.2f} GiB | {r['read_MBps']:.0f} | {r['VmHWM'] / MiB:.0f} MiB | {r['peak_RssAnon'] / MiB:.1f} MiB | {r['peak_RssFile'] / MiB:.0f} MiB |")


{"cache": cache, "mount": mount}[kind]()
