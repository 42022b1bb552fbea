#!/usr/bin/env python3
"""Tiny checkpoints in the GPT-2, Llama and suptok namings, with reference attention outputs.

usage: make_checkpoints.py OUTDIR [--no-torch] [PROGRAM ...]

Writes into OUTDIR (emptied first):
  <case>/model.safetensors (+ config.json)   tiny checkpoints, F32 unless stated, written by hand
                                             (8-byte header length, JSON header, little-endian data)
  U.npy (N, p) float32, U_batch.npy (B, N, p) float32, U_resid.npy (N, p) float32 (a residual
  stream, to be normed first)
  <case>_L<l>.npy, <case>_L<l>_norm.npy      the attention output of layer l on U and on
                                             norm(U_resid), computed by PyTorch in float32
  manifest.json                              one entry per (case, layer, norm): files and settings
The reference attention is written here in the style of each family's PyTorch model (GPT-2: fused
Conv1D c_attn split into q, k, v, per-head scores over sqrt(d), causal softmax, c_proj; Llama:
q/k/v projections, rotate-half rotary embeddings at positions 0..N-1, key/value heads repeated for
grouped queries, causal softmax, o_proj; suptok naming: per-head loops with explicit rotation
matrices) and shares no code with the library.

Then runs each PROGRAM with SUPTOK_MODELS_DIR=OUTDIR and exits with the first failing status.
Exits 77 (ctest: skipped) when NumPy is missing, or PyTorch unless --no-torch is given (then no
reference outputs are written and manifest entries have "reference": null).
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("NumPy is not installed (python3-numpy): test skipped")
    sys.exit(77)

args = sys.argv[1:]
use_torch = "--no-torch" not in args
args = [a for a in args if a != "--no-torch"]
if not args:
    print(__doc__)
    sys.exit(2)
outdir, programs = args[0], args[1:]
if use_torch:
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (python3-torch): test skipped")
        sys.exit(77)
    torch.set_num_threads(1)

shutil.rmtree(outdir, ignore_errors=True)
os.makedirs(outdir)
rng = np.random.default_rng(20240611)

N, B, P = 6, 2, 8


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> numpy array (float32, float64, float16) or ("BF16", float32 array)."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, a in tensors.items():
        if isinstance(a, tuple):  # ("BF16", float32 array): keep the high 16 bits (values chosen exact)
            dtype, arr = a
            bits = np.ascontiguousarray(arr, dtype="<f4").view("<u4") >> 16
            data = bits.astype("<u2").tobytes()
            shape = arr.shape
        else:
            code = {np.float32: "F32", np.float64: "F64", np.float16: "F16"}[a.dtype.type]
            dtype = code
            data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
            shape = a.shape
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def randn(*shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


# ---- the checkpoints ----
cases = {}  # name -> dict(tensors, config, metadata, family, layers, settings)

# GPT-2: p = 8, H = 2 (d = 4), two layers, plain names.
def gpt2_tensors(prefix, layers, p):
    t = {}
    for l in range(layers):
        at = "%sh.%d." % (prefix, l)
        t[at + "ln_1.weight"] = (1 + 0.2 * rng.standard_normal(p)).astype(np.float32)
        t[at + "ln_1.bias"] = randn(p, scale=0.1)
        t[at + "attn.c_attn.weight"] = randn(p, 3 * p, scale=0.5)
        t[at + "attn.c_attn.bias"] = randn(3 * p, scale=0.1)
        t[at + "attn.c_proj.weight"] = randn(p, p, scale=0.5)
        t[at + "attn.c_proj.bias"] = randn(p, scale=0.1)
    return t

cases["gpt2"] = dict(family="gpt2", layers=2, tensors=gpt2_tensors("", 2, P),
                     config={"model_type": "gpt2", "n_embd": P, "n_head": 2, "n_layer": 2,
                             "layer_norm_epsilon": 1e-5})
# GPT-2 with the "transformer." prefix, H = 4 (d = 2), the stored causal-mask buffer, and
# attention scaled by the inverse layer index.
t = gpt2_tensors("transformer.", 2, P)
for l in range(2):
    t["transformer.h.%d.attn.bias" % l] = np.tril(np.ones((1, 1, 8, 8), dtype=np.float32))
cases["gpt2_prefixed"] = dict(family="gpt2", layers=2, tensors=t,
                              config={"model_type": "gpt2", "n_embd": P, "n_head": 4,
                                      "layer_norm_epsilon": 1e-3, "scale_attn_by_inverse_layer_idx": True})

# Llama: p = 8, H_q = 4, H_kv = 2, head_dim = 2, two layers, "model." prefix, no biases.
def llama_tensors(prefix, layers, p, hq, hkv, d, biases):
    t = {}
    for l in range(layers):
        at = "%slayers.%d." % (prefix, l)
        t[at + "input_layernorm.weight"] = (1 + 0.2 * rng.standard_normal(p)).astype(np.float32)
        t[at + "self_attn.q_proj.weight"] = randn(hq * d, p, scale=0.6)
        t[at + "self_attn.k_proj.weight"] = randn(hkv * d, p, scale=0.6)
        t[at + "self_attn.v_proj.weight"] = randn(hkv * d, p, scale=0.5)
        t[at + "self_attn.o_proj.weight"] = randn(p, hq * d, scale=0.5)
        if biases:
            t[at + "self_attn.q_proj.bias"] = randn(hq * d, scale=0.2)
            t[at + "self_attn.k_proj.bias"] = randn(hkv * d, scale=0.2)
            t[at + "self_attn.v_proj.bias"] = randn(hkv * d, scale=0.2)
            t[at + "self_attn.o_proj.bias"] = randn(p, scale=0.2)
    return t

cases["llama"] = dict(family="llama", layers=2, tensors=llama_tensors("model.", 2, P, 4, 2, 2, False),
                      config={"model_type": "llama", "hidden_size": P, "num_attention_heads": 4,
                              "num_key_value_heads": 2, "rope_theta": 500.0, "rms_norm_eps": 1e-5,
                              "rope_scaling": None})
# Llama-family with biases (as Qwen2 has), no "model." prefix, head_dim 4 given explicitly
# (H_q d = 16 != p), multi-query (H_kv = 1), default rope_theta.
cases["llama_bias"] = dict(family="llama", layers=1, tensors=llama_tensors("", 1, P, 4, 1, 4, True),
                           config={"model_type": "qwen2", "hidden_size": P, "num_attention_heads": 4,
                                   "num_key_value_heads": 1, "head_dim": 4})
# The same weights in BF16 (values rounded to BF16 first, so the file holds them exactly).
t = llama_tensors("model.", 1, P, 2, 2, 4, False)
t = {k: ("BF16", (v.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)) for k, v in t.items()}
cases["llama_bf16"] = dict(family="llama", layers=1, tensors=t,
                           config={"hidden_size": P, "num_attention_heads": 2})

# suptok naming, two layers with "{L}." prefixes: H = 2, H_kv = 1, d_k = 4, d_v = 3, biases,
# rotary embeddings (metadata) and the inclusive mask; F64 weights (float32 values, so that the
# float32 reference sees the same numbers).
t = {}
for l in range(2):
    t["%d.W_Q" % l] = rng.standard_normal((2, 4, P)) * 0.6
    t["%d.W_K" % l] = rng.standard_normal((1, 4, P)) * 0.6
    t["%d.W_V" % l] = rng.standard_normal((1, 3, P)) * 0.5
    t["%d.W_O" % l] = rng.standard_normal((2, P, 3)) * 0.5
    t["%d.b_Q" % l] = rng.standard_normal((2, 4)) * 0.2
    t["%d.b_K" % l] = rng.standard_normal((1, 4)) * 0.2
    t["%d.b_V" % l] = rng.standard_normal((1, 3)) * 0.2
    t["%d.b_O" % l] = rng.standard_normal(P) * 0.2
t = {k: v.astype(np.float32).astype(np.float64) for k, v in t.items()}  # F64 holding float32 values
cases["suptok"] = dict(family="suptok", layers=2, tensors=t, config=None,
                       metadata={"rope_theta": "100", "mask": "inclusive"})
# suptok naming without prefix, strict mask, no biases, no rotation, F16 weights (exact in F16).
t = {"W_Q": rng.standard_normal((3, 2, P)), "W_K": rng.standard_normal((3, 2, P)),
     "W_V": rng.standard_normal((3, 2, P)), "W_O": rng.standard_normal((3, P, 2))}
t = {k: (0.5 * v).astype(np.float16) for k, v in t.items()}
cases["suptok_plain"] = dict(family="suptok", layers=1, tensors=t, config=None, metadata=None)

U = randn(N, P)
U_batch = randn(B, N, P)
U_resid = (3.0 + 2.0 * rng.standard_normal((N, P))).astype(np.float32)
np.save(os.path.join(outdir, "U.npy"), U)
np.save(os.path.join(outdir, "U_batch.npy"), U_batch)
np.save(os.path.join(outdir, "U_resid.npy"), U_resid)

for name, c in cases.items():
    os.makedirs(os.path.join(outdir, name))
    write_safetensors(os.path.join(outdir, name, "model.safetensors"), c["tensors"], c.get("metadata"))
    if c["config"] is not None:
        with open(os.path.join(outdir, name, "config.json"), "w") as f:
            json.dump(c["config"], f, indent=1)


# ---- reference attention in PyTorch ----
def as_torch(a):
    if isinstance(a, tuple):
        a = a[1]
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


def causal_softmax(scores, inclusive):
    n = scores.shape[-1]
    allowed = torch.tril(torch.ones(n, n, dtype=torch.bool), diagonal=0 if inclusive else -1)
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    a = torch.softmax(scores, dim=-1)
    return a * allowed  # an empty past (row 0, strict) gets no weight at all


def gpt2_reference(x, t, prefix, l, cfg, norm):
    at = "%sh.%d." % (prefix, l)
    p = x.shape[1]
    H = cfg["n_head"]
    d = p // H
    if norm:
        x = torch.nn.functional.layer_norm(x, (p,), as_torch(t[at + "ln_1.weight"]), as_torch(t[at + "ln_1.bias"]),
                                           cfg.get("layer_norm_epsilon", 1e-5))
    qkv = torch.addmm(as_torch(t[at + "attn.c_attn.bias"]), x, as_torch(t[at + "attn.c_attn.weight"]))  # Conv1D
    q, k, v = qkv.split(p, dim=1)
    split = lambda m: m.view(-1, H, d).permute(1, 0, 2)  # (H, N, d)
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) / torch.full([], d ** 0.5)
    if cfg.get("scale_attn_by_inverse_layer_idx", False):
        scores = scores / float(l + 1)
    o = causal_softmax(scores, True) @ v
    merged = o.permute(1, 0, 2).reshape(-1, p)
    return torch.addmm(as_torch(t[at + "attn.c_proj.bias"]), merged, as_torch(t[at + "attn.c_proj.weight"]))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def llama_reference(x, t, l, cfg, norm):
    prefix = "model." if ("model.layers.%d.self_attn.q_proj.weight" % l) in t else ""
    at = "%slayers.%d." % (prefix, l)
    n, p = x.shape
    hq = cfg["num_attention_heads"]
    hkv = cfg.get("num_key_value_heads", hq)
    d = cfg.get("head_dim", p // hq)
    theta = cfg.get("rope_theta", 10000.0)
    if norm:
        eps = cfg.get("rms_norm_eps", 1e-6)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * as_torch(t[at + "input_layernorm.weight"])

    def proj(name, inp):
        w = as_torch(t[at + "self_attn.%s.weight" % name])
        b = t.get(at + "self_attn.%s.bias" % name)
        return torch.nn.functional.linear(inp, w, None if b is None else as_torch(b))

    q = proj("q_proj", x).view(n, hq, d).transpose(0, 1)
    k = proj("k_proj", x).view(n, hkv, d).transpose(0, 1)
    v = proj("v_proj", x).view(n, hkv, d).transpose(0, 1)
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = torch.outer(torch.arange(n, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    rep = hq // hkv
    k = k[:, None].expand(hkv, rep, n, d).reshape(hq, n, d)
    v = v[:, None].expand(hkv, rep, n, d).reshape(hq, n, d)
    a = causal_softmax(q @ k.transpose(-1, -2) / math.sqrt(d), True)
    o = (a @ v).transpose(0, 1).reshape(n, hq * d)
    return proj("o_proj", o)


def suptok_reference(x, t, l, metadata):
    pre = "%d." % l if ("%d.W_Q" % l) in t else ""
    g = lambda k: as_torch(t[pre + k]) if (pre + k) in t else None
    WQ, WK, WV, WO = g("W_Q"), g("W_K"), g("W_V"), g("W_O")
    bQ, bK, bV, bO = g("b_Q"), g("b_K"), g("b_V"), g("b_O")
    metadata = metadata or {}
    theta = float(metadata.get("rope_theta", "0"))
    inclusive = metadata.get("mask", "strict") == "inclusive"
    n, p = x.shape
    H, dk = WQ.shape[0], WQ.shape[1]
    group = H // WK.shape[0]

    def rotation(pos):  # explicit (dk, dk) rotation of the pairs (i, i + dk/2)
        R = torch.eye(dk)
        if theta == 0:
            return R
        for i in range(dk // 2):
            ang = pos * theta ** (-2.0 * i / dk)
            c, s = math.cos(ang), math.sin(ang)
            R[i, i], R[i, i + dk // 2], R[i + dk // 2, i], R[i + dk // 2, i + dk // 2] = c, -s, s, c
        return R

    mu = torch.zeros(n, p)
    for h in range(H):
        gi = h // group
        outs = []
        for tt in range(n):
            q = rotation(tt) @ (WQ[h] @ x[tt] + (bQ[h] if bQ is not None else 0))
            past = range(tt + 1) if inclusive else range(tt)
            if len(past) == 0:
                outs.append(torch.zeros(WV.shape[1]))
                continue
            ks = torch.stack([rotation(s) @ (WK[gi] @ x[s] + (bK[gi] if bK is not None else 0)) for s in past])
            vs = torch.stack([WV[gi] @ x[s] + (bV[gi] if bV is not None else 0) for s in past])
            a = torch.softmax(ks @ q / math.sqrt(dk), dim=0)
            outs.append(a @ vs)
        mu += torch.stack(outs) @ WO[h].T
    if bO is not None:
        mu += bO
    return mu


manifest = []
for name, c in cases.items():
    for l in range(c["layers"]):
        for norm in ([False, True] if c["family"] != "suptok" else [False]):
            entry = {"case": name, "family": c["family"], "weights": os.path.join(name, "model.safetensors"),
                     "config": os.path.join(name, "config.json") if c["config"] is not None else None,
                     "layer": l, "apply_norm": norm, "embeddings": "U_resid.npy" if norm else "U.npy",
                     "reference": None}
            if use_torch:
                x = torch.from_numpy(U_resid if norm else U)
                with torch.no_grad():
                    if c["family"] == "gpt2":
                        prefix = "transformer." if name == "gpt2_prefixed" else ""
                        ref = gpt2_reference(x, c["tensors"], prefix, l, c["config"], norm)
                    elif c["family"] == "llama":
                        ref = llama_reference(x, c["tensors"], l, c["config"], norm)
                    else:
                        ref = suptok_reference(x, c["tensors"], l, c.get("metadata"))
                ref_name = "%s_L%d%s.npy" % (name, l, "_norm" if norm else "")
                np.save(os.path.join(outdir, ref_name), ref.numpy().astype(np.float32))
                entry["reference"] = ref_name
            manifest.append(entry)
with open(os.path.join(outdir, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
print("make_checkpoints: %d cases, %d manifest entries in %s" % (len(cases), len(manifest), outdir))

env = dict(os.environ, SUPTOK_MODELS_DIR=outdir)
for program in programs:
    print("make_checkpoints: running", program, flush=True)
    status = subprocess.call([program], env=env)
    if status != 0:
        print("make_checkpoints: %s failed with status %d" % (program, status))
        sys.exit(status if 0 < status < 256 and status != 77 else 1)
sys.exit(0)
