"""Drives `weightfs serve` with the official `openai` client (ServerTests runs it).

    python openai_client.py PORT MODEL_NAME API_KEY PROMPT CHAT_MESSAGE MAX_TOKENS

Prints one JSON object: what each call returned (texts, finish reasons, usage, error statuses).
"""
import json
import sys

import openai

port, model, key, prompt, message, max_tokens = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=300)
out = {"models": [m.id for m in client.models.list().data]}

c = client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, extra_body={"ignore_eos": True})
out["completion"] = {"text": c.choices[0].text, "finish_reason": c.choices[0].finish_reason, "usage": c.usage.model_dump()}

text, finish, usage = "", None, None
for chunk in client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True,
                                       stream_options={"include_usage": True}, extra_body={"ignore_eos": True}):
    if chunk.choices:
        text += chunk.choices[0].text
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage.model_dump()
out["completion_stream"] = {"text": text, "finish_reason": finish, "usage": usage}

messages = [{"role": "user", "content": message}]
r = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0)
out["chat"] = {"text": r.choices[0].message.content, "role": r.choices[0].message.role, "finish_reason": r.choices[0].finish_reason,
               "usage": r.usage.model_dump()}

text, finish, role = "", None, None
for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0, stream=True):
    if chunk.choices:
        d = chunk.choices[0].delta
        role = d.role or role
        text += d.content or ""
        finish = chunk.choices[0].finish_reason or finish
out["chat_stream"] = {"text": text, "role": role, "finish_reason": finish}

# A stop string ends the text before it.
c = client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, extra_body={"ignore_eos": True},
                              stop=[out["completion"]["text"][3:6]] if len(out["completion"]["text"]) >= 6 else None)
out["stopped"] = {"text": c.choices[0].text, "finish_reason": c.choices[0].finish_reason, "stop": out["completion"]["text"][3:6]}

errors = {}
def status(name, call):
    try:
        call()
        errors[name] = 200
    except openai.APIStatusError as e:
        errors[name] = e.status_code
        errors[name + "_message"] = str(e.message)

status("unknown_model", lambda: client.completions.create(model="nope", prompt=prompt, max_tokens=2))
status("n2", lambda: client.completions.create(model=model, prompt=prompt, max_tokens=2, n=2))
status("negative_max_tokens", lambda: client.completions.create(model=model, prompt=prompt, max_tokens=-1))
status("huge_max_tokens", lambda: client.completions.create(model=model, prompt=prompt, max_tokens=10**9))
status("too_long", lambda: client.completions.create(model=model, prompt="x " * 5000, max_tokens=2))
status("logprobs", lambda: client.completions.create(model=model, prompt=prompt, max_tokens=2, logprobs=2))
bad = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong-key", max_retries=0)
status("bad_key", lambda: bad.completions.create(model=model, prompt=prompt, max_tokens=2))
out["errors"] = errors
print(json.dumps(out))
