#!/usr/bin/env python3
"""st_read.py FILE...: opens each safetensors file with safe_open(framework="numpy") and reads
every tensor (get_tensor, then touches its bytes). Prints one JSON line: files, tensors, bytes,
seconds, MB/s."""
import json
import sys
import time

from safetensors import safe_open

t0 = time.perf_counter()
tensors = nbytes = 0
for path in sys.argv[1:]:
    with safe_open(path, framework="numpy") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            t.view("u1").sum(dtype="u8")  # touch every byte
            tensors += 1
            nbytes += t.nbytes
seconds = time.perf_counter() - t0
print(json.dumps({"files": len(sys.argv) - 1, "tensors": tensors, "bytes": nbytes, "seconds": seconds, "MBps": nbytes / seconds / 1e6}))
