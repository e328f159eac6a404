"""Times Hugging Face transformers on CPU on the demo model, as `weightfs generate` is timed:
prefill = one forward pass over a 128-token prompt (logits of the last position used);
decode = 128 greedy tokens after an 8-token prompt (the first comes from the prefill; the
other 127 are timed one forward pass each, with the KV cache). Prints one JSON line per case.
    infer_transformers.py MODEL_DIR DTYPE(f32|bf16) THREADS PROMPTS_JSON REPS"""
import json, sys, time
import torch
from transformers import AutoModelForCausalLM
from tokenizers import Tokenizer

model_dir, dtype, threads, prompts, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32 if dtype == "f32" else torch.bfloat16)
model.eval()

def ids(text):
    return torch.tensor([tok.encode(text, add_special_tokens=True).ids])

with torch.inference_mode():
    long_ids, short_ids = ids(prompts["long"]), ids(prompts["short"])
    model(long_ids[:, :16])  # warm-up
    for rep in range(reps):
        t0 = time.perf_counter()
        model(long_ids, logits_to_keep=1)
        t1 = time.perf_counter()
        print(json.dumps({"tool": "transformers", "dtype": dtype, "threads": threads, "rep": rep, "what": "prefill",
                          "tokens": long_ids.shape[1], "tok_s": long_ids.shape[1] / (t1 - t0)}), flush=True)
    for rep in range(reps):
        out = model(short_ids, use_cache=True, logits_to_keep=1)
        past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        t0 = time.perf_counter()
        for _ in range(127):
            out = model(nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        t1 = time.perf_counter()
        print(json.dumps({"tool": "transformers", "dtype": dtype, "threads": threads, "rep": rep, "what": "decode",
                          "tokens": 127, "tok_s": 127 / (t1 - t0)}), flush=True)
