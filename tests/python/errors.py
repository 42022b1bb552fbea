#!/usr/bin/env python3
"""Bad input to suptok.torch.barrier and suptok.analyse raises ValueError naming the argument: the
package's own checks (type, dtype, device, rank, the layer dict) and the library's (strings, shapes,
finiteness, thresholds, head counts, infeasible tokens under the exact policy), whose message starts
"suptok: <argument>: ".
"""
import sys

import numpy as np

from common import random_heads, torch

import suptok


def expect_error(what, name, call):
    try:
        call()
    except ValueError as e:
        message = str(e)
        assert message.startswith("suptok: ") and name in message.split(":")[1], (what, name, message)
        print(f"{what}: {message}")
        return
    raise AssertionError(f"{what}: no ValueError")


def main():
    U, W_Q, W_K, W_V, W_O = random_heads(7, 4, 2, 3, 2, seed=5)
    heads = (W_Q, W_K, W_V, W_O)

    def barrier(*args, **kwargs):
        return lambda: suptok.torch.barrier(*args, **kwargs)

    expect_error("integer U", "U", barrier(U.long(), *heads))
    expect_error("a list for U", "U", barrier(U.tolist(), *heads))
    expect_error("float16 U", "U", barrier(U.half(), *heads))
    expect_error("W_Q float32 with U float64", "W_Q", barrier(U, W_Q.float(), W_K, W_V, W_O))
    expect_error("U on another device", "U", barrier(torch.empty(7, 4, dtype=torch.float64, device="meta"), *heads))
    expect_error("U of rank 1", "U", barrier(U[0], *heads))
    expect_error("W_K of rank 2", "W_K", barrier(U, W_Q, W_K[0], W_V, W_O))
    expect_error("W_K with another d_k", "W_K", barrier(U, W_Q, W_K[:, :2], W_V, W_O))
    expect_error("W_O of the wrong width", "W_O", barrier(U, W_Q, W_K, W_V, W_O[:, :3]))
    expect_error("W_V with fewer heads", "W_K", barrier(U, W_Q, W_K[:1], W_V[:1], W_O))
    expect_error("U of another width", "W_Q", barrier(U[:, :3], *heads))
    nan = U.clone()
    nan[3, 1] = float("nan")
    expect_error("NaN in U", "U", barrier(nan, *heads))
    expect_error("NaN in a batch", "Us[1]", barrier(torch.stack([U, nan]), *heads))
    expect_error("unknown mask", "mask", barrier(U, *heads, mask="full"))
    expect_error("unknown policy", "policy", barrier(U, *heads, policy="soft"))
    expect_error("unknown backend", "backend", barrier(U, *heads, backend="gpu"))
    expect_error("negative eps", "eps", barrier(U, *heads, policy="clamp", eps=-1.0))
    expect_error("zero z0", "z0", barrier(U, *heads, z0=0.0))
    expect_error("negative temperature", "temperature", barrier(U, *heads, temperature=-1.0))
    # exact policy, a token with det J_t <= 0: the value is +inf, its gradient does not exist
    big = [5 * w for w in heads]
    assert suptok.torch.barrier(U, *big, policy="exact").item() == float("inf")
    for backend in ("cpu", "simd"):
        leaf = U.clone().requires_grad_(True)
        expect_error(f"exact policy, infeasible token, gradient ({backend})", "U",
                     barrier(leaf, *big, policy="exact", backend=backend))

    def analyse(*args, **kwargs):
        return lambda: suptok.analyse(*args, **kwargs)

    expect_error("analyse: unknown support rule", "support", analyse(U, *heads, support="q=0.5"))
    expect_error("analyse: support not a number", "support", analyse(U, *heads, support="k=two"))
    expect_error("analyse: negative k", "support", analyse(U, *heads, support="k=-1"))
    expect_error("analyse: mass above 1", "support", analyse(U, *heads, support="mass=2"))
    expect_error("analyse: unknown margins", "margins", analyse(U, *heads, margins="svd"))
    expect_error("analyse: unknown form", "form", analyse(U, *heads, form="dense"))
    expect_error("analyse: unknown key", "layer", analyse(U, {"W_Q": W_Q, "W_X": W_K}))
    expect_error("analyse: dict and arrays", "layer", analyse(U, {"W_Q": W_Q}, W_K))
    expect_error("analyse: missing W_O", "W_O", analyse(U, {"W_Q": W_Q, "W_K": W_K, "W_V": W_V}))
    expect_error("analyse: b_Q of the wrong size", "b_Q", analyse(U, *heads, b_Q=np.zeros((2, 4))))
    expect_error("analyse: b_O of rank 2", "b_O", analyse(U, *heads, b_O=np.zeros((1, 4))))
    expect_error("analyse: 3 key heads for 2 query heads", "W_K",
                 analyse(U, W_Q, torch.cat([W_K, W_K[:1]]), torch.cat([W_V, W_V[:1]]), W_O))
    expect_error("analyse: odd d_k with rotary embeddings", "W_K", analyse(U, *heads, rope_theta=10000.0))
    expect_error("analyse: float32 b_O with float64 U", "b_O", analyse(U, *heads, b_O=np.zeros(4, np.float32)))
    print("every bad input raised ValueError naming its argument")
    return 0


if __name__ == "__main__":
    sys.exit(main())
