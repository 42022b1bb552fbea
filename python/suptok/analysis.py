"""suptok.analyse: the per-token barrier geometry of one attention layer (docs/math.md section 3,
the library's analyse() of barrier/analysis.hpp), on NumPy arrays or CPU tensors.

    table = analyse(U, W_Q, W_K, W_V, W_O, b_Q=None, b_K=None, b_V=None, b_O=None, rope_theta=0.0,
                    mask="strict", temperature=0.0, policy="extended", eps=1e-8, z0=1e-2,
                    support="delta=0.1", margins="estimate", form="automatic", include_trivial=False)
    table = analyse(U, {"W_Q": ..., "W_K": ..., "W_V": ..., "W_O": ..., "b_Q": ..., "rope_theta": ...}, mask=...)

U (N, p) or (B, N, p). W_Q (H, d_k, p), W_K (H_kv, d_k, p), W_V (H_kv, d_v, p), W_O (H, p, d_v)
with H_kv dividing H (grouped-query heads: query head h reads key/value head h // (H // H_kv));
optional biases b_Q (H, d_k), b_K (H_kv, d_k), b_V (H_kv, d_v), b_O (p); rope_theta > 0 turns on
rotary embeddings (rotate-half pairing, positions 0..N-1). support is one of "k=N" (the N smallest
signed margins), "delta=X" (signed margins <= X), "mass=Q" (the fewest tokens carrying a fraction Q
of the barrier), as suptok-analyze's --support. Computes in U's dtype.

Returns a dict of NumPy arrays, one entry per token, of shape (N,) or (B, N): position, sign
(of det J_t), log_det (log |det J_t|), b (b_t), signed_margin (sign(det J_t) sigma_min(J_t)),
sigma_min, kappa (sigma_max / sigma_min), support (bool); "totals": penalty (the mean b_t over the
non-trivial tokens of all sequences), support_count, infeasible_count, counted_tokens; "form": the
Jacobian form used, "general" or "projected". The column names are those of suptok-analyze's JSON.
"""
from collections.abc import Mapping

import torch

from . import _native
from .inputs import heads_of, tensor_of

_LAYER_KEYS = ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "rope_theta")
_SUPPORT_RULES = {"k": "smallest", "delta": "within", "mass": "mass"}


def _support_rule(support):
    """("smallest" | "within" | "mass", value) from "k=N", "delta=X" or "mass=Q"."""
    key, _, value = str(support).partition("=")
    if key not in _SUPPORT_RULES or not value:
        raise ValueError(f"suptok: support: expected 'k=N', 'delta=X' or 'mass=Q', got {support!r}")
    try:
        return _SUPPORT_RULES[key], float(value)
    except ValueError:
        raise ValueError(f"suptok: support: {value!r} is not a number") from None


def _bias(name, b, U, rank):
    return None if b is None else tensor_of(name, b, (rank,), like=U)


def analyse(U, W_Q, W_K=None, W_V=None, W_O=None, *, b_Q=None, b_K=None, b_V=None, b_O=None, rope_theta=0.0,
            mask="strict", temperature=0.0, policy="extended", eps=1e-8, z0=1e-2, support="delta=0.1",
            margins="estimate", form="automatic", include_trivial=False):
    if isinstance(W_Q, Mapping):
        if W_K is not None or W_V is not None or W_O is not None:
            raise ValueError("suptok: layer: pass the weights either as a dict or as W_Q, W_K, W_V, W_O, not both")
        unknown = sorted(set(W_Q) - set(_LAYER_KEYS))
        if unknown:
            raise ValueError(f"suptok: layer: unknown keys {unknown}; expected some of {list(_LAYER_KEYS)}")
        layer = dict(W_Q)
        return analyse(U, layer.pop("W_Q", None), layer.pop("W_K", None), layer.pop("W_V", None),
                       layer.pop("W_O", None), **layer, mask=mask, temperature=temperature, policy=policy, eps=eps,
                       z0=z0, support=support, margins=margins, form=form, include_trivial=include_trivial)
    U = tensor_of("U", U, (2, 3))
    heads = heads_of(U, W_Q, W_K, W_V, W_O)
    biases = (_bias("b_Q", b_Q, U, 2), _bias("b_K", b_K, U, 2), _bias("b_V", b_V, U, 2), _bias("b_O", b_O, U, 1))
    rule, value = _support_rule(support)
    table = _native.analyse(U, *heads, *biases, float(rope_theta), str(mask), float(temperature), str(policy),
                            float(eps), float(z0), rule, value, str(margins), str(form), bool(include_trivial))
    return {key: entry.numpy() if isinstance(entry, torch.Tensor) else entry for key, entry in table.items()}
