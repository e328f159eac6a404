#!/usr/bin/env python3
"""Run:ai Model Streamer's read of safetensors objects into CPU memory, timed: the peer of
`weightfs cp` and `preload` in the storage benchmarks (issue 16). Prints one JSON line.

    runai_read.py gs://BUCKET/OBJECT.safetensors[,gs://BUCKET/OTHER.safetensors...] LABEL
Several objects (a sharded checkpoint) go to one `stream_files` call, as vLLM streams them.
Environment: RUNAI_STREAMER_CONCURRENCY, and for an emulator STORAGE_EMULATOR_HOST,
CLOUD_STORAGE_EMULATOR_ENDPOINT, RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS=true.
"""
import json
import os
import resource
import sys
import time

from runai_model_streamer import SafetensorsStreamer

urls, label = sys.argv[1].split(","), sys.argv[2]
t0 = time.monotonic()
r0 = resource.getrusage(resource.RUSAGE_SELF)
total = 0
with SafetensorsStreamer() as streamer:
    if len(urls) == 1:
        streamer.stream_file(urls[0])
    else:
        streamer.stream_files(urls)
    for _name, tensor in streamer.get_tensors():
        total += tensor.nbytes
seconds = time.monotonic() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)  # every thread of this process
print(json.dumps({"tool": label, "objects": len(urls), "concurrency": int(os.environ.get("RUNAI_STREAMER_CONCURRENCY", "0")),
                  "bytes": total, "seconds": round(seconds, 3), "GBps": round(total / seconds / 1e9, 3),
                  "cpu_s_per_GiB": round(cpu / (total / 2**30), 3)}))
