// The closed-form Jacobian blocks J_t (jacobian.hpp) in float50 (reference and gradient tiers):
// against central differences of the residual map e_t = u_t - mu_t, both masks, two heads; the
// strict-mask identities J_0 = J_1 = I; and the single-head V = I case J_t = I - C_t A with C_t
// built explicitly from independently computed softmax weights.
#include "likelihood_checks.hpp"

#include <catch2/catch.hpp>

#include <iostream>

using namespace suptok;
using S = float50;

TEST_CASE("jacobian_blocks matches float50 finite differences of the residuals", "[likelihood][gradient]") {
  const suptok::index N = 5, p = 3;
  for (const auto& params : {test::strict_params, test::inclusive_params}) {
    DYNAMIC_SECTION("mask " << to_string(params.causal_mask)) {
      matrix<S> U = test::random_matrix<S>(N, p, 401);
      const auto hs = test::random_heads<S>(2, p, 2, 3, 402, 0.7);
      const auto J = jacobian_blocks<S>(U, hs, params);
      double worst = 0;
      for (suptok::index t = 0; t < N; ++t) {
        matrix<S> fd(p, p);
        for (suptok::index j = 0; j < p; ++j) {
          // column j of J_t = d e_t / d u_tj; h = 1e-15: truncation ~1e-30, rounding ~1e-35
          const S x0 = U(t, j), h = S(1e-15);
          U(t, j) = x0 + h;
          const vector<S> ep = residuals<S>(U, hs, params).row(t).transpose();
          U(t, j) = x0 - h;
          const vector<S> em = residuals<S>(U, hs, params).row(t).transpose();
          U(t, j) = x0;
          fd.col(j) = (ep - em) / (S(2) * h);
        }
        INFO("t = " << t);
        // Relative to the block's largest entry (>= 1 on the diagonal in practice).
        CHECK(test::max_rel_error(J[static_cast<std::size_t>(t)], fd) < 1e-25);
        worst = std::max(worst, test::max_rel_error(J[static_cast<std::size_t>(t)], fd));
      }
      std::cout << "jacobian_blocks float50 vs FD (" << to_string(params.causal_mask) << "): " << worst << "\n";
    }
  }
}

TEST_CASE("strict mask: J_0 = J_1 = I, and J_t = I - C_t A for one head with V = I", "[likelihood][reference]") {
  const suptok::index N = 6, p = 3;
  const auto U = test::random_matrix<S>(N, p, 501);
  heads<S> hs = test::random_heads<S>(1, p, 2, p, 502, 0.8);
  hs[0].W_V = matrix<S>::Identity(p, p);
  hs[0].W_O = matrix<S>::Identity(p, p);
  const attention_params params{mask::strict, 1.5};
  const auto J = jacobian_blocks<S>(U, hs, params);
  // exact: the moments are sums of zero terms at t = 0 (no past) and t = 1 (one token, u_0 = ubar)
  CHECK(to_double((J[0] - matrix<S>::Identity(p, p)).cwiseAbs().maxCoeff()) == 0.0);
  CHECK(to_double((J[1] - matrix<S>::Identity(p, p)).cwiseAbs().maxCoeff()) == 0.0);
  const matrix<S> A = hs[0].W_K.transpose() * hs[0].W_Q / S(1.5);  // (p, p)
  for (suptok::index t = 2; t < N; ++t) {
    // weights a_ts = softmax_s(u_t^T A^T u_s) over s < t, written out without the library
    vector<S> a(t);
    for (suptok::index s = 0; s < t; ++s) a(s) = exp(U.row(t).dot((A.transpose() * U.row(s).transpose()).transpose()));
    a /= a.sum();
    vector<S> ubar = vector<S>::Zero(p);
    for (suptok::index s = 0; s < t; ++s) ubar += a(s) * U.row(s).transpose();
    matrix<S> C = matrix<S>::Zero(p, p);
    for (suptok::index s = 0; s < t; ++s) {
      const vector<S> d = U.row(s).transpose() - ubar;
      C += a(s) * d * d.transpose();
    }
    const matrix<S> expected = matrix<S>::Identity(p, p) - C * A;
    INFO("t = " << t);
    // Same algebra in another order: 50-digit rounding only, 1e-40 relative.
    CHECK(test::max_rel_error(J[static_cast<std::size_t>(t)], expected) < 1e-40);
  }
}
