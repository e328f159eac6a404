#!/usr/bin/env python3
"""randread.py FILE N SEED [CHUNK_BYTES=8388608] [--verify SRC]: N random 4 KiB preads of FILE,
each in a different CHUNK_BYTES-sized chunk (so each is a cache miss for a chunk cache), at a
random 4 KiB-aligned offset within it; readahead off (POSIX_FADV_RANDOM). One read at a time.
Prints one JSON line: latencies in ms (p50, p90, p99, max, mean) and the offsets' count."""
import json
import os
import random
import sys
import time

path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = int(sys.argv[4]) if len(sys.argv) > 4 and not sys.argv[4].startswith("--") else 8 << 20
src = sys.argv[sys.argv.index("--verify") + 1] if "--verify" in sys.argv else None
size = os.path.getsize(path)
chunks = (size + chunk - 1) // chunk
if n > chunks:
    sys.exit(f"randread: {n} reads need {n} distinct chunks; {path} has {chunks}")
rng = random.Random(seed)
offsets = []
for c in rng.sample(range(chunks), n):
    length = min(chunk, size - c * chunk)
    offsets.append(c * chunk + rng.randrange(max(1, length // 4096)) * 4096)
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
sfd = os.open(src, os.O_RDONLY) if src else None
lat = []
for off in offsets:
    t0 = time.perf_counter()
    data = os.pread(fd, 4096, off)
    lat.append((time.perf_counter() - t0) * 1000)
    if sfd is not None and data != os.pread(sfd, 4096, off):
        sys.exit(f"randread: wrong bytes at offset {off}")
os.close(fd)
s = sorted(lat)
pick = lambda p: s[min(len(s), max(1, -(-len(s) * p // 100))) - 1]  # nearest rank
print(json.dumps({"reads": n, "p50_ms": pick(50), "p90_ms": pick(90), "p99_ms": pick(99), "max_ms": s[-1],
                  "mean_ms": sum(s) / len(s), "latencies_ms": [round(x, 3) for x in lat]}))
