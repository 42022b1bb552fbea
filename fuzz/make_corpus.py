#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/) from the format
descriptions, with the standard library only. Run from anywhere; rewrites the seed files."""
import json
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def npy(dict_text, data=b"", major=1):
    length_bytes = 2 if major == 1 else 4
    header = dict_text.encode("latin-1")
    while (6 + 2 + length_bytes + len(header) + 1) % 64:
        header += b" "
    header += b"\n"
    length = struct.pack("<H" if major == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([major, 0]) + length + header + data


def d(shape, descr="<f8", fortran="False"):
    return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)


npy_seeds = {
    "f8_2x3": npy(d("(2, 3)"), struct.pack("<6d", 1, -2, 0.5, 1e300, -0.0, 3)),
    "f4_3": npy(d("(3,)", "<f4"), struct.pack("<3f", 1.5, float("inf"), float("nan"))),
    "f8_scalar": npy(d("()"), struct.pack("<d", 7.25)),
    "f4_empty": npy(d("(0, 4)", "<f4")),
    "f8_v2": npy(d("(2,)"), struct.pack("<2d", 1, 2), major=2),
    "f4_v3": npy(d("(1, 1, 2)", "<f4"), struct.pack("<2f", 1, 2), major=3),
    "fortran": npy(d("(2, 2)", fortran="True"), struct.pack("<4d", 1, 2, 3, 4)),
    "big_endian": npy(d("(1,)", ">f8"), struct.pack(">d", 1)),
    "int64": npy(d("(2,)", "<i8"), struct.pack("<2q", 1, 2)),
    "short_data": npy(d("(4,)"), struct.pack("<d", 1)),
    "spellings": npy("{\"shape\": (2L,), 'fortran_order':False,'descr':'<f4'}", struct.pack("<2f", 1, 2)),
}


def safetensors(entries, metadata=None, pad=True):
    header, buffer = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(buffer), len(buffer) + len(raw)]}
        buffer += raw
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + buffer


safetensors_seeds = {
    "f32_f64": safetensors([("a", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
                            ("b", "F64", [3], struct.pack("<3d", -1, 0.5, 1e-300))], {"format": "pt"}),
    "f16_bf16": safetensors([("h", "F16", [4], struct.pack("<4H", 0x3C00, 0x0001, 0x7C00, 0x7E00)),
                             ("g", "BF16", [2, 1], struct.pack("<2H", 0x3F80, 0xFF80))]),
    "empty": safetensors([]),
    "zero_size": safetensors([("z", "F32", [0, 3], b""), ("s", "F64", [], struct.pack("<d", 2))]),
    "int_types": safetensors([("i", "I64", [1], struct.pack("<q", 5)), ("u", "U8", [3], b"abc"),
                              ("f", "F32", [1], struct.pack("<f", 1))]),
    "gpt2_like": safetensors([("h.0.attn.c_attn.weight", "F32", [2, 6], struct.pack("<12f", *range(12))),
                              ("h.0.attn.c_attn.bias", "F32", [6], struct.pack("<6f", *range(6)))]),
    "gap": struct.pack("<Q", 54) + b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}' + b"\0" * 8,
}

for target, seeds in (("npy", npy_seeds), ("safetensors", safetensors_seeds)):
    out = os.path.join(here, "corpus", target)
    os.makedirs(out, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds in %s" % (target, len(seeds), os.path.relpath(out, os.path.dirname(here))))
