#!/usr/bin/env python3
"""suptok-analyze end to end, against an independent NumPy computation.

usage: analyze_cli.py SUPTOK_ANALYZE WORKDIR

Writes a two-head layer in the suptok naming (a safetensors file written by hand) and embeddings
U (N, p) as .npy, runs suptok-analyze on them, and checks its JSON and CSV against J_t computed
here by central differences of a plain NumPy attention forward (u_t -> u_t - mu_t, strict mask,
temperature sqrt(d_k)): sign and log|det J_t|, b_t (extended policy, every det above z0 here),
sigma_min and the signed margin from NumPy's SVD, the support flags of the rule delta = 0.1,
and the penalty. Central differences with h = 1e-5 on O(1) entries carry errors of about
h^2 |f'''| ~ 1e-10 plus rounding 1e-16 / h ~ 1e-11; the bound is 1e-8 (absolute on log|det|,
relative on sigma_min). Then every documented bad input exits with status 2 and one line on
stderr. Exits 77 (ctest: skipped) without NumPy.
"""
import json
import os
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("NumPy is missing: skipped")
    sys.exit(77)

TOL = 1e-8


def write_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        data = np.ascontiguousarray(a, dtype="<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def attention(U, W_Q, W_K, W_V, W_O):
    """mu (N, p) of the strict causal mask: mu_t = sum_h W_O^h sum_{s<t} a_ts W_V^h u_s."""
    N, p = U.shape
    mu = np.zeros((N, p))
    for h in range(W_Q.shape[0]):
        q, k, v = U @ W_Q[h].T, U @ W_K[h].T, U @ W_V[h].T
        tau = np.sqrt(W_Q.shape[1])
        for t in range(1, N):
            l = k[:t] @ q[t] / tau
            a = np.exp(l - l.max())
            a /= a.sum()
            mu[t] += W_O[h] @ (a @ v[:t])
    return mu


def jacobian(U, weights, t, h=1e-5):
    p = U.shape[1]
    J = np.zeros((p, p))
    for j in range(p):
        Up, Um = U.copy(), U.copy()
        Up[t, j] += h
        Um[t, j] -= h
        rp = Up[t] - attention(Up, *weights)[t]
        rm = Um[t] - attention(Um, *weights)[t]
        J[:, j] = (rp - rm) / (2 * h)
    return J


def run(cmd, expect):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != expect:
        sys.exit(f"FAILED: {' '.join(cmd)}: exit {r.returncode}, expected {expect}\n{r.stdout}{r.stderr}")
    return r


def main():
    exe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(7)
    H, d, p, N = 2, 3, 4, 9
    weights = (rng.normal(size=(H, d, p)), rng.normal(size=(H, d, p)), 0.4 * rng.normal(size=(H, d, p)),
               0.4 * rng.normal(size=(H, p, d)))
    U = rng.normal(size=(N, p))
    ckpt, emb = os.path.join(work, "layer.safetensors"), os.path.join(work, "U.npy")
    write_safetensors(ckpt, dict(zip(["W_Q", "W_K", "W_V", "W_O"], weights)))
    np.save(emb, U)
    out_json, out_csv = os.path.join(work, "out.json"), os.path.join(work, "out.csv")
    run([exe, "--embeddings", emb, "--weights", ckpt, "--json", out_json, "--csv", out_csv], 0)
    doc = json.load(open(out_json))
    seq = doc["sequences"][0]["columns"]
    assert doc["precision"] == "double" and doc["format"] == "suptok", doc
    worst = 0.0
    bs = []
    for t in range(N):
        J = jacobian(U, weights, t)
        sign, logdet = np.linalg.slogdet(J)
        smin = np.linalg.svd(J, compute_uv=False)[-1]
        assert seq["position"][t] == t
        assert seq["sign"][t] == int(sign), (t, seq["sign"][t], sign)
        errs = [abs(seq["log_det"][t] - logdet), abs(seq["sigma_min"][t] - smin) / smin,
                abs(seq["signed_margin"][t] - sign * smin) / smin]
        if t >= 2:  # counted tokens (strict mask): b_t = -log det J_t above z0 = 1e-2
            assert np.exp(logdet) > 1e-2
            errs.append(abs(seq["b"][t] + logdet))
            bs.append(-logdet)
            assert seq["support"][t] == bool(sign * smin <= 0.1), (t, seq["support"][t], smin)
        worst = max(worst, max(errs))
    penalty = float(np.mean(bs))
    worst = max(worst, abs(doc["totals"]["penalty"] - penalty))
    print(f"suptok-analyze vs NumPy central differences: worst error {worst:.3g} (bound {TOL:g})")
    assert worst < TOL, worst
    assert doc["totals"]["counted_tokens"] == N - 2
    lines = open(out_csv).read().splitlines()
    assert lines[0] == "sequence,position,sign,log_det,b,signed_margin,sigma_min,kappa,support", lines[0]
    assert len(lines) == N + 1

    # A batch (B, N, p) in float32: computed in float, one table per sequence.
    np.save(emb, np.stack([U, U[::-1]]).astype(np.float32))
    run([exe, "--embeddings", emb, "--weights", ckpt, "--json", out_json], 0)
    doc = json.load(open(out_json))
    assert doc["precision"] == "float" and len(doc["sequences"]) == 2
    np.save(emb, U)

    # Bad input: exit status 2, one line on stderr naming what is wrong.
    bad = {
        "missing weights": [exe, "--embeddings", emb, "--weights", os.path.join(work, "none.safetensors")],
        "missing embeddings": [exe, "--embeddings", os.path.join(work, "none.npy"), "--weights", ckpt],
        "bad policy": [exe, "--embeddings", emb, "--weights", ckpt, "--policy", "soft"],
        "bad support": [exe, "--embeddings", emb, "--weights", ckpt, "--support", "k=-1"],
        "bad mask": [exe, "--embeddings", emb, "--weights", ckpt, "--mask", "full"],
        "bad format": [exe, "--embeddings", emb, "--weights", ckpt, "--format", "bert"],
        "simd backend": [exe, "--embeddings", emb, "--weights", ckpt, "--backend", "simd"],
        "no such layer": [exe, "--embeddings", emb, "--weights", ckpt, "--layer", "3"],
        "unknown option": [exe, "--embeddings", emb, "--weights", ckpt, "--frobnicate"],
        "required option": [exe, "--weights", ckpt],
    }
    wrong_p = os.path.join(work, "U5.npy")
    np.save(wrong_p, rng.normal(size=(N, p + 1)))
    bad["embeddings of the wrong width"] = [exe, "--embeddings", wrong_p, "--weights", ckpt]
    not_npy = os.path.join(work, "text.npy")
    open(not_npy, "w").write("not a numpy file\n")
    bad["not a .npy file"] = [exe, "--embeddings", not_npy, "--weights", ckpt]
    for what, cmd in bad.items():
        r = run(cmd, 2)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "suptok-analyze" in lines[0], (what, r.stderr)
        if what == "embeddings of the wrong width":
            assert "--embeddings" in lines[0], lines[0]
        print(f"{what}: {lines[0]}")
    run([exe, "--help"], 0)
    print("suptok-analyze: all checks passed")


if __name__ == "__main__":
    main()
