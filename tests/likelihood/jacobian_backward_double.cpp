// jacobian_blocks_backward in double against the same computation in float50 (precision tier) and
// against forward-mode autodiff in double (gradient tier), both masks, two heads.
#include "likelihood_checks.hpp"

#include <catch2/catch.hpp>

#include <iostream>

using namespace suptok;

TEST_CASE("jacobian_blocks_backward in double vs the float50 reference and autodiff", "[likelihood][gradient]") {
  const suptok::index N = 6, p = 3;
  for (const auto& params : {test::strict_params, test::inclusive_params}) {
    DYNAMIC_SECTION("mask " << to_string(params.causal_mask)) {
      const auto U = test::random_matrix<double>(N, p, 12);
      const auto hs = test::random_heads<double>(2, p, 3, 2, 22, 0.7);
      const auto dJ = test::random_blocks<double>(N, p, 32);
      const auto g = test::blocks_of(jacobian_blocks_backward<double>(dJ, U, hs, params));
      const auto ref = test::blocks_of(jacobian_blocks_backward<float50>(
          test::random_blocks<float50>(N, p, 32), test::cast<float50>(U), test::cast<float50>(hs), params));
      // Documented requirement: 1e-8 relative; the measured value is printed (about 1e-15 here:
      // O(N p) roundings of O(1) terms on the scale of the largest gradient entry).
      const double err = test::max_block_error(g, ref);
      std::cout << "jacobian_blocks_backward double vs float50 (" << to_string(params.causal_mask)
                << "): max relative error " << err << "\n";
      CHECK(err < 1e-8);
      CHECK(err < 1e3 * test::epsilon_of<double>());

      // Directional derivative dL/dtheta . v by autodiff equals the analytic gradient dotted with v.
      const auto dir = test::random_direction(U, hs, 42);
      const auto [Ud, hd] = test::dual_along(U, hs, dir);
      std::vector<matrix<dual<double>>> dJd;
      for (const auto& b : dJ) dJd.push_back(test::cast<dual<double>>(b));
      const double ad = derivative(test::block_loss<dual<double>>(dJd, Ud, hd, params));
      const double an = test::dot_blocks(g, dir);
      // Both are sums of O(100) terms of size O(1): 1e-12 relative allows 1e4 roundings.
      CHECK(std::abs(ad - an) <= 1e-12 * std::max(1.0, std::abs(an)));
    }
  }
}
