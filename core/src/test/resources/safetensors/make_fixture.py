#!/usr/bin/env python3
"""Writes tiny_llama.safetensors by hand (numpy + struct + json, no safetensors package).

An independent check of weft's reader: the file follows the safetensors spec, written without
any weft code. Tensor names follow Hugging Face Llama checkpoints; values are simple closed
forms that SafetensorsFixtureTest recomputes. The buffer order deliberately differs from the
header order (and leaves an F32 tensor at an offset that is not a multiple of 4) so the reader
must honour data_offsets rather than assume a layout.

    python3 make_fixture.py  # rewrites tiny_llama.safetensors next to this script
"""
import json
import os
import struct

import numpy as np

VOCAB, HIDDEN = 5, 3


def bf16_bytes(a):
    """float32 -> bf16 little-endian bytes, round to nearest even (values here are exact anyway)."""
    bits = np.asarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    return rounded.tobytes()


tensors = {
    # name: (dtype, shape, raw little-endian bytes)
    "model.embed_tokens.weight": ("F32", [VOCAB, HIDDEN],
                                  (np.arange(VOCAB * HIDDEN, dtype=np.float64) * 0.25 - 3).astype("<f4").tobytes()),
    "model.layers.0.self_attn.q_proj.weight": ("BF16", [HIDDEN, HIDDEN],  # [out, in]
                                               bf16_bytes((np.arange(HIDDEN * HIDDEN) - 4) / 8.0)),
    "model.layers.0.input_layernorm.weight": ("F16", [HIDDEN],
                                              (1 + np.arange(HIDDEN) * 0.125).astype("<f2").tobytes()),
    "model.norm.weight": ("F32", [HIDDEN], (1 + 0.1 * np.arange(HIDDEN)).astype("<f4").tobytes()),
}

# Buffer order: BF16 first (18 bytes), so the F32 tensors after it start unaligned.
buffer_order = ["model.layers.0.self_attn.q_proj.weight", "model.norm.weight",
                "model.layers.0.input_layernorm.weight", "model.embed_tokens.weight"]
header, data, offset = {}, b"", 0
for name in buffer_order:
    dtype, shape, raw = tensors[name]
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
    data += raw
    offset += len(raw)
header["__metadata__"] = {"format": "pt", "source": "make_fixture.py"}
# Header order: alphabetical tensors, metadata last (a different order from the buffer).
header = {k: header[k] for k in sorted(h for h in header if h != "__metadata__")} | {"__metadata__": header["__metadata__"]}

text = json.dumps(header).encode("utf-8")
text += b" " * ((8 - (8 + len(text)) % 8) % 8)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_llama.safetensors")
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    f.write(data)
print(out, 8 + len(text) + len(data), "bytes")
