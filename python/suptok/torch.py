"""suptok.torch.barrier: the log-barrier penalty of attention as a PyTorch autograd operator.

    penalty = barrier(U, W_Q, W_K, W_V, W_O, mask="strict", policy="extended", eps=1e-8, z0=1e-2,
                      temperature=0.0, backend="simd")

U (N, p) is one sequence, U (B, N, p) a batch; W_Q (H, d_k, p), W_K (H, d_k, p), W_V (H, d_v, p),
W_O (H, p, d_v), one head per slice. The penalty (docs/math.md section 3) is the mean of
b_t = f(det J_t) over the non-trivial tokens (t >= 2 under the strict mask, every t under the
inclusive one), pooled over all sequences of a batch; a 0-dim tensor of U's dtype,
differentiable in all five inputs. f is the policy: exact -log z, clamp -log max(z, eps),
extended -log z above z0 and its tangent line below. temperature 0 means sqrt(d_k).
backend "simd" is the library's xsimd CPU fast path, "cpu" its reference path.

Forward and backward run in the C++ library (barrier_penalty / barrier_penalty_backward and their
batch forms). The library's backward returns the penalty with its gradients in one pass, so when a
gradient will be needed (grad mode on, an input requiring it) the forward calls it and keeps the
gradients; backward scales them by the
upstream gradient (first derivatives only: the operator is once differentiable). Inputs are CPU
tensors, float32 or float64, all of U's dtype; non-contiguous ones are made contiguous. Bad input
raises ValueError naming the argument; the library's own errors carry its message
("suptok: heads[1].W_K: expected 2 x 3, got 2 x 4").
"""
import torch
from torch.autograd.function import once_differentiable

from . import _native
from .inputs import heads_of, tensor_of


class _Barrier(torch.autograd.Function):
    @staticmethod
    def forward(ctx, settings, gradients, U, W_Q, W_K, W_V, W_O):
        penalty, grads = _native.barrier(U, W_Q, W_K, W_V, W_O, *settings, gradients)
        ctx.save_for_backward(*grads)
        return penalty

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_penalty):
        scaled = (grad_penalty * g if needed else None for g, needed in zip(ctx.saved_tensors, ctx.needs_input_grad[2:]))
        return (None, None, *scaled)


def barrier(U, W_Q, W_K, W_V, W_O, mask="strict", policy="extended", eps=1e-8, z0=1e-2, temperature=0.0,
            backend="simd"):
    """The penalty of U (N, p) or (B, N, p) under the heads W_Q, W_K, W_V, W_O; see the module's docstring."""
    U = tensor_of("U", U, (2, 3))
    heads = heads_of(U, W_Q, W_K, W_V, W_O)
    settings = (str(mask), str(policy), float(eps), float(z0), float(temperature), str(backend))
    gradients = torch.is_grad_enabled() and any(x.requires_grad for x in (U, *heads))
    return _Barrier.apply(settings, gradients, U, *heads)
