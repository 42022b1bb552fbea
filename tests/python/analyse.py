#!/usr/bin/env python3
"""suptok.analyse against independent PyTorch computations of J_t.

1. A plain head stack (N = 10, p = 4, H = 2) under both masks, exact margins (SVD): sign and
   log |det J_t| against torch.linalg.slogdet of common.py's einsum blocks, sigma_min against
   torch.linalg.svdvals, b_t (extended policy; some tokens here have det J_t < 0), the signed margin, the support flags of "k=3" (the 3 smallest signed
   margins among the non-trivial tokens) and the penalty (= suptok.torch.barrier's on the
   reference path). Bound 128 eps relative [measured 32 eps].
2. A layer with biases, grouped-query heads (H = 4 query heads on H_kv = 2) and rotary embeddings
   (theta = 100), as a dict, on a batch (B = 2): J_t = d e_t / d u_t by torch.autograd.functional
   .jacobian of a plain PyTorch forward of that layer (docs/math.md section 2.4), same quantities.
   Bound 128 eps relative [measured 25 eps].
3. float32 NumPy input: float32 columns, and the batch totals pooled over the sequences.
"""
import math
import sys

import numpy as np

from common import barrier_values, first_counted, jacobian_blocks, random_heads, torch

import suptok

EPS = torch.finfo(torch.float64).eps
BOUND = 128


def rotate(x, theta):
    """Rotate-half rotary embedding of rows x (N, d) at positions 0..N-1 (none for theta = 0)."""
    if theta == 0:
        return x
    N, d = x.shape
    angle = torch.arange(N, dtype=x.dtype)[:, None] * theta ** (-torch.arange(0, d // 2, dtype=x.dtype) * 2 / d)
    c, s = torch.cos(angle), torch.sin(angle)
    x1, x2 = x[:, : d // 2], x[:, d // 2:]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=1)


def layer_residual(U, L, mask):
    """e = U - mu(U) of a layer: biases, query head h reading key/value head h // (H / H_kv), rotary
    embeddings on queries and keys, softmax over the past of the mask, tau = sqrt(d_k)."""
    N = U.shape[0]
    H, H_kv = L["W_Q"].shape[0], L["W_K"].shape[0]
    past = torch.tril(torch.ones(N, N, dtype=torch.bool), diagonal=-1 if mask == "strict" else 0)
    mu = L["b_O"].expand(N, -1).clone()
    for h in range(H):
        g = h // (H // H_kv)
        q = rotate(U @ L["W_Q"][h].T + L["b_Q"][h], L["rope_theta"])
        k = rotate(U @ L["W_K"][g].T + L["b_K"][g], L["rope_theta"])
        v = U @ L["W_V"][g].T + L["b_V"][g]
        logits = (q @ k.T / math.sqrt(q.shape[1])).masked_fill(~past, torch.finfo(U.dtype).min)
        a = torch.softmax(logits, dim=1) * past  # the empty past of t = 0 (strict): zero weights
        mu = mu + (a @ v) @ L["W_O"][h].T
    return U - mu


def autograd_blocks(U, L, mask):
    """J_t = d e_t / d u_t (N, p, p) by autograd."""
    full = torch.autograd.functional.jacobian(lambda X: layer_residual(X, L, mask), U)  # (N, p, N, p)
    return torch.stack([full[t, :, t, :] for t in range(U.shape[0])])


def compare(table, J, mask, k, what):
    """The table's columns against blocks J (N, p, p); returns the worst relative error in eps."""
    sign, logabs = torch.linalg.slogdet(J)
    smin = torch.linalg.svdvals(J)[:, -1]
    worst = 0.0
    b = barrier_values(J, "extended")  # analyse's default policy, z0 = 1e-2
    for name, ref in (("log_det", logabs), ("sigma_min", smin), ("signed_margin", sign * smin), ("b", b)):
        got = torch.from_numpy(np.asarray(table[name], dtype=np.float64))
        err = ((got - ref).abs() / ref.abs().clamp(min=1.0)).max().item() / EPS
        worst = max(worst, err)
        assert err <= BOUND, (what, name, err)
    assert (table["sign"] == sign.numpy().astype(np.int64)).all(), what
    first = first_counted(mask)
    margins = (sign * smin).tolist()
    chosen = sorted(range(first, len(margins)), key=lambda t: (margins[t], t))[:k]
    assert [bool(s) for s in table["support"]] == [t in chosen for t in range(len(margins))], (what, table["support"])
    assert (table["position"] == np.arange(len(margins))).all()
    return worst


def plain_heads():
    worst = 0.0
    for mask in ("strict", "inclusive"):
        U, W_Q, W_K, W_V, W_O = random_heads(10, 4, 2, 3, 2, seed=21)
        t = suptok.analyse(U.numpy(), W_Q.numpy(), W_K.numpy(), W_V.numpy(), W_O.numpy(), mask=mask, support="k=3",
                           margins="exact", form="general")
        J = jacobian_blocks(U, W_Q, W_K, W_V, W_O, mask)
        worst = max(worst, compare(t, J, mask, 3, f"heads, {mask}"))
        penalty = suptok.torch.barrier(U, W_Q, W_K, W_V, W_O, mask=mask, backend="cpu").item()
        assert abs(t["totals"]["penalty"] - penalty) <= BOUND * EPS * max(1.0, abs(penalty))
        assert t["totals"]["support_count"] == 3 and t["form"] == "general"
        assert t["totals"]["counted_tokens"] == 10 - first_counted(mask)
    print(f"plain heads, both masks: worst {worst:.1f} eps (bound {BOUND})")


def grouped_layer():
    g = torch.Generator().manual_seed(4)
    B, N, p, H, H_kv, d = 2, 9, 6, 4, 2, 4

    def normal(*shape, scale=1.0):
        return scale * torch.randn(shape, generator=g, dtype=torch.float64)

    L = {"W_Q": normal(H, d, p, scale=0.6), "W_K": normal(H_kv, d, p, scale=0.6), "W_V": normal(H_kv, d, p, scale=0.4),
         "W_O": normal(H, p, d, scale=0.4), "b_Q": normal(H, d, scale=0.3), "b_K": normal(H_kv, d, scale=0.3),
         "b_V": normal(H_kv, d, scale=0.3), "b_O": normal(p, scale=0.3), "rope_theta": 100.0}
    U = normal(B, N, p)
    worst = 0.0
    for mask in ("strict", "inclusive"):
        t = suptok.analyse(U, L, mask=mask, support="k=2", margins="exact")
        assert t["log_det"].shape == (B, N) and t["support"].dtype == np.bool_
        for b in range(B):
            row = {name: t[name][b] for name in ("position", "sign", "log_det", "b", "signed_margin", "sigma_min",
                                                  "support")}
            worst = max(worst, compare(row, autograd_blocks(U[b], L, mask), mask, 2, f"layer, {mask}, sequence {b}"))
        counted = B * (N - first_counted(mask))
        pooled = t["b"][:, first_counted(mask):].sum() / counted
        assert t["totals"]["counted_tokens"] == counted and t["totals"]["support_count"] == 2 * B
        assert abs(t["totals"]["penalty"] - pooled) <= BOUND * EPS * max(1.0, abs(pooled))
    print(f"grouped-query layer with biases and rotary embeddings, batch of {B}: worst {worst:.1f} eps "
          f"(bound {BOUND})")


def float32_numpy():
    U, W_Q, W_K, W_V, W_O = (x.float().numpy() for x in random_heads(8, 4, 2, 2, 2, batch=3, seed=9))
    t = suptok.analyse(U, W_Q, W_K, W_V, W_O)
    assert t["log_det"].dtype == np.float32 and t["log_det"].shape == (3, 8)
    single = [suptok.analyse(U[b], W_Q, W_K, W_V, W_O)["totals"] for b in range(3)]
    assert t["totals"]["support_count"] == sum(s["support_count"] for s in single)
    pooled = sum(s["penalty"] * s["counted_tokens"] for s in single) / sum(s["counted_tokens"] for s in single)
    assert abs(t["totals"]["penalty"] - pooled) <= 16 * np.finfo(np.float32).eps * max(1.0, abs(pooled))
    print("float32 NumPy batch: float32 columns (3, 8), totals pooled over the sequences")


def main():
    plain_heads()
    grouped_layer()
    float32_numpy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
