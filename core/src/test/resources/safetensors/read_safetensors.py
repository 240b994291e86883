#!/usr/bin/env python3
"""Reads a safetensors file with numpy + struct + json only and prints it as JSON.

Used by SafetensorsPythonReaderTest to check weft's writer against an independent reader.
Checks the spec's rules on the way (fails with a message and exit status 1):
header length within the file, buffer 8-byte aligned, known dtypes, offsets matching shapes,
tensors tiling the buffer without gaps or overlaps. Output:
    {"header_length": N, "metadata": {...}, "names": [...header order...],
     "tensors": {name: {"dtype": "F32", "shape": [...], "bits": [float32 bit patterns]}}}
Values are float32 bit patterns (BF16 widened exactly) so NaN, infinities and -0 compare exactly.
"""
import json
import struct
import sys

import numpy as np

SIZES = {"F32": 4, "BF16": 2, "F16": 2}


def fail(msg):
    print("read_safetensors.py: " + msg, file=sys.stderr)
    sys.exit(1)


def main(path):
    raw = open(path, "rb").read()
    if len(raw) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        fail("header length %d beyond file size %d" % (n, len(raw)))
    if (8 + n) % 8 != 0:
        fail("data buffer starts at %d, not 8-byte aligned" % (8 + n))
    text = raw[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        fail("header does not start with '{'")
    header = json.loads(text)
    buf = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    spans, tensors = [], {}
    for name, info in header.items():
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in SIZES:
            fail("unknown dtype %s" % dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * SIZES[dtype]:
            fail("%s: offsets %s do not match shape %s of %s" % (name, [begin, end], shape, dtype))
        chunk = buf[begin:end]
        if dtype == "F32":
            values = np.frombuffer(chunk, dtype="<f4")
        elif dtype == "F16":
            values = np.frombuffer(chunk, dtype="<f2").astype(np.float32)
        else:
            values = (np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        tensors[name] = {"dtype": dtype, "shape": shape,
                         "bits": [int(b) for b in values.astype("<f4").view("<u4")]}
        spans.append((begin, end, name))
    expected = 0
    for begin, end, name in sorted(spans):
        if begin != expected:
            fail("%s starts at %d, expected %d (gap or overlap)" % (name, begin, expected))
        expected = end
    if expected != len(buf):
        fail("tensors cover %d of %d buffer bytes" % (expected, len(buf)))
    print(json.dumps({"header_length": n, "metadata": metadata, "names": list(header.keys()), "tensors": tensors}))


if __name__ == "__main__":
    main(sys.argv[1])
