"""Checks and conversions of the arrays passed to suptok.torch.barrier and suptok.analyse."""
import numpy as np
import torch


def tensor_of(name, x, ranks, like=None):
    """x as a contiguous CPU tensor of rank in `ranks`, float32 or float64 (the dtype of `like` when
    given); NumPy arrays are wrapped without a copy. Raises ValueError naming the argument."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"suptok: {name}: expected a tensor or a NumPy array, got {type(x).__name__}")
    if x.device.type != "cpu":
        raise ValueError(f"suptok: {name}: expected a CPU tensor, got one on {x.device}")
    dtypes = (like.dtype,) if like is not None else (torch.float32, torch.float64)
    if x.dtype not in dtypes:
        wanted = f"{like.dtype} (that of U)" if like is not None else "torch.float32 or torch.float64"
        raise ValueError(f"suptok: {name}: expected dtype {wanted}, got {x.dtype}")
    if x.dim() not in ranks:
        rank = " or ".join(str(r) for r in ranks)
        raise ValueError(f"suptok: {name}: expected a tensor of rank {rank}, got shape {tuple(x.shape)}")
    return x.contiguous()


def heads_of(U, W_Q, W_K, W_V, W_O):
    """The weights of a layer as checked tensors of U's dtype: W_Q (H, d_k, p), W_K (H_kv, d_k, p),
    W_V (H_kv, d_v, p), W_O (H, p, d_v)."""
    return [tensor_of(name, w, (3,), like=U) for name, w in zip(("W_Q", "W_K", "W_V", "W_O"), (W_Q, W_K, W_V, W_O))]
