"""What the Python tests share: the skip when PyTorch is missing, seeded inputs, and an independent
pure-PyTorch formula of the barrier (docs/math.md sections 2.1, 2.2 and 3) that shares no code with
the library: per-token Jacobian blocks built with einsum, torch.linalg.slogdet, autograd for the
gradients.
"""
import math
import sys

try:
    import torch
except ImportError:
    print("PyTorch is not installed (python3-torch): test skipped")
    sys.exit(77)

torch.set_num_threads(1)

MASKS = ("strict", "inclusive")
BACKENDS = ("cpu", "simd")
POLICIES = ("exact", "clamp", "extended")


def random_heads(N, p, H, d_k, d_v, batch=None, dtype=torch.float64, seed=0, qk=0.7, vo=0.5):
    """U (N, p) or (batch, N, p) and W_Q, W_K (H, d_k, p), W_V (H, d_v, p), W_O (H, p, d_v), seeded
    normals; qk and vo scale the logit and value weights (their products set how far J_t is from I)."""
    g = torch.Generator().manual_seed(seed)
    shape = (N, p) if batch is None else (batch, N, p)
    U = torch.randn(shape, generator=g, dtype=dtype)
    W_Q = qk * torch.randn((H, d_k, p), generator=g, dtype=dtype)
    W_K = qk * torch.randn((H, d_k, p), generator=g, dtype=dtype)
    W_V = vo * torch.randn((H, d_v, p), generator=g, dtype=dtype)
    W_O = vo * torch.randn((H, p, d_v), generator=g, dtype=dtype)
    return U, W_Q, W_K, W_V, W_O


def jacobian_blocks(U, W_Q, W_K, W_V, W_O, mask="strict", temperature=0.0):
    """J (N, p, p) of one sequence U (N, p), docs/math.md sections 2.1 and 2.2:
      A_h = W_K^T W_Q / tau, V_h = W_O W_V, a_ts = softmax_s over the past P(t) of (W_Q u_t).(W_K u_s) / tau,
      ubar_t = sum_s a_ts u_s, C_t = sum_s a_ts (u_s - ubar_t)(u_s - ubar_t)^T,
      strict:    J_t = I - sum_h V_h C_t A_h                                        (s < t)
      inclusive: J_t = I - sum_h V_h [a_tt I + C_t A_h + a_tt (u_t - ubar_t)(A_h u_t)^T]  (s <= t)"""
    N, p = U.shape
    d_k = W_Q.shape[1]
    tau = temperature if temperature else math.sqrt(d_k)
    A = torch.einsum("hki,hkj->hij", W_K, W_Q) / tau                           # (H, p, p)
    V = torch.einsum("hiv,hvj->hij", W_O, W_V)                                  # (H, p, p)
    logits = torch.einsum("hki,ti,hkj,sj->hts", W_Q, U, W_K, U) / tau           # (H, N, N)
    past = torch.tril(torch.ones(N, N, dtype=torch.bool), diagonal=-1 if mask == "strict" else 0)
    # finfo.min instead of -inf: a row with an empty past (t = 0, strict) gets weights 0, not NaN
    a = torch.softmax(logits.masked_fill(~past, torch.finfo(U.dtype).min), dim=-1) * past
    ubar = torch.einsum("hts,si->hti", a, U)                                    # (H, N, p)
    D = U[None, None, :, :] - ubar[:, :, None, :]                               # (H, N, N, p): u_s - ubar_t
    C = torch.einsum("hts,htsi,htsj->htij", a, D, D)                            # (H, N, p, p)
    M = torch.einsum("htij,hjk->htik", C, A)
    if mask == "inclusive":
        a_tt = torch.diagonal(a, dim1=1, dim2=2)[..., None, None]               # (H, N, 1, 1)
        Au = torch.einsum("hij,tj->hti", A, U)
        d = U[None] - ubar
        M = M + a_tt * (torch.eye(p, dtype=U.dtype) + torch.einsum("hti,htj->htij", d, Au))
    return torch.eye(p, dtype=U.dtype) - torch.einsum("hij,htjk->tik", V, M)


def barrier_values(J, policy="extended", eps=1e-8, z0=1e-2):
    """b_t = f(det J_t) per token from torch.linalg.slogdet (docs/math.md section 3):
    exact -log z (+inf for z <= 0), clamp -log max(z, eps), extended -log z for z >= z0 and
    -log z0 - (z - z0) / z0 below."""
    sign, logabs = torch.linalg.slogdet(J)
    log_branch = -logabs
    if policy == "exact":
        return torch.where(sign > 0, log_branch, torch.full_like(logabs, math.inf))
    threshold = eps if policy == "clamp" else z0
    on_log = (sign > 0) & (logabs >= math.log(threshold))
    if policy == "clamp":
        below = torch.full_like(logabs, -math.log(eps))
    else:
        below = -math.log(z0) - (sign * torch.exp(logabs) - z0) / z0
    return torch.where(on_log, log_branch, below)


def first_counted(mask):
    """The first non-trivial token: 2 under the strict mask (J_0 = J_1 = I), 0 under the inclusive one."""
    return 2 if mask == "strict" else 0


def barrier_formula(U, W_Q, W_K, W_V, W_O, mask="strict", policy="extended", eps=1e-8, z0=1e-2, temperature=0.0):
    """The penalty: mean of b_t over the non-trivial tokens of U (N, p), or over those of every
    sequence of U (B, N, p) pooled."""
    Us = U if U.dim() == 3 else U[None]
    b = [barrier_values(jacobian_blocks(u, W_Q, W_K, W_V, W_O, mask, temperature), policy, eps, z0)[first_counted(mask):]
         for u in Us]
    return torch.cat(b).mean()


def dets(U, W_Q, W_K, W_V, W_O, mask="strict"):
    """det J_t of the non-trivial tokens of every sequence, flattened (to place thresholds away from them)."""
    Us = U if U.dim() == 3 else U[None]
    with torch.no_grad():
        return torch.cat([torch.linalg.det(jacobian_blocks(u, W_Q, W_K, W_V, W_O, mask))[first_counted(mask):]
                          for u in Us])


def threshold_between(values):
    """A threshold in the widest gap between consecutive sorted values in their middle half, so that
    tokens lie on both sides of it and none near it; returns (threshold, half-width of the gap)."""
    v = torch.sort(values).values.tolist()
    lo, hi = len(v) // 4, max(len(v) * 3 // 4, len(v) // 4 + 1)
    gaps = [(v[i + 1] - v[i], i) for i in range(lo, min(hi, len(v) - 1))]
    width, i = max(gaps)
    return 0.5 * (v[i] + v[i + 1]), 0.5 * width
