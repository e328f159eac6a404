#!/usr/bin/env python3
"""Runs a command and appends its wall and CPU seconds (user, system; the command and its
children) to a file as one line "WALL USER SYS": what a storage benchmark row costs in cores.

    cputime.py OUTFILE COMMAND [ARGS...]     # exits with the command's status
"""
import os
import subprocess
import sys
import time

out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
proc = subprocess.Popen(cmd)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.monotonic() - t0
with open(out, "a") as f:
    f.write(f"{wall:.3f} {usage.ru_utime:.3f} {usage.ru_stime:.3f}\n")
sys.exit(os.waitstatus_to_exitcode(status))
