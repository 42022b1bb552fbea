#!/usr/bin/env python3
"""suptok.torch.barrier against the independent pure-PyTorch formula of common.py (einsum Jacobian
blocks, torch.linalg.slogdet, autograd), value and gradients in all five inputs.

Cases: both masks x both backends x every policy, one sequence (N = 12) and a batch (B = 3,
N = 10); p = 4, H = 2, d_k = 3, d_v = 2. The thresholds eps and z0 sit in the widest gap between
the determinants, so both branches of clamp and extended are exercised; under the inclusive mask
the single sequence has tokens with det J_t < 0 (infeasible), where the exact policy's value must
be +inf (its missing gradient is errors.py's) and extended continues linearly. float64 inputs are
compared with the formula in float64, float32 inputs with the formula in float64.

Errors are in units of the input dtype's eps: the value as |x - r| / max(1, |r|), a gradient as
max |g - g_r| / max |g_r| over all its entries. Bounds (measured worst case over all cases in
brackets): value 8 eps [float64 1.3, float32 1.1], gradients 128 eps [float64 21, float32 15].
They hold for these blocks (|det J_t| from 0.2 to 4), where rounding the (p, p) blocks and their
LU costs a few eps.

Also: a 0-dim result of U's dtype, non-contiguous inputs (transposed views) giving the same value
and gradients as their contiguous copies, and gradients reaching only the inputs that ask for them.
"""
import math
import sys

from common import BACKENDS, MASKS, POLICIES, barrier_formula, dets, random_heads, threshold_between, torch

import suptok

BOUNDS = {torch.float64: (8, 128), torch.float32: (8, 128)}  # (value, gradients) in eps of the dtype


def errors(inputs, dtype, mask, policy, threshold, backend):
    """(value error, worst gradient error) in eps of dtype, against the formula in float64."""
    ref_leaves = [x.detach().double().requires_grad_(True) for x in inputs]
    ref = barrier_formula(*ref_leaves, mask=mask, policy=policy, eps=threshold, z0=threshold)
    leaves = [x.detach().to(dtype).requires_grad_(True) for x in inputs]
    if ref.item() == math.inf:  # exact policy, a token with det J_t <= 0: +inf, no gradient (errors.py)
        with torch.no_grad():
            value = suptok.torch.barrier(*leaves, mask=mask, policy=policy, backend=backend)
        assert value.item() == math.inf, value.item()
        return 0.0, 0.0
    ref_grads = torch.autograd.grad(ref, ref_leaves)
    value = suptok.torch.barrier(*leaves, mask=mask, policy=policy, eps=threshold, z0=threshold, backend=backend)
    assert value.dim() == 0 and value.dtype == dtype, (value.shape, value.dtype)
    grads = torch.autograd.grad(value, leaves)
    eps = torch.finfo(dtype).eps
    value_error = abs(value.item() - ref.item()) / max(1.0, abs(ref.item())) / eps
    grad_error = max(((g.double() - r).abs().max() / r.abs().max()).item() / eps for g, r in zip(grads, ref_grads))
    return value_error, grad_error


def check_non_contiguous():
    """Transposed views (non-contiguous) give the contiguous copies' value and gradients."""
    U, W_Q, W_K, W_V, W_O = random_heads(8, 4, 2, 3, 2, seed=11)
    views = [x.transpose(-1, -2).contiguous().transpose(-1, -2).requires_grad_(True) for x in (U, W_Q, W_K, W_V, W_O)]
    assert not any(v.is_contiguous() for v in views)
    copies = [v.detach().contiguous().requires_grad_(True) for v in views]
    a = suptok.torch.barrier(*views)
    b = suptok.torch.barrier(*copies)
    assert a.item() == b.item(), (a.item(), b.item())
    for g, h in zip(torch.autograd.grad(a, views), torch.autograd.grad(b, copies)):
        assert torch.equal(g, h)
    # gradients only where asked: W_V and W_O without requires_grad get none
    U2, W_Q2 = U.clone().requires_grad_(True), W_Q.clone().requires_grad_(True)
    suptok.torch.barrier(U2, W_Q2, W_K, W_V, W_O).backward()
    assert U2.grad is not None and W_Q2.grad is not None and W_V.grad is None
    # without a gradient the forward runs barrier_penalty instead of barrier_penalty_backward:
    # the same value up to the fast path's rounding (bound 16 eps)
    with torch.no_grad():
        value = suptok.torch.barrier(U2, W_Q2, W_K, W_V, W_O).item()
    assert abs(value - b.item()) <= 16 * torch.finfo(torch.float64).eps * max(1.0, abs(b.item())), (value, b.item())
    print("non-contiguous inputs, partial and no-grad calls: as the contiguous call")


def main():
    worst = {dtype: [0.0, 0.0] for dtype in BOUNDS}
    # N = 40 reaches the simd kernels: the simd backend sends shorter sequences (N < 32, N <= 4p for
    # several heads) to the reference path.
    for batch, N in ((None, 12), (3, 10), (None, 40)):
        for mask in MASKS:
            inputs = random_heads(N, 4, 2, 3, 2, batch=batch, seed=7 + N)
            z = dets(*inputs, mask=mask)
            threshold, _ = threshold_between(z)
            for policy in POLICIES:
                for backend in BACKENDS:
                    for dtype, (value_bound, grad_bound) in BOUNDS.items():
                        v, g = errors(inputs, dtype, mask, policy, threshold, backend)
                        print(f"U {tuple(inputs[0].shape)} {mask:9} {policy:8} {backend:4} {str(dtype):13} "
                              f"value {v:7.2f} eps (bound {value_bound}), gradients {g:8.2f} eps (bound {grad_bound})")
                        assert v <= value_bound and g <= grad_bound, (v, g)
                        worst[dtype] = [max(worst[dtype][0], v), max(worst[dtype][1], g)]
    for dtype, (v, g) in worst.items():
        print(f"worst {dtype}: value {v:.2f} eps, gradients {g:.2f} eps")
    check_non_contiguous()
    return 0


if __name__ == "__main__":
    sys.exit(main())
