#!/usr/bin/python3
"""bench/compare/torch_workloads.py: the PyTorch side of the comparison (driven by compare.sh).

Subcommands
  inputs WORKLOAD B N p SEED FILE     write the seeded float32 inputs shared by both sides
  run WORKLOAD B N p REPS INPUTS OUT  time the workload in PyTorch (warm-up, median of REPS),
                                      write its outputs (raw float32, the order of
                                      suptok_workloads.cpp) and print a RESULT line
  baseline                            import torch and touch BLAS/LAPACK, compute nothing else:
                                      the interpreter's resident set, subtracted by the driver
  check WORKLOAD B N p TORCH_OUT SUPTOK_OUT   relative differences of the two sides' outputs
  blas                                which BLAS torch runs (loaded library, OpenBLAS core)
  table TSV                           the comparison table (markdown) from the driver's rows

The PyTorch code is written the way a researcher writes it: full (N, N) masked logits, softmax,
einsum for the second moments, torch.linalg.slogdet, autograd for the backward. Float32.
layer_barrier_fwd is a GPT-2-shaped layer (H = p / 64 heads of width 64, biases on Q, K, V) in the
projected form, det J_t = det(I - K_t), chunks of 128 query tokens; layer_barrier_fwd_bwd its penalty
(mean of b_t) and the gradients by autograd. layer_analysis adds the margins
of the same layer: J_t = I - W Y_t (p, p) per chunk, torch.linalg.svdvals, and the support tokens
(signed margin <= 0.1).
Threads: torch.set_num_threads(OMP_NUM_THREADS); the driver also sets OPENBLAS_NUM_THREADS.
"""
import math
import os
import sys
import time

import numpy as np


def shapes(workload, B, N, p):
    """The input arrays in file order, and the output arrays (torch and suptok write the same)."""
    if workload in ("layer_barrier_fwd", "layer_barrier_fwd_bwd", "layer_analysis"):
        if B != 1 or p % 64:
            sys.exit(workload + " takes B = 1 and p a multiple of 64")
        H, d = p // 64, 64
        ins = ([("U", (N, p))] + [(w, (H, d, p)) for w in ("W_Q", "W_K", "W_V")] + [("W_O", (H, p, d))] +
               [(b, (H, d)) for b in ("b_Q", "b_K", "b_V")])
        outs = [("b", (N - 2,))] + ([("sigma_min", (N - 2,))] if workload == "layer_analysis" else [])
        if workload == "layer_barrier_fwd_bwd":  # b_K, b_V: gradients 0 in exact arithmetic, not compared
            outs = ([("penalty", (1,)), ("dU", (N, p))] + [("d" + w, (H, d, p)) for w in ("W_Q", "W_K", "W_V")] +
                    [("dW_O", (H, p, d)), ("db_Q", (H, d))])
    elif workload.startswith("barrier"):
        ins = [("U", (B, N, p)), ("W_Q", (p, p)), ("W_K", (p, p))]
        outs = [("penalty", (1,))]
        if workload == "barrier_fwd_bwd":
            outs += [("dU", (B, N, p)), ("dW_Q", (p, p)), ("dW_K", (p, p))]
    elif workload.startswith("attention"):
        if B != 1:
            sys.exit("attention workloads take B = 1")
        ins = [("U", (N, p))] + [(w, (p, p)) for w in ("W_Q", "W_K", "W_V", "W_O")] + [("dMu", (N, p))]
        outs = [("mu", (N, p))]
        if workload == "attention_fwd_bwd":
            outs += [("dU", (N, p))] + [("d" + w, (p, p)) for w in ("W_Q", "W_K", "W_V", "W_O")]
    else:
        sys.exit("unknown workload " + workload)
    return ins, outs


def make_inputs(workload, B, N, p, seed):
    """U, dMu ~ N(0, 1). Barrier: W ~ N(0, 0.25 / p), so that ||C A|| stays well below 1 and every
    det J_t > 0 (the exact policy is finite). Attention: W ~ N(0, 1 / p), logits of order 1.
    Layer: W_Q, W_K, W_V of standard deviation 0.05, W_O 0.02, biases 0.02 (near GPT-2's scale;
    every det J_t > 0 at p = 768)."""
    rng = np.random.default_rng(seed)
    ins, _ = shapes(workload, B, N, p)
    w_std = 0.5 / math.sqrt(p) if workload.startswith("barrier") else 1 / math.sqrt(p)
    layer_std = {"W_Q": 0.05, "W_K": 0.05, "W_V": 0.05, "W_O": 0.02, "b_Q": 0.02, "b_K": 0.02, "b_V": 0.02}
    arrays = {}
    for name, shape in ins:
        std = layer_std[name] if workload.startswith("layer") and name in layer_std else (
            w_std if name.startswith("W") else 1.0)
        arrays[name] = (rng.standard_normal(shape) * std).astype(np.float32)
    return arrays


def read_arrays(path, specs):
    flat = np.fromfile(path, dtype="<f4")
    need = sum(math.prod(s) for _, s in specs)
    if flat.size != need:
        sys.exit(f"{path}: {flat.size} floats, expected {need}")
    out, pos = {}, 0
    for name, shape in specs:
        n = math.prod(shape)
        out[name] = flat[pos:pos + n].reshape(shape)
        pos += n
    return out


def write_arrays(path, arrays):
    with open(path, "wb") as f:
        for a in arrays:
            np.ascontiguousarray(a, dtype="<f4").tofile(f)


# ---- the workloads, as a researcher writes them ----

def barrier_penalty(torch, U, W_Q, W_K):
    """Mean over sequences and tokens t >= 2 of -log det(I - C_t A), strict mask, V = I."""
    B, N, p = U.shape
    tau = math.sqrt(p)
    Q = U @ W_Q.T                                                  # (B, N, p)
    K = U @ W_K.T                                                  # (B, N, p)
    logits = Q @ K.transpose(1, 2) / tau                           # (B, N, N)
    past = torch.ones(N, N, dtype=torch.bool).tril(diagonal=-1)    # s < t
    logits = logits.masked_fill(~past, float("-inf"))
    a = torch.softmax(logits[:, 2:], dim=-1)                       # (B, N-2, N): rows 0, 1 trivial
    outer = torch.einsum("bsi,bsj->bsij", U, U)                    # (B, N, p, p)
    m2 = torch.einsum("bts,bsij->btij", a, outer)                  # (B, N-2, p, p)
    ubar = torch.einsum("bts,bsi->bti", a, U)                      # (B, N-2, p)
    C = m2 - ubar.unsqueeze(-1) * ubar.unsqueeze(-2)               # (B, N-2, p, p)
    A = W_K.T @ W_Q / tau                                          # (p, p)
    J = torch.eye(p) - C @ A                                       # (B, N-2, p, p)
    sign, logabsdet = torch.linalg.slogdet(J)
    b = torch.where(sign > 0, -logabsdet, torch.full_like(logabsdet, float("inf")))
    return b.mean()


def projected_layer_chunks(torch, U, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, chunk=128):
    """Per chunk of query tokens t >= 2 of one sequence (strict mask): X (H, T, d_v, d_k), the value-key
    covariances X^h_t = Cov_a(v_s, k_s) of the projected form (docs/math.md 2.3), and
    P (H, d_k, n), P_hh' = W_Q[h] W_O[h'] / tau, so that K_t block (h, h') = X^h_t P_hh'."""
    N, p = U.shape
    H, d, _ = W_Q.shape
    n, tau = H * d, math.sqrt(d)
    q = torch.einsum("np,hdp->hnd", U, W_Q) + b_Q[:, None, :]       # (H, N, d)
    k = torch.einsum("np,hdp->hnd", U, W_K) + b_K[:, None, :]
    v = torch.einsum("np,hdp->hnd", U, W_V) + b_V[:, None, :]
    past = torch.ones(N, N, dtype=torch.bool).tril(diagonal=-1)     # s < t
    logits = (q @ k.transpose(1, 2) / tau).masked_fill(~past, float("-inf"))
    a = torch.softmax(logits[:, 2:], dim=-1)                        # (H, N-2, N)
    P = torch.einsum("hdp,gpe->hdge", W_Q, W_O).reshape(H, d, n) / tau  # (H, d_k, n)
    vk = (v[:, :, :, None] * k[:, :, None, :]).reshape(H, N, d * d)  # value-key outer products
    for t0 in range(0, N - 2, chunk):
        ac = a[:, t0:t0 + chunk]                                    # (H, T, N)
        T = ac.shape[1]
        X = (ac @ vk).reshape(H, T, d, d) - (ac @ v)[..., :, None] * (ac @ k)[..., None, :]
        yield X, P


def barrier_of(torch, sign, logabsdet):
    return torch.where(sign > 0, -logabsdet, torch.full_like(logabsdet, float("inf")))


def projected_layer_barrier(torch, U, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, chunk=128):
    """b_t = -log det J_t for t >= 2 of one sequence, strict mask, projected form:
    det J_t = det(I - K_t)."""
    n = W_Q.shape[0] * W_Q.shape[1]
    eye = torch.eye(n)
    b = []
    for X, P in projected_layer_chunks(torch, U, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, chunk):
        K = torch.einsum("htvk,hkn->thvn", X, P).reshape(X.shape[1], n, n)
        b.append(barrier_of(torch, *torch.linalg.slogdet(eye - K)))
    return torch.cat(b)


def projected_layer_analysis(torch, U, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, chunk=128):
    """b_t, sigma_min(J_t) and the support tokens (signed margin sign(det J_t) sigma_min(J_t) <= 0.1)
    for t >= 2: J_t = I_p - W Y_t with W = [W_O[0] ... W_O[H-1]] (p, n) and the rows of head h of
    Y_t (n, p) X^h_t W_Q[h] / tau; det J_t = det(I - K_t) from the smaller block."""
    H, d, p = W_Q.shape
    n, tau = H * d, math.sqrt(d)
    W = W_O.permute(1, 0, 2).reshape(p, n)                          # (p, n)
    eye_n, eye_p = torch.eye(n), torch.eye(p)
    b, sigma_min, support = [], [], []
    for X, P in projected_layer_chunks(torch, U, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, chunk):
        T = X.shape[1]
        K = torch.einsum("htvk,hkn->thvn", X, P).reshape(T, n, n)
        sign, logabsdet = torch.linalg.slogdet(eye_n - K)
        Y = torch.einsum("htvk,hkp->thvp", X, W_Q / tau).reshape(T, n, p)
        s = torch.linalg.svdvals(eye_p - W @ Y)                     # (T, p), descending
        b.append(barrier_of(torch, sign, logabsdet))
        sigma_min.append(s[:, -1])
        support.append(sign * s[:, -1] <= 0.1)
    return torch.cat(b), torch.cat(sigma_min), torch.cat(support)


def attention(torch, U, W_Q, W_K, W_V, W_O):
    """mu = softmax(masked Q K^T / sqrt(d)) V W_O^T, inclusive causal mask, one head."""
    N, d = U.shape
    Q, K, V = U @ W_Q.T, U @ W_K.T, U @ W_V.T                      # (N, d) each
    logits = Q @ K.T / math.sqrt(d)                                # (N, N)
    future = torch.ones(N, N, dtype=torch.bool).triu(diagonal=1)   # s > t
    a = torch.softmax(logits.masked_fill(future, float("-inf")), dim=-1)
    return (a @ V) @ W_O.T                                         # (N, d)


def run(workload, B, N, p, reps, inputs, out):
    import torch
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    ins, _ = shapes(workload, B, N, p)
    x = {k: torch.from_numpy(v.copy()) for k, v in read_arrays(inputs, ins).items()}
    backward = workload.endswith("_bwd")
    layer_inputs = ("U", "W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V")
    if workload == "layer_barrier_fwd":
        params = []
        def forward():
            return projected_layer_barrier(torch, *(x[k] for k in layer_inputs))
    elif workload == "layer_barrier_fwd_bwd":
        params = ["U", "W_Q", "W_K", "W_V", "W_O", "b_Q"]
        def forward():  # the penalty: mean of b_t over t >= 2
            return projected_layer_barrier(torch, *(x[k] for k in layer_inputs)).mean()
    elif workload == "layer_analysis":
        params = []
        def forward():  # b_t and sigma_min(J_t), one output array (the support flags are computed, not written)
            b, sigma_min, _ = projected_layer_analysis(torch, *(x[k] for k in layer_inputs))
            return torch.cat([b, sigma_min])
    elif workload.startswith("barrier"):
        params = ["U", "W_Q", "W_K"]
        def forward():
            return barrier_penalty(torch, x["U"], x["W_Q"], x["W_K"])
    else:
        params = ["U", "W_Q", "W_K", "W_V", "W_O"]
        def forward():
            return attention(torch, x["U"], x["W_Q"], x["W_K"], x["W_V"], x["W_O"])
    for k in params:
        x[k].requires_grad_(backward)

    def once():
        if not backward:
            with torch.no_grad():
                return forward(), []
        for k in params:
            x[k].grad = None
        y = forward()
        if "dMu" in x:
            y.backward(x["dMu"])
        else:
            y.backward()
        return y.detach(), [x[k].grad for k in params]

    once()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        y, grads = once()
        times.append((time.perf_counter() - t0) * 1e3)
    write_arrays(out, [y.numpy().reshape(-1)] + [g.numpy() for g in grads])
    print(f"RESULT side=torch workload={workload} B={B} N={N} p={p} threads={torch.get_num_threads()} "
          f"median_ms={float(np.median(times)):.4f} times_ms={','.join(f'{t:.4f}' for t in times)}")


def baseline():
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    a = torch.eye(256) + 0.01 * torch.ones(256, 256)
    torch.linalg.slogdet(a @ a)  # loads BLAS and LAPACK and allocates OpenBLAS's buffers
    print("RESULT side=torch workload=baseline median_ms=0 times_ms=0")


def blas():
    """Which BLAS the torch process runs: the libblas / libopenblas it mapped, OpenBLAS's core."""
    import ctypes
    import torch
    torch.ones(64, 64) @ torch.ones(64, 64)
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in os.path.basename(path) or "lapack" in os.path.basename(path):
                libs.add(os.path.realpath(path))
    desc = "libs: " + " ".join(sorted(libs))
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            desc = (f"OpenBLAS {lib.openblas_get_config().decode()} core {lib.openblas_get_corename().decode()}"
                    f" ({desc})")
            break
        except (OSError, AttributeError):
            continue
    else:
        if any("/blas/" in l for l in libs):
            desc = "reference BLAS (netlib, slow) (" + desc + ")"
    print(f"torch {torch.__version__}; BLAS: {desc}")


def check(workload, B, N, p, torch_out, suptok_out):
    """Per output: max |torch - suptok| / max |torch| (for the penalty: the plain relative
    difference). Prints one line; exits 1 when an output differs by more than 1e-3 (float32 on both
    sides, sums over up to N = 2048 terms and a p = 64 LU: a few 1e-5 expected), or sigma_min by
    more than 1e-2 (below)."""
    _, outs = shapes(workload, B, N, p)
    t = read_arrays(torch_out, outs)
    s = read_arrays(suptok_out, outs)
    # suptok's sigma_min is the inverse iteration's estimate (docs/layers.md), PyTorch's the exact
    # SVD: where the two smallest singular values of J_t are close the iteration stops (100 steps)
    # between them, so the estimate may differ by up to their gap; 1e-2 of the largest sigma_min.
    tolerance = {"sigma_min": 1e-2}
    parts, failed = [], False
    for name, _ in outs:
        a, b = t[name].astype(np.float64), s[name].astype(np.float64)
        scale = np.abs(a).max()
        rel = float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(b).max())
        failed = failed or not (rel <= tolerance.get(name, 1e-3))
        parts.append(f"{name} {rel:.1e}")
    value = f"penalty torch {t['penalty'][0]:.6g} suptok {s['penalty'][0]:.6g}; " if "penalty" in t else ""
    print(f"check {workload} B={B} N={N} p={p}: {value}rel. diff " + ", ".join(parts))
    sys.exit(1 if failed else 0)


def table(tsv):
    """Markdown table from the driver's TSV rows: workload B N p threads torch_ms suptok_ms
    torch_rss_kb suptok_rss_kb torch_base_kb suptok_base_kb blas check."""
    rows = [l.rstrip("\n").split("\t") for l in open(tsv) if l.strip()]
    print("| workload | B, N, p | threads | torch ms | suptok ms | torch / suptok | torch peak RSS MB "
          "(over base) | suptok peak RSS MB (over base) | RSS ratio | torch BLAS | max rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w, B, N, p, th, tms, sms, trss, srss, tbase, sbase, blas_name, diff in rows:
        tover = (float(trss) - float(tbase)) / 1024
        sover = (float(srss) - float(sbase)) / 1024
        ratio_mem = f"{tover / sover:.1f}" if sover > 0.05 else "-"
        print(f"| {w} | {B}, {N}, {p} | {th} | {float(tms):.2f} | {float(sms):.2f} | "
              f"{float(tms) / float(sms):.1f}x | {float(trss) / 1024:.0f} (+{tover:.0f}) | "
              f"{float(srss) / 1024:.1f} (+{sover:.1f}) | {ratio_mem} | {blas_name} | {diff} |")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "inputs" and len(argv) == 8:
        w, B, N, p, seed = argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6])
        write_arrays(argv[7], make_inputs(w, B, N, p, seed).values())
    elif cmd == "run" and len(argv) == 9:
        run(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6]), argv[7], argv[8])
    elif cmd == "baseline":
        baseline()
    elif cmd == "blas":
        blas()
    elif cmd == "check" and len(argv) == 8:
        check(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), argv[6], argv[7])
    elif cmd == "table" and len(argv) == 3:
        table(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
