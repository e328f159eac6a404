"""Prints two prompts for the demo model's tokenizer as JSON: `short` (8 tokens) and `long`
(128 tokens), cut from a fixed text by token count and checked to re-encode to that count."""
import json, sys
from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
text = ("The quick brown fox jumps over the lazy dog while the capital of France is Paris and "
        "rivers flow to the sea. ") * 20

def cut(n):
    for extra in range(0, 8):
        ids = tok.encode(text, add_special_tokens=False).ids[: n + extra]
        s = tok.decode(ids)
        if len(tok.encode(s, add_special_tokens=True).ids) == n:
            return s
    raise SystemExit(f"no prefix of the text encodes to {n} tokens")

print(json.dumps({"short": cut(8), "long": cut(128)}))
