#!/usr/bin/env python3
"""Cold-start driver (scripts/bench/serve-cold runs it): starts `weightfs serve MODEL`, sends one
greedy streaming completion the moment the port is open, and measures from the process's launch:
when it listened, when the first token's chunk arrived, and when the request ended. Prints one
JSON line with those seconds and the server's cold-start timeline (from its log).

  serve_cold.py --weightfs BIN --model gs://B/P|DIR [--env K=V]... [--arg X]... --label NAME
"""
import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weightfs", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--arg", action="append", default=[])
    ap.add_argument("--prompt", default="The capital of France is")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args()

    env = dict(os.environ, WEIGHTFS_LOG="info")
    for kv in a.env:
        k, _, v = kv.partition("=")
        env[k] = v
    log = tempfile.NamedTemporaryFile(prefix="serve-cold-", suffix=".log", delete=False)
    t0 = time.monotonic()
    proc = subprocess.Popen([a.weightfs, "serve", a.model, "--port", "0", "--served-model-name", "m",
                             "--max-model-len", "512"] + a.arg, stdout=subprocess.DEVNULL, stderr=log, env=env)
    port = None
    try:
        while port is None:
            if proc.poll() is not None:
                raise SystemExit("serve exited with %s: %s" % (proc.returncode, open(log.name).read()[-2000:]))
            m = re.search(r"listening on http://[0-9.]+:(\d+)", open(log.name).read())
            if m:
                port = int(m.group(1))
            elif time.monotonic() - t0 > a.timeout:
                raise SystemExit("serve did not listen")
            else:
                time.sleep(0.005)
        listening = time.monotonic() - t0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=a.timeout)
        body = json.dumps({"model": "m", "prompt": a.prompt, "max_tokens": a.max_tokens, "temperature": 0,
                           "ignore_eos": True, "stream": True})
        conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise SystemExit("completion: HTTP %d %s" % (resp.status, resp.read()[:500]))
        first, text = None, ""
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            piece = "".join(c.get("text", "") for c in chunk.get("choices", []))
            if piece and first is None:
                first = time.monotonic() - t0
            text += piece
        done = time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    timeline = {}
    for m in re.finditer(r"cold start: (.+?) at ([0-9.]+) s", open(log.name).read()):
        timeline.setdefault(m.group(1), float(m.group(2)))
    os.unlink(log.name)
    keep = ["listening", "config, tokenizer and headers read", "embeddings ready", "layer 0 ready", "all weights arrived", "first token"]
    print(json.dumps({"bench": "serve-cold", "tool": a.label, "listening_s": round(listening, 3),
                      "ttft_s": round(first, 3) if first else None, "done_s": round(done, 3), "text": text,
                      "timeline": {k: timeline[k] for k in keep if k in timeline}}))


if __name__ == "__main__":
    main()
