// Tier 2: analytic barrier gradients vs central finite differences in float50, under each
// extension policy, both masks, H = 2, including the continuation region (det < z0 and det < 0).
#include "barrier_checks.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <iostream>

using namespace suptok;

TEST_CASE("barrier gradients match float50 central differences under every policy", "[barrier][gradient]") {
  for (const test::barrier_case& c : test::gradient_cases()) {
    SECTION(c.name) {
      matrix<float50> U = test::case_U<float50>(c);
      heads<float50> hs = test::case_heads<float50>(c);
      const attention_params ap = test::case_params(c);
      const std::vector<double> dets = test::counted_dets(U, hs, ap);
      const double threshold = c.bp.policy == extension::clamp ? c.bp.eps : c.bp.z0;
      if (c.straddles) {  // the case exercises all three branches of the policy
        CHECK(std::any_of(dets.begin(), dets.end(), [](double d) { return d < 0; }));
        CHECK(std::any_of(dets.begin(), dets.end(), [&](double d) { return d > 0 && d < threshold; }));
        CHECK(std::any_of(dets.begin(), dets.end(), [&](double d) { return d > threshold; }));
      } else {
        CHECK(std::all_of(dets.begin(), dets.end(), [](double d) { return d > 0; }));
      }
      const barrier_gradients<float50> an = barrier_penalty_backward<float50>(U, hs, c.bp, ap);
      // The penalty against an independent one (Eigen's full-pivot LU determinant and the policy
      // written out, test::independent_penalty), in eps of float50: bound 16, measured 2.1.
      CHECK(test::within_eps(an.penalty, test::independent_penalty(U, hs, c.bp, ap), 16));
      // h = 1e-15: truncation ~h^2 |f'''| ~ 1e-30 x O(10^3), rounding ~1e-50 / h = 1e-35; no
      // determinant lies within h of the policy threshold, so f is smooth on [x - h, x + h].
      const auto fd = test::fd_gradients<float50>(U, hs, float50(1e-15),
                                                  [&] { return barrier_penalty<float50>(U, hs, c.bp, ap); });
      const double err = test::max_rel_error(an.grad, fd);
      std::cout << "[barrier FD float50] " << c.name << ": max relative error vs FD = " << err << "\n";
      CHECK(err < 1e-20);
    }
  }
}

TEST_CASE("clamp gradient vanishes below eps, extended gradient is -cof(J)/z0 there", "[barrier][gradient]") {
  // Single-token check of the block backward in the continuation region, against the cofactor
  // written out for p = 2: cof([[a, b], [c, d]]) = [[d, -c], [-b, a]] (exact in float50).
  matrix<float50> J(2, 2);
  J << float50(0.1), float50(2), float50(0.3), float50(-1.5);  // det = -0.75
  const matrix<float50> cof = (matrix<float50>(2, 2) << J(1, 1), -J(1, 0), -J(0, 1), J(0, 0)).finished();
  const matrix<float50> ext = barrier_block_backward<float50>(J, {extension::extended, 1e-8, 0.25});
  CHECK(test::max_rel_error(ext, (cof / float50(-0.25)).eval()) < 1e-45);  // SVD-based cofactor, 50 digits
  CHECK(barrier_block_backward<float50>(J, {extension::clamp, 0.25, 1e-2}).norm() == 0);
  // On the log branch the gradient is -J^{-T}.
  matrix<float50> G(2, 2);
  G << float50(2), float50(0.5), float50(-0.25), float50(1);
  const matrix<float50> expected = -G.inverse().transpose();
  CHECK(test::max_rel_error(barrier_block_backward<float50>(G, {extension::extended, 1e-8, 0.25}), expected) < 1e-45);
}
