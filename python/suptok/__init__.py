"""suptok in Python: the support-tokens view of causal attention (Agarwal et al., "Support Tokens,
Stability Margins, and a New Foundation for Robust LLMs", arXiv:2602.22271; docs/math.md).

    suptok.torch.barrier(U, W_Q, W_K, W_V, W_O, ...)  the log-barrier penalty as a PyTorch autograd
                                                     operator, forward and backward in the C++ library
    suptok.analyse(U, W_Q, W_K, W_V, W_O, ...)        the per-token table of a layer on NumPy arrays or tensors
    suptok.save_layer(path, W_Q, W_K, W_V, W_O, ...)  a layer as a safetensors file in the library's
                                                     naming, for suptok-analyze

Weights use the library's naming, one head per slice: W_Q (H, d_k, p), W_K (H_kv, d_k, p),
W_V (H_kv, d_v, p), W_O (H, p, d_v); docs/interop.md maps a PyTorch attention module onto them.
"""
from . import torch
from .analysis import analyse
from .checkpoint import save_layer

__all__ = ["analyse", "save_layer", "torch"]
