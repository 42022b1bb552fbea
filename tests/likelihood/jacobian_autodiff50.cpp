// The closed-form Jacobian blocks J_t against forward-mode autodiff (dual<float50>) through the
// generic attention forward (gradient tier), both masks, two heads: column j of J_t is the
// derivative of e_t = u_t - mu_t along u_tj. Autodiff is exact up to 50-digit rounding.
#include "likelihood_checks.hpp"

#include <catch2/catch.hpp>

#include <iostream>

using namespace suptok;
using S = float50;
using D = dual<S>;

TEST_CASE("jacobian_blocks matches dual<float50> autodiff", "[likelihood][gradient]") {
  const suptok::index N = 4, p = 2;
  for (const auto& params : {test::strict_params, test::inclusive_params}) {
    DYNAMIC_SECTION("mask " << to_string(params.causal_mask)) {
      const auto U = test::random_matrix<S>(N, p, 601);
      const auto hs = test::random_heads<S>(2, p, 2, 3, 602, 0.7);
      const heads<D> hd = test::cast<D>(hs);
      const auto J = jacobian_blocks<S>(U, hs, params);
      double worst = 0;
      for (suptok::index t = 0; t < N; ++t) {
        matrix<S> ad(p, p);
        for (suptok::index j = 0; j < p; ++j) {
          matrix<D> Ud = test::cast<D>(U);
          Ud(t, j) = make_dual<S>(U(t, j), S(1));
          const matrix<D> E = residuals<D>(Ud, hd, params);
          for (suptok::index i = 0; i < p; ++i) ad(i, j) = derivative(E(t, i));
        }
        worst = std::max(worst, test::max_rel_error(J[static_cast<std::size_t>(t)], ad));
      }
      // 50-digit rounding in O(N p) operations: 1e-40 relative.
      CHECK(worst < 1e-40);
      std::cout << "jacobian_blocks float50 vs autodiff (" << to_string(params.causal_mask) << "): " << worst << "\n";
    }
  }
}
