#!/usr/bin/env python3
"""rsswatch.py PID OUT: samples /proc/PID/status every 100 ms until PID exits or OUT.stop
exists; writes one JSON line to OUT: peaks of VmRSS, RssAnon, RssFile, RssShmem and the last
VmHWM (all bytes)."""
import json
import os
import sys
import time

pid, out = sys.argv[1], sys.argv[2]
peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
hwm = 0
while not os.path.exists(out + ".stop"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in peak:
                    peak[k] = max(peak[k], int(v.split()[0]) * 1024)
                elif k == "VmHWM":
                    hwm = int(v.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        break
    time.sleep(0.1)
with open(out, "w") as f:
    f.write(json.dumps({"peak_" + k: v for k, v in peak.items()} | {"VmHWM": hwm}) + "\n")
