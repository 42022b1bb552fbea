// Tier 1/3: per-token barrier values against an independent determinant (Eigen's full-pivot LU in
// float50 of the same blocks), a hand-computed p = 1 case, and which tokens the penalty counts.
#include "barrier_checks.hpp"

#include <catch2/catch.hpp>

#include <Eigen/LU>

using namespace suptok;

TEMPLATE_TEST_CASE("per-token barrier matches an independent determinant", "[barrier][penalty]", SUPTOK_REAL_SCALARS) {
  using S = TestType;
  for (const test::barrier_case& c : test::gradient_cases()) {
    const attention_params ap = test::case_params(c);
    const std::vector<S> b = barrier_per_token<S>(test::case_U<S>(c), test::case_heads<S>(c), c.bp, ap);
    const auto J = jacobian_blocks<float50>(test::case_U<float50>(c), test::case_heads<float50>(c), ap);
    REQUIRE(b.size() == J.size());
    for (std::size_t t = 0; t < J.size(); ++t) {
      const float50 ref = test::independent_barrier(J[t], c.bp);
      INFO(c.name << ", t = " << t);
      // The blocks are O(1) with kappa <= 30 here: b is good to a few eps of S on the scale 1 (the
      // reference is float50, so long double and float50 are measured, not rounded to double).
      CHECK(test::within_eps(b[t], ref, 8, 1.0));  // bound 8 eps, measured 2.9
    }
    if (ap.causal_mask == mask::strict) {  // J_0 = J_1 = I exactly: b = -log 1 = 0
      CHECK(to_double(b[0]) == 0.0);
      CHECK(to_double(b[1]) == 0.0);
    }
  }
}

TEST_CASE("p = 1 hand case: b_3 = -log(1 - V A a(1 - a)(u_1 - u_2)^2)", "[barrier][penalty]") {
  // u_1 = 1, u_2 = -1, u_3 = 0.3, V = W_O W_V = 0.5, A = W_K W_Q / tau = 1.2 (tau = 1).
  // a = weight of u_1 = sigmoid(u_3 A (u_1 - u_2)), C = a(1 - a)(u_1 - u_2)^2.
  matrix<double> U(3, 1);
  U << 1, -1, 0.3;
  heads<double> hs(1);
  hs[0].W_Q = matrix<double>::Constant(1, 1, 1.2);
  hs[0].W_K = matrix<double>::Constant(1, 1, 1.0);
  hs[0].W_V = matrix<double>::Constant(1, 1, 0.5);
  hs[0].W_O = matrix<double>::Constant(1, 1, 1.0);
  const attention_params ap{mask::strict, 1.0};
  const double a = 1 / (1 + std::exp(-0.3 * 1.2 * 2)), J = 1 - 0.5 * 1.2 * a * (1 - a) * 4;
  const barrier_params bp{extension::exact, 1e-8, 1e-2};
  const std::vector<double> b = barrier_per_token<double>(U, hs, bp, ap);
  CHECK(test::within_eps(b[2], -std::log(J), 2));  // bound 2 eps, measured 0
  CHECK(test::within_eps(barrier_penalty<double>(U, hs, bp, ap), -std::log(J), 2));  // one counted token (bound 2 eps, measured 0)
}

TEST_CASE("penalty = mean of b_t over the non-trivial tokens", "[barrier][penalty]") {
  for (const test::barrier_case& c : test::gradient_cases()) {
    const attention_params ap = test::case_params(c);
    const matrix<double> U = test::case_U<double>(c);
    const heads<double> hs = test::case_heads<double>(c);
    const std::vector<double> b = barrier_per_token<double>(U, hs, c.bp, ap);
    const std::size_t first = ap.causal_mask == mask::strict ? 2 : 0;  // MATH t >= 3 <=> 0-based t >= 2
    double sum = 0;
    for (std::size_t t = first; t < b.size(); ++t) sum += b[t];
    const double mean = sum / double(b.size() - first);
    INFO(c.name);
    CHECK(test::within_eps(barrier_penalty<double>(U, hs, c.bp, ap), mean, 2));  // bound 2 eps, measured 0
    if (ap.causal_mask == mask::inclusive) CHECK(b[0] != 0.0);  // J_0 = I - sum_h V_h counts
  }
}
