"""The experiment's two calls into the suptok library, with the settings they share.

barrier: suptok.torch.barrier, the mean over the non-trivial tokens of b_t = f(det J_t) of one
attention sub-layer (docs/math.md section 3), forward and backward in the library.
analyse: suptok.analyse, the per-token table (sign and log|det J_t|, signed margin, support flag)
of that layer on one sequence.

Both take the attention sub-layer's input U and the head stack of
model.CausalSelfAttention.head_stack. The build puts the package, with its compiled extension, in
build/python: that folder goes on PYTHONPATH (python/ alone lacks the extension).
"""
import importlib

MASK = "strict"         # the model's mask (model.py)
POLICY = "extended"     # f(z) = -log z for z >= z0, linear continuation below: finite across the boundary
EPS, Z0 = 1e-8, 1e-2    # the policy's parameters (docs/math.md section 3)
TRIVIAL_POSITIONS = 2   # strict mask: J_t = I for the first two tokens (0-based t < 2)


def _module(name):
    try:
        return importlib.import_module(name), None
    except ImportError as error:
        return None, f"{name} is not importable ({error}); build the Python package and put build/python on PYTHONPATH"


def _float64(tensor):
    return tensor.detach().double().cpu().numpy()


def barrier_unavailable():
    """None when suptok.torch imports, otherwise the reason, as one line."""
    return _module("suptok.torch")[1]


def analyse_unavailable():
    """None when suptok.analyse exists, otherwise the reason, as one line."""
    module, why = _module("suptok")
    return why if module is None or hasattr(module, "analyse") else "suptok has no analyse"


def barrier(U, heads, temperature):
    """0-dim tensor: the mean barrier over the non-trivial tokens of U, differentiable in U and in
    the four weight stacks (extended policy, strict mask)."""
    module, why = _module("suptok.torch")
    if module is None:
        raise RuntimeError(why)
    return module.barrier(U, *heads, mask=MASK, policy=POLICY, eps=EPS, z0=Z0, temperature=temperature,
                          backend="simd")


def analyse(U, heads, temperature, support_delta):
    """Per-token columns of one sequence U (N, p), in double, NumPy arrays of length N: log_abs_det
    (log|det J_t|), sign (of det J_t), signed_margin (sign(det J_t) sigma_min(J_t)) and support
    (signed margin <= support_delta; never a trivial token). The first TRIVIAL_POSITIONS rows are
    the trivial tokens."""
    module, why = _module("suptok")
    if module is None:
        raise RuntimeError(why)
    table = module.analyse(_float64(U), *(_float64(W) for W in heads), mask=MASK, policy=POLICY, eps=EPS, z0=Z0,
                           temperature=temperature, support=f"delta={support_delta!r}")
    return {"log_abs_det": table["log_det"], "sign": table["sign"], "signed_margin": table["signed_margin"],
            "support": table["support"]}
