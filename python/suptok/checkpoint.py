"""suptok.save_layer: one attention layer as a safetensors file in the library's own naming
(include/suptok/models/native.hpp), which suptok-analyze reads (--format suptok).

    save_layer(path, W_Q, W_K, W_V, W_O, b_Q=None, b_K=None, b_V=None, b_O=None, rope_theta=0.0,
               mask=None, temperature=None)

Tensors W_Q (H, d_k, p), W_K (H_kv, d_k, p), W_V (H_kv, d_v, p), W_O (H, p, d_v) and the optional
biases b_Q (H, d_k), b_K (H_kv, d_k), b_V (H_kv, d_v), b_O (p), as NumPy arrays or tensors (detached
and copied to the CPU), stored as F32 or F64 after their dtype (float64 unless float32). Metadata:
rope_theta, and mask ("strict" | "inclusive") and temperature when given. The format: 8 bytes of
little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
{...}} padded with spaces to a multiple of 8, then the tensors' little-endian bytes in order.
"""
import json
import struct

import numpy as np
import torch


def _array(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return np.ascontiguousarray(x, dtype="<f4" if x.dtype == np.float32 else "<f8")


def save_layer(path, W_Q, W_K, W_V, W_O, b_Q=None, b_K=None, b_V=None, b_O=None, rope_theta=0.0, mask=None,
               temperature=None):
    named = {"W_Q": W_Q, "W_K": W_K, "W_V": W_V, "W_O": W_O, "b_Q": b_Q, "b_K": b_K, "b_V": b_V, "b_O": b_O}
    header, blobs, offset = {}, [], 0
    for name, x in named.items():
        if x is None:
            continue
        a = _array(x)
        header[name] = {"dtype": "F32" if a.dtype == np.float32 else "F64", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    metadata = {"rope_theta": repr(float(rope_theta))}
    if mask is not None:
        metadata["mask"] = str(mask)
    if temperature is not None:
        metadata["temperature"] = repr(float(temperature))
    header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
