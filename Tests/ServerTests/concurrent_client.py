"""16 greedy completions at once, then two requests sharing a long prefix (ServerTests runs it).

    python concurrent_client.py PORT MODEL_NAME PROMPTS_JSON MAX_TOKENS PREFIX_TEXT

Prints {"concurrent": [texts in PROMPTS order], "prefix": [two texts]}.
"""
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import openai

port, model, prompts, max_tokens, prefix = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)


def complete(prompt):
    stream = client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True,
                                       extra_body={"ignore_eos": True})
    return "".join(c.choices[0].text for c in stream if c.choices)


with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
    texts = list(pool.map(complete, prompts))

shared = []
for tail in (" first tail", " second tail"):
    r = client.completions.create(model=model, prompt=prefix + tail, max_tokens=2, temperature=0)
    shared.append(r.choices[0].text)
print(json.dumps({"concurrent": texts, "prefix": shared}))
