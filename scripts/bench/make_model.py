#!/usr/bin/env python3
"""Writes a Llama-shaped safetensors checkpoint of random F16 bytes, for benchmarks.

    make_model.py OUT_DIR SIZE_MIB SHARDS [--seed N]

TinyLlama-like shapes (hidden 2048, intermediate 5632, 4 KV heads of 64, vocab 32000); the
number of layers is chosen so the total is close to SIZE_MIB. With SHARDS > 1 the tensors go
to model-0000i-of-0000N.safetensors in forward order plus model.safetensors.index.json; with
SHARDS == 1 to model.safetensors. Also writes config.json. Prints the files and sizes.
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

HIDDEN, INTER, KV, VOCAB = 2048, 5632, 256, 32000


def layer(i):
    p = f"model.layers.{i}."
    return [
        (p + "input_layernorm.weight", (HIDDEN,)),
        (p + "self_attn.q_proj.weight", (HIDDEN, HIDDEN)),
        (p + "self_attn.k_proj.weight", (KV, HIDDEN)),
        (p + "self_attn.v_proj.weight", (KV, HIDDEN)),
        (p + "self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
        (p + "post_attention_layernorm.weight", (HIDDEN,)),
        (p + "mlp.gate_proj.weight", (INTER, HIDDEN)),
        (p + "mlp.up_proj.weight", (INTER, HIDDEN)),
        (p + "mlp.down_proj.weight", (HIDDEN, INTER)),
    ]


def nbytes(shape):
    return 2 * int(np.prod(shape))


def main():
    out, size_mib, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
    target = size_mib << 20
    ends = [("model.embed_tokens.weight", (VOCAB, HIDDEN)), ("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    per_layer = sum(nbytes(s) for _, s in layer(0))
    fixed = sum(nbytes(s) for _, s in ends)
    layers = max(1, round((target - fixed) / per_layer))
    tensors = [ends[0]] + [t for i in range(layers) for t in layer(i)] + ends[1:]
    total = sum(nbytes(s) for _, s in tensors)
    # Forward order, cut into shards of about total / shards bytes.
    groups, current, size = [], [], 0
    for t in tensors:
        if current and size + nbytes(t[1]) > total / shards * (len(groups) + 1) and len(groups) < shards - 1:
            groups.append(current)
            current = []
        current.append(t)
        size += nbytes(t[1])
    groups.append(current)
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    weight_map = {}
    names = [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))] if shards > 1 else ["model.safetensors"]
    for name, group in zip(names, groups):
        arrays = {n: np.frombuffer(rng.bytes(nbytes(s)), dtype=np.float16).reshape(s) for n, s in group}
        save_file(arrays, os.path.join(out, name), metadata={"format": "pt"})
        del arrays
        for n, _ in group:
            weight_map[n] = name
        print(f"{name} {os.path.getsize(os.path.join(out, name))}", file=sys.stderr)
    if shards > 1:
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN, "intermediate_size": INTER,
                   "num_hidden_layers": layers, "num_attention_heads": 32, "num_key_value_heads": 4,
                   "vocab_size": VOCAB, "torch_dtype": "float16"}, f, indent=2)
    print(f"{layers} layers, {total} bytes of tensors in {len(groups)} file(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
