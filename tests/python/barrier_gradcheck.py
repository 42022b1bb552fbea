#!/usr/bin/env python3
"""torch.autograd.gradcheck of suptok.torch.barrier in double: the library's backward against
central differences of its forward, for both masks, both backends, every policy, one sequence
U (N, p) and a batch U (B, N, p), gradients in all five inputs.

Sizes N = 6, p = 3, H = 2, d_k = 2, d_v = 2 (B = 2). At these weights every det J_t > 0 (the
exact policy has a gradient there). For clamp and extended the threshold (eps, z0) is put in the
widest gap between the tokens' determinants, so that tokens lie on both branches and none within
the finite-difference step of the switch (clamp's kink; extended is C^1 there). gradcheck's
perturbation is 1e-6; the central difference then errs by about 1e-12 (h^2 f''') plus 1e-10
(rounding 1e-16 / h) on O(1) values, and the bounds are atol = 1e-7, rtol = 1e-6.
"""
import sys

from common import BACKENDS, MASKS, POLICIES, dets, random_heads, threshold_between, torch

import suptok

STEP, ATOL, RTOL = 1e-6, 1e-7, 1e-6


def main():
    checked = 0
    for batch in (None, 2):
        for mask in MASKS:
            inputs = random_heads(6, 3, 2, 2, 2, batch=batch, seed=3 + (batch or 0))
            z = dets(*inputs, mask=mask)
            assert bool((z > 0).all()), f"the exact policy needs feasible tokens, dets {z.tolist()}"
            threshold, half_gap = threshold_between(z)
            assert half_gap > 100 * STEP, half_gap  # no token within the perturbation of the switch
            for policy in POLICIES:
                for backend in BACKENDS:
                    leaves = [x.clone().requires_grad_(True) for x in inputs]

                    def penalty(*x):
                        return suptok.torch.barrier(*x, mask=mask, policy=policy, eps=threshold, z0=threshold,
                                                    backend=backend)

                    ok = torch.autograd.gradcheck(penalty, leaves, eps=STEP, atol=ATOL, rtol=RTOL)
                    assert ok
                    checked += 1
                    print(f"gradcheck passed: U {tuple(inputs[0].shape)}, mask {mask}, policy {policy}, "
                          f"backend {backend} (threshold {threshold:.4g}, {int((z < threshold).sum())} of "
                          f"{z.numel()} tokens below it)")
    print(f"{checked} gradchecks passed (atol {ATOL:g}, rtol {RTOL:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
