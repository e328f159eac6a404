#!/usr/bin/env python3
"""Serving benchmark driver (scripts/bench/serve runs it): the same client and workload against
`weightfs serve` and `llama-server` (both OpenAI-compatible, streaming), and Hugging Face
transformers' batched `generate` as the "standard Transformers" baseline.

For each number of concurrent streams N: N streams each send REQUESTS completions one after
another (prompts of mixed lengths, max_tokens mixed, ignore_eos so every request generates
exactly max_tokens), all at temperature 0. Measured: aggregate generated tokens/s over the wall
time ("tok_s"); the same while all N streams are still sending ("steady_tok_s": tokens streamed
from the start until the first stream has sent its last request's last token, over that time:
the rate at N concurrent streams, without the tail where fewer are left, since the streams'
total lengths differ); time to first token and inter-token latency (p50/p99, per request), and for weightfs the
KV waste sampled from /metrics while it runs. One JSON line per (system, N).
"""
import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request


def workload(n_streams, requests, max_tokens, seed=7):
    rng = random.Random(seed + n_streams)
    words = "the weights arrive from the bucket while the server answers every layer in order".split()
    jobs = []
    for s in range(n_streams):
        stream = []
        for _ in range(requests):
            prompt = " ".join(rng.choice(words) for _ in range(rng.choice([8, 32, 128, 384])))
            stream.append((prompt, rng.randint(max_tokens // 4, max_tokens)))
        jobs.append(stream)
    return jobs


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def run_streams(base, model, jobs):
    import openai
    client = openai.AsyncOpenAI(base_url=base, api_key="none", max_retries=0, timeout=3600)
    try:
        return await _run_streams(client, model, jobs)
    finally:
        await client.close()


async def _run_streams(client, model, jobs):
    ttfts, itls, tokens, errors = [], [], 0, []
    arrivals, finished = [], []  # every streamed token's time; each stream's end

    async def one_stream(stream):
        nonlocal tokens
        for prompt, max_tokens in stream:
            start = time.perf_counter()
            first, last, n = None, None, 0
            try:
                resp = await client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0,
                                                       stream=True, extra_body={"ignore_eos": True})
                async for chunk in resp:
                    if not chunk.choices or not chunk.choices[0].text:
                        continue
                    now = time.perf_counter()
                    if first is None:
                        first = now
                        ttfts.append(now - start)
                    else:
                        itls.append(now - last)
                    last = now
                    arrivals.append(now)
                    n += 1
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
            tokens += max_tokens
        finished.append(time.perf_counter())

    start = time.perf_counter()
    await asyncio.gather(*(one_stream(s) for s in jobs))
    wall = time.perf_counter() - start
    window = min(finished) - start
    steady = sum(1 for t in arrivals if t <= start + window) / window
    return {"wall_s": wall, "tokens": tokens, "tok_s": tokens / wall, "steady_s": window, "steady_tok_s": steady, "ttft_p50": pct(ttfts, 50), "ttft_p99": pct(ttfts, 99),
            "itl_p50": pct(itls, 50), "itl_p99": pct(itls, 99), "errors": len(errors), "error_sample": errors[:2]}


def wait_health(port, proc, seconds=600):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


def sample_waste(port, stop, out):
    while not stop.is_set():
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            m = re.search(r"^weightfs_kv_cache_waste_perc\{[^}]*\} ([0-9.e-]+)", text, re.M)
            r = re.search(r"^vllm:num_requests_running\{[^}]*\} ([0-9.]+)", text, re.M)
            if m and r and float(r.group(1)) > 0:
                out.append(float(m.group(1)))
        except Exception:
            pass
        stop.wait(0.5)


def engine_steps(port):
    """weightfs's step counters from /metrics: {kind: {steps, tokens, sequences, forward_s, step_s}}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    names = {"weightfs_engine_steps_total": "steps", "weightfs_engine_step_tokens_total": "tokens",
             "weightfs_engine_step_sequences_total": "sequences", "weightfs_engine_forward_seconds_total": "forward_s",
             "weightfs_engine_step_seconds_total": "step_s"}
    out = {}
    for m in re.finditer(r'^(weightfs_engine_[a-z_]+)\{[^}]*kind="([a-z]+)"[^}]*\} ([0-9.e+-]+)', text, re.M):
        if m.group(1) in names:
            out.setdefault(m.group(2), {})[names[m.group(1)]] = float(m.group(3))
    return out


def step_split(before, after):
    """The run's steps by kind (after minus before) with mean times, for the benchmark's table."""
    out = {}
    for kind, a in after.items():
        d = {k: v - before.get(kind, {}).get(k, 0) for k, v in a.items()}
        if d.get("steps", 0) > 0:
            d["mean_step_ms"] = 1000 * d["step_s"] / d["steps"]
            d["mean_forward_ms"] = 1000 * d["forward_s"] / d["steps"]
            d["mean_tokens"] = d["tokens"] / d["steps"]
            d["mean_sequences"] = d["sequences"] / d["steps"]
        out[kind] = d
    return out


def bench_server(name, cmd, port, model, n, args, env=None):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{args.work}/{name}-{n}.log", "w"), env=env)
    try:
        wait_health(port, proc)
        # Warm-up: one short request (page faults of the weights, first allocations).
        asyncio.run(run_streams(f"http://127.0.0.1:{port}/v1", model, [[("warm up", 4)]]))
        waste = []
        import threading
        stop = threading.Event()
        sampler = threading.Thread(target=sample_waste, args=(port, stop, waste))
        if name == "weightfs":
            sampler.start()
            before = engine_steps(port)
        result = asyncio.run(run_streams(f"http://127.0.0.1:{port}/v1", model, workload(n, args.requests, args.max_tokens)))
        stop.set()
        if name == "weightfs":
            sampler.join()
            result["kv_waste_mean"] = statistics.mean(waste) if waste else None
            # Where the engine's time went: decode steps against steps carrying prompt tokens.
            result["engine_steps"] = step_split(before, engine_steps(port))
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def bench_transformers(n, args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, torch_dtype=torch.bfloat16)
    model.eval()
    jobs = workload(n, args.requests, args.max_tokens)
    tokens, ttfts, itls = 0, [], []

    class Stamp(LogitsProcessor):
        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores):
            self.times.append(time.perf_counter())
            return scores

    with torch.no_grad():
        model.generate(**tok(["warm up"], return_tensors="pt"), max_new_tokens=4, do_sample=False)
        start = time.perf_counter()
        for r in range(args.requests):  # one batch per round: the k-th request of every stream
            prompts = [jobs[s][r][0] for s in range(n)]
            new = max(jobs[s][r][1] for s in range(n))  # a batch runs to its longest request
            stamp = Stamp()
            t0 = time.perf_counter()
            enc = tok(prompts, return_tensors="pt", padding=True)
            model.generate(**enc, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                           logits_processor=LogitsProcessorList([stamp]), pad_token_id=tok.pad_token_id)
            ttfts += [stamp.times[0] - t0] * n
            itls += [b - a for a, b in zip(stamp.times, stamp.times[1:])] * n
            tokens += sum(jobs[s][r][1] for s in range(n))  # the tokens the requests asked for
        wall = time.perf_counter() - start
    return {"wall_s": wall, "tokens": tokens, "tok_s": tokens / wall, "ttft_p50": pct(ttfts, 50), "ttft_p99": pct(ttfts, 99),
            "itl_p50": pct(itls, 50), "itl_p99": pct(itls, 99), "errors": 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weightfs", required=True)
    ap.add_argument("--llama-server")
    ap.add_argument("--gguf")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--streams", default="1,4,16,64")
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--systems", default="weightfs,llama-server,transformers")
    ap.add_argument("--work", default="/tmp")
    args = ap.parse_args()
    port = 18600
    for n in [int(x) for x in args.streams.split(",")]:
        for system in args.systems.split(","):
            port += 1
            if system == "weightfs":
                cmd = [args.weightfs, "serve", args.model_dir, "--port", str(port), "--threads", str(args.threads),
                       "--served-model-name", "demo", "--max-model-len", "2048", "--max-num-seqs", str(max(n, 1))]
                result = bench_server("weightfs", cmd, port, "demo", n, args, env=dict(os.environ, WEIGHTFS_LOG="warning"))
            elif system == "llama-server":
                if not args.llama_server:
                    continue
                cmd = [args.llama_server, "-m", args.gguf, "--host", "127.0.0.1", "--port", str(port), "-t", str(args.threads),
                       "-tb", str(args.threads), "--parallel", str(n), "-c", str(2048 * n), "--alias", "demo"]
                result = bench_server("llama-server", cmd, port, "demo", n, args)
            else:
                result = bench_transformers(n, args)
            result.update({"system": system, "streams": n, "requests_per_stream": args.requests, "max_tokens": args.max_tokens,
                           "threads": args.threads})
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
