#!/usr/bin/env python3
"""Run:ai Model Streamer's read of one safetensors object into CPU memory, timed: the peer of
`weightfs cp` in the storage benchmarks (issue 16). Prints one JSON line.

    runai_read.py gs://BUCKET/OBJECT.safetensors LABEL
Environment: RUNAI_STREAMER_CONCURRENCY, and for an emulator STORAGE_EMULATOR_HOST,
CLOUD_STORAGE_EMULATOR_ENDPOINT, RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS=true.
"""
import json
import os
import resource
import sys
import time

from runai_model_streamer import SafetensorsStreamer

url, label = sys.argv[1], sys.argv[2]
t0 = time.monotonic()
r0 = resource.getrusage(resource.RUSAGE_SELF)
total = 0
with SafetensorsStreamer() as streamer:
    streamer.stream_file(url)
    for _name, tensor in streamer.get_tensors():
        total += tensor.nbytes
seconds = time.monotonic() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)  # every thread of this process
print(json.dumps({"tool": label, "concurrency": int(os.environ.get("RUNAI_STREAMER_CONCURRENCY", "0")),
                  "bytes": total, "seconds": round(seconds, 3), "GBps": round(total / seconds / 1e9, 3),
                  "cpu_s_per_GiB": round(cpu / (total / 2**30), 3)}))
