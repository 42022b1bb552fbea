// jacobian_blocks_backward against central finite differences in float50 (gradient tier), both
// masks, two heads. Step h = 1e-15: truncation error ~ h^2 |L'''| ~ 1e-30 relative and rounding
// ~ 1e-50 / h = 1e-35, so 1e-25 relative leaves five orders of margin for the O(1) constants.
#include "likelihood_checks.hpp"

#include <catch2/catch.hpp>

#include <iostream>

using namespace suptok;

TEST_CASE("jacobian_blocks_backward matches float50 finite differences", "[likelihood][gradient]") {
  using S = float50;
  const suptok::index N = 5, p = 3;
  for (const auto& params : {test::strict_params, test::inclusive_params}) {
    DYNAMIC_SECTION("mask " << to_string(params.causal_mask)) {
      const auto U = test::random_matrix<S>(N, p, 11);
      const auto hs = test::random_heads<S>(2, p, 2, 2, 21, 0.7);
      const auto dJ = test::random_blocks<S>(N, p, 31);
      const auto analytic = test::blocks_of(jacobian_blocks_backward<S>(dJ, U, hs, params));
      const auto fd = test::fd_gradient<S>(U, hs, S(1e-15), [&](const matrix<S>& Uf, const heads<S>& hf) {
        return test::block_loss<S>(dJ, Uf, hf, params);
      });
      for (std::size_t k = 0; k < fd.size(); ++k) {
        INFO(test::block_name(k));
        CHECK(test::max_rel_error(analytic[k], fd[k]) < 1e-25);
      }
      std::cout << "jacobian_blocks_backward float50 vs FD (" << to_string(params.causal_mask)
                << "): " << test::max_block_error(analytic, fd) << "\n";
    }
  }
}
