#!/usr/bin/env python3
"""An independent numpy forward pass of Hugging Face transformers' LlamaForCausalLM.

weft's HfCompatibilityTest uses it to check that weft's Llama computes the same logits as
transformers for the same checkpoint, without needing torch or transformers on the machine.
It follows modeling_llama.py step by step, in float32 like a float32 HF model:

  LlamaRMSNorm     x.float(); x * rsqrt(mean(x^2, -1) + eps); weight * x
  rotary           inv_freq = 1 / theta ** (arange(0, D, 2) / D)   (float32)
                   freqs = position * inv_freq; emb = cat(freqs, freqs); cos(emb), sin(emb)
                   q * cos + rotate_half(q) * sin, rotate_half(x) = cat(-x[D/2:], x[:D/2])
  attention        repeat_kv (key/value head j serves query heads j*g .. j*g+g-1),
                   q k^T / sqrt(D) + causal mask, softmax in float32, @ v, o_proj
  mlp              down_proj(silu(gate_proj(x)) * up_proj(x))
  decoder layer    h = x + attn(input_layernorm(x)); h + mlp(post_attention_layernorm(h))
  head             model.norm, then lm_head (or embed_tokens.weight when tie_word_embeddings)

Linear weights are [out, in] (y = x W^T) as in torch. safetensors files are read and written by
hand (8-byte little-endian header length, JSON header, packed little-endian buffer).

Usage:
  llama_reference.py write-fixture DIR [--tied] [--seed N] [--bf16 NAME]
      writes a random tiny checkpoint (config.json, model.safetensors) and fixture.json with the
      token ids, plus expected_logits.f32 and a rotary check (rope_input.f32, rope_expected.f32),
      raw little-endian float32.
  llama_reference.py logits DIR --ids 1,2,3,... --batch B --seq T [--position P] [--out FILE]
      reads a checkpoint directory (weft's or HF's) and writes the logits [B*T, vocab] as raw
      little-endian float32 to FILE (or prints them, one row per line, without --out).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

F32 = np.float32

# ---- safetensors ----------------------------------------------------------------------------------


def f32_to_bf16_bits(a):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = memoryview(data)[8 + n:]
    # The checks the safetensors library makes before it loads anything: tensors packed without
    # gaps or overlaps, covering the buffer exactly, each as long as its dtype and shape say.
    sizes = {"F32": 4, "BF16": 2, "F16": 2}
    spans = sorted((info["data_offsets"][0], info["data_offsets"][1], name) for name, info in header.items() if name != "__metadata__")
    expected_begin = 0
    for begin, end, name in spans:
        info = header[name]
        if begin != expected_begin:
            raise ValueError(f"{path}: tensor {name} starts at {begin}, expected {expected_begin} (gap or overlap)")
        if end - begin != int(np.prod(info["shape"], dtype=np.int64)) * sizes.get(info["dtype"], 0):
            raise ValueError(f"{path}: tensor {name} spans {end - begin} bytes, not {info['dtype']} x {info['shape']}")
        expected_begin = end
    if expected_begin != len(buf):
        raise ValueError(f"{path}: tensors cover {expected_begin} bytes of a {len(buf)}-byte buffer")
    meta = header.get("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        raw = bytes(buf[begin:end])
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(F32)
        elif dtype == "BF16":
            arr = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
        elif dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(F32)
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {dtype}; this reference reads F32, BF16, F16")
        out[name] = arr.reshape(shape)
    return out


def write_safetensors(path, tensors, bf16_names=(), metadata=None):
    """tensors: name -> float32 array; names in bf16_names are stored as BF16."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    chunks, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if name in bf16_names:
            raw, dtype = f32_to_bf16_bits(a).astype("<u2").tobytes(), "BF16"
        else:
            raw, dtype = a.astype("<f4").tobytes(), "F32"
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode("utf-8")
    js += b" " * ((8 - len(js) % 8) % 8)  # the buffer starts 8-aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for c in chunks:
            f.write(c)


# ---- the model ------------------------------------------------------------------------------------


class Config:
    def __init__(self, j):
        self.hidden = int(j["hidden_size"])
        self.layers = int(j["num_hidden_layers"])
        self.heads = int(j["num_attention_heads"])
        self.kv_heads = int(j.get("num_key_value_heads") or self.heads)
        self.head_dim = int(j.get("head_dim") or self.hidden // self.heads)
        self.ffn = int(j["intermediate_size"])
        self.vocab = int(j["vocab_size"])
        rope = j.get("rope_parameters") or {}  # transformers 5 keeps rope_theta here
        self.theta = float(rope.get("rope_theta") or j.get("rope_theta") or 10000.0)
        self.eps = float(j.get("rms_norm_eps", 1e-6))
        self.tied = bool(j.get("tie_word_embeddings", False))
        if j.get("hidden_act", "silu") != "silu":
            raise ValueError("hidden_act must be silu")
        for key in ("rope_scaling", "rope_parameters"):
            r = j.get(key) or {}
            if r.get("rope_type", r.get("type", "default")) != "default" or r.get("partial_rotary_factor", 1.0) != 1.0:
                raise ValueError(f"{key} = {r} is not implemented by this reference")
        if j.get("attention_bias") or j.get("mlp_bias"):
            raise ValueError("biases are not implemented by this reference")


def rms_norm(x, w, eps):
    x = x.astype(F32)
    var = np.mean(x * x, axis=-1, keepdims=True, dtype=F32)
    return (w * (x * (F32(1.0) / np.sqrt(var + F32(eps))))).astype(F32)


def rotary_cos_sin(positions, head_dim, theta):
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(F32) / F32(head_dim)
    inv_freq = (F32(1.0) / (F32(theta) ** exponents)).astype(F32)
    freqs = positions.astype(F32)[:, None] * inv_freq[None, :]  # [T, D/2], float32 product
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb).astype(F32), np.sin(emb).astype(F32)


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rotary(x, cos, sin):
    """x [B, H, T, D]; cos/sin [T, D]."""
    return (x * cos[None, None] + rotate_half(x) * sin[None, None]).astype(F32)


def softmax_f32(x):
    x = x.astype(F32)
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return (e / np.sum(e, axis=-1, keepdims=True)).astype(F32)


def silu(x):
    return (x / (F32(1.0) + np.exp(-x))).astype(F32)


def linear(x, w):
    return np.matmul(x, w.T).astype(F32)


def attention(cfg, w, p, x, cos, sin):
    b, t, _ = x.shape
    hd, g = cfg.head_dim, cfg.heads // cfg.kv_heads
    q = linear(x, w[p + "q_proj.weight"]).reshape(b, t, cfg.heads, hd).transpose(0, 2, 1, 3)
    k = linear(x, w[p + "k_proj.weight"]).reshape(b, t, cfg.kv_heads, hd).transpose(0, 2, 1, 3)
    v = linear(x, w[p + "v_proj.weight"]).reshape(b, t, cfg.kv_heads, hd).transpose(0, 2, 1, 3)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)  # repeat_kv
    scores = np.matmul(q, k.transpose(0, 1, 3, 2)).astype(F32) * F32(hd ** -0.5)
    mask = np.triu(np.ones((t, t), dtype=bool), k=1)
    scores = np.where(mask[None, None], F32(np.finfo(np.float32).min), scores)
    out = np.matmul(softmax_f32(scores), v).astype(F32)
    out = out.transpose(0, 2, 1, 3).reshape(b, t, cfg.heads * hd)
    return linear(out, w[p + "o_proj.weight"])


def mlp(w, p, x):
    return linear(silu(linear(x, w[p + "gate_proj.weight"])) * linear(x, w[p + "up_proj.weight"]), w[p + "down_proj.weight"])


def forward(cfg, w, ids, position=0):
    """ids [B, T] -> logits [B, T, vocab]; position_ids = position .. position+T-1, no cache."""
    b, t = ids.shape
    h = w["model.embed_tokens.weight"][ids].astype(F32)
    cos, sin = rotary_cos_sin(np.arange(position, position + t), cfg.head_dim, cfg.theta)
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        h = h + attention(cfg, w, p + "self_attn.", rms_norm(h, w[p + "input_layernorm.weight"], cfg.eps), cos, sin)
        h = h + mlp(w, p + "mlp.", rms_norm(h, w[p + "post_attention_layernorm.weight"], cfg.eps))
    h = rms_norm(h, w["model.norm.weight"], cfg.eps)
    head = w["model.embed_tokens.weight"] if cfg.tied else w["lm_head.weight"]
    return linear(h, head)


def load(directory):
    with open(os.path.join(directory, "config.json")) as f:
        cfg = Config(json.load(f))
    return cfg, read_safetensors(os.path.join(directory, "model.safetensors"))


# ---- commands -------------------------------------------------------------------------------------


def write_fixture(args):
    rng = np.random.default_rng(args.seed)
    cfg_json = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 64,
        "max_position_embeddings": 64,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": args.tied,
        "initializer_range": 0.02,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    cfg = Config(cfg_json)
    hd = cfg.head_dim

    def normal(std, *shape):
        return (rng.standard_normal(shape) * std).astype(F32)

    # Weights much larger than an initializer's, so every path moves the logits well above the tolerance.
    w = {"model.embed_tokens.weight": normal(1.0, cfg.vocab, cfg.hidden),
         "model.norm.weight": (1 + normal(0.2, cfg.hidden)).astype(F32)}
    s = cfg.hidden ** -0.5
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = normal(2 * s, cfg.heads * hd, cfg.hidden)
        w[p + "self_attn.k_proj.weight"] = normal(2 * s, cfg.kv_heads * hd, cfg.hidden)
        w[p + "self_attn.v_proj.weight"] = normal(s, cfg.kv_heads * hd, cfg.hidden)
        w[p + "self_attn.o_proj.weight"] = normal(s, cfg.hidden, cfg.heads * hd)
        w[p + "mlp.gate_proj.weight"] = normal(s, cfg.ffn, cfg.hidden)
        w[p + "mlp.up_proj.weight"] = normal(s, cfg.ffn, cfg.hidden)
        w[p + "mlp.down_proj.weight"] = normal(cfg.ffn ** -0.5, cfg.hidden, cfg.ffn)
        w[p + "input_layernorm.weight"] = (1 + normal(0.2, cfg.hidden)).astype(F32)
        w[p + "post_attention_layernorm.weight"] = (1 + normal(0.2, cfg.hidden)).astype(F32)
    if not cfg.tied:
        w["lm_head.weight"] = normal(s, cfg.vocab, cfg.hidden)
    bf16 = set(args.bf16 or [])
    for name in bf16:
        w[name] = bf16_bits_to_f32(f32_to_bf16_bits(w[name]))  # the model computes with the stored values
    os.makedirs(args.dir, exist_ok=True)
    with open(os.path.join(args.dir, "config.json"), "w") as f:
        json.dump(cfg_json, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(args.dir, "model.safetensors"), w, bf16, {"format": "pt"})

    batch, seq, position = 2, 24, 0
    ids = rng.integers(0, cfg.vocab, size=(batch, seq))
    logits = forward(cfg, w, ids, position).reshape(batch * seq, cfg.vocab)
    logits.astype("<f4").tofile(os.path.join(args.dir, "expected_logits.f32"))

    # Rotary alone at an absolute offset: x [1, T, H, D] laid out like weft's Rope.apply input.
    rope_offset, rope_t, rope_h = 37, 5, 3
    x = normal(1.0, 1, rope_t, rope_h, hd)
    cos, sin = rotary_cos_sin(np.arange(rope_offset, rope_offset + rope_t), hd, cfg.theta)
    y = apply_rotary(x.transpose(0, 2, 1, 3), cos, sin).transpose(0, 2, 1, 3)
    x.astype("<f4").tofile(os.path.join(args.dir, "rope_input.f32"))
    np.ascontiguousarray(y).astype("<f4").tofile(os.path.join(args.dir, "rope_expected.f32"))

    with open(os.path.join(args.dir, "fixture.json"), "w") as f:
        fixture = {"batch": batch, "seq": seq, "position": position, "ids": ids.reshape(-1).tolist(),
                   "logits_shape": [batch * seq, cfg.vocab], "bf16_tensors": sorted(bf16),
                   "rope": {"offset": rope_offset, "shape": [1, rope_t, rope_h, hd], "theta": cfg.theta}}
        f.write(json.dumps(fixture) + "\n")


def logits_command(args):
    cfg, w = load(args.dir)
    ids = np.array([int(s) for s in args.ids.split(",")], dtype=np.int64)
    if ids.size != args.batch * args.seq:
        raise SystemExit(f"--ids has {ids.size} ids, but --batch {args.batch} x --seq {args.seq} = {args.batch * args.seq}")
    logits = forward(cfg, w, ids.reshape(args.batch, args.seq), args.position).reshape(-1, cfg.vocab)
    if args.out:
        logits.astype("<f4").tofile(args.out)
    else:
        np.savetxt(sys.stdout, logits, fmt="%.8g")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    fx = sub.add_parser("write-fixture")
    fx.add_argument("dir")
    fx.add_argument("--tied", action="store_true")
    fx.add_argument("--seed", type=int, default=1234)
    fx.add_argument("--bf16", action="append", help="store this tensor as BF16 (repeatable)")
    lg = sub.add_parser("logits")
    lg.add_argument("dir")
    lg.add_argument("--ids", required=True)
    lg.add_argument("--batch", type=int, required=True)
    lg.add_argument("--seq", type=int, required=True)
    lg.add_argument("--position", type=int, default=0)
    lg.add_argument("--out")
    args = ap.parse_args()
    if args.command == "write-fixture":
        write_fixture(args)
    else:
        logits_command(args)


if __name__ == "__main__":
    main()
