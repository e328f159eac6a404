"""64 streaming clients for SECONDS against `weightfs serve` (ServerTests runs it).

    python load_clients.py PORT MODEL_NAME SERVER_PID SECONDS CLIENTS

Each client streams completions one after another until the time is up. Meanwhile the server's
RSS and `vllm:num_requests_waiting` are sampled once a second. Prints one JSON object.
"""
import json
import random
import re
import sys
import threading
import time
import urllib.request

import openai

port, model, pid, seconds, clients = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)
deadline = time.monotonic() + seconds
lock = threading.Lock()
done, errors, tokens = 0, [], 0


def work(k):
    global done, tokens
    rng = random.Random(k)
    while time.monotonic() < deadline:
        prompt = " ".join(rng.choice(["weights", "arrive", "bucket", "layer", "token", "cache"]) for _ in range(rng.randint(3, 40)))
        try:
            n = 0
            for chunk in client.completions.create(model=model, prompt=prompt, max_tokens=rng.randint(4, 24), temperature=0.8,
                                                   seed=k, stream=True):
                if chunk.choices and chunk.choices[0].text:
                    n += 1
            with lock:
                done += 1
                tokens += n
        except Exception as e:  # every failure is reported
            with lock:
                errors.append(f"{type(e).__name__}: {e}")


def sample():
    rss, waiting = [], []
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            rss.append(int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
        m = re.search(r'^vllm:num_requests_waiting\{[^}]*\} ([0-9.]+)', text, re.M)
        waiting.append(float(m.group(1)) if m else -1)
        time.sleep(1)
    return rss, waiting


threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
for t in threads:
    t.start()
rss, waiting = sample()
for t in threads:
    t.join()
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
m = re.search(r'^vllm:num_requests_waiting\{[^}]*\} ([0-9.]+)', text, re.M)
print(json.dumps({"done": done, "tokens": tokens, "errors": errors[:10], "error_count": len(errors), "rss": rss,
                  "waiting": waiting, "waiting_after": float(m.group(1)) if m else -1}))
