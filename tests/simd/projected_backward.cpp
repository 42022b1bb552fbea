// Gradients of a layer's penalty on the fast path (simd/projected_backward.hpp: the projected
// form, blocks I - K_t factored and inverted by the recursive LU) against the reference path's
// general form one precision higher (the (p, p) blocks J_t and their own backward, checked against
// autodiff in tests/layer), over every layer variant, both masks and the three policies, and the
// recursive inverse against Eigen's in long double.
// Error measure: test::max_gradient_difference (largest entrywise difference over dU and every
// weight and bias, relative to the largest entry of the whole reference gradient), in eps.
#include "../layer/layer_checks.hpp"
#include "simd_checks.hpp"

#include <catch2/catch.hpp>

#include <Eigen/LU>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <vector>

namespace suptok {  // inside the namespace: `index` would clash with ::index of <strings.h>

TEMPLATE_TEST_CASE("recursive LU inverse against Eigen's PartialPivLU in long double", "[simd][lu]", float, double) {
  using S = TestType;
  const double eps = test::epsilon_of<S>();
  for (const index n : {1, 2, 15, 16, 17, 33, 64, 100}) {
    DYNAMIC_SECTION("n = " << n) {
      const matrix<S> A = test::random_matrix<S>(n, n, 1300 + std::uint64_t(n));
      matrix<S> LU = A, inverse;
      std::vector<index> pivot;
      detail::recursive_lu_log_det<S>(LU, pivot);
      detail::lu_inverse<S>(LU, pivot, inverse);
      const matrix<long double> A_hi = test::cast<long double>(A);
      const matrix<long double> ref = Eigen::PartialPivLU<matrix<long double>>(A_hi).inverse();
      // |error| <= k eps cond(A) |A^{-1}|: backward stable solves, forward error by the condition
      const Eigen::JacobiSVD<matrix<long double>> svd(A_hi);
      const double cond = double(svd.singularValues()(0) / svd.singularValues()(n - 1));
      const double err = double((test::cast<long double>(inverse) - ref).cwiseAbs().maxCoeff() /
                                ref.cwiseAbs().maxCoeff()) /
                         (eps * cond);
      INFO("cond " << cond << ", error " << err << " eps cond");
      CHECK(err <= 4);  // measured up to 0.24 (float), 0.27 (double)
    }
  }
}

TEMPLATE_TEST_CASE("simd layer gradients against the reference's general form one precision higher",
                   "[simd][layer][backward]", float, double) {
  using S = TestType;
  using hi_t = std::conditional_t<std::is_same_v<S, float>, double, long double>;
  const test::omp_threads one(1);
  const double eps = test::epsilon_of<S>();
  // extended with z0 = 0.5: tokens on both sides of the continuation; clamp at 0.3: some clamped
  const std::vector<barrier_params> policies{
      {extension::exact}, {extension::clamp, 0.3}, {extension::extended, 1e-8, 0.5}};
  double worst = 0;
  index off_branch = 0;
  for (const test::layer_case& c : test::layer_cases)
    for (const mask m : {mask::strict, mask::inclusive})
      for (const index N : {1, 3, 17, 40}) {
        const index p = 12;
        const layer<S> l = test::random_layer<S>(p, c, 1400 + std::uint64_t(N), 0.4);
        const matrix<S> U = test::random_matrix<S>(N, p, 1450 + std::uint64_t(N));
        const attention_params ap{m, 0};
        REQUIRE(choose_form(N, l) == jacobian_form::projected);  // else the simd path is the reference itself
        const std::vector<hi_t> b = barrier_per_token<hi_t>(test::cast<hi_t>(U), test::cast<hi_t>(l), {}, ap);
        for (const barrier_params& bp : policies) {
          if (bp.policy == extension::exact &&
              std::any_of(b.begin() + std::min<index>(N, first_nontrivial(m)), b.end(),
                          [](hi_t x) { return !std::isfinite(double(x)); }))
            continue;  // infeasible tokens: no gradient (checked below)
          const auto fast = barrier_penalty_backward(simd{}, U, l, bp, ap);
          const auto ref = barrier_penalty_backward<hi_t>(test::cast<hi_t>(U), test::cast<hi_t>(l), bp, ap,
                                                          jacobian_form::general);
          CHECK(test::within_eps<S>(fast.penalty, ref.penalty, 32, double(p)));
          worst = std::max(worst, test::max_gradient_difference(fast.grad, ref.grad) / eps);
        }
        for (const hi_t x : b) off_branch += double(x) > std::log(2.0);  // det J_t < z0 = 0.5
      }
  INFO("largest gradient error " << worst << " eps of the largest entry");
  CHECK(off_branch > 0);  // the extended continuation was exercised
  CHECK(worst <= 128);    // measured 45 (float), 53 (double)
}

TEMPLATE_TEST_CASE("simd layer gradients: a wider layer (recursive inverse, chunks, grouped rotary heads)",
                   "[simd][layer][backward]", float, double) {
  using S = TestType;
  using hi_t = std::conditional_t<std::is_same_v<S, float>, double, long double>;
  const test::omp_threads one(1);
  const double eps = test::epsilon_of<S>();
  const index p = 96, N = 70;
  const layer<S> l = test::random_layer<S>(p, test::wide_grouped_rotary, 1501, 0.12);
  const matrix<S> U = test::random_matrix<S>(N, p, 1502);
  REQUIRE(choose_form(N, l) == jacobian_form::projected);
  for (const mask m : {mask::strict, mask::inclusive}) {
    DYNAMIC_SECTION(to_string(m)) {
      const attention_params ap{m, 0};
      const barrier_params bp{extension::extended};
      const auto fast = barrier_penalty_backward(simd{}, U, l, bp, ap);
      const auto ref = barrier_penalty_backward<hi_t>(test::cast<hi_t>(U), test::cast<hi_t>(l), bp, ap,
                                                      jacobian_form::projected);
      // Tokens below z0 take db/dJ = -cof(J_t) / z0 with J_t nearly singular: the reference's own
      // error in S is the yardstick (measured over the two masks, simd / reference: float 4.4 / 7.8
      // and 6.7 / 6.5 eps; double 2213 / 3223 and 3798 / 3938 eps).
      const auto same = barrier_penalty_backward<S>(U, l, bp, ap, jacobian_form::projected);
      const double err = test::max_gradient_difference(fast.grad, ref.grad) / eps;
      const double ref_err = test::max_gradient_difference(same.grad, ref.grad) / eps;
      INFO("error " << err << ", the reference's " << ref_err << " eps of the largest entry");
      CHECK(err <= 2 * ref_err + 64);
      // chunks of tokens summed in a fixed order (and Eigen's GEMMs too small here to be threaded)
      const test::omp_threads two(2);
      const auto threaded = barrier_penalty_backward(simd{}, U, l, bp, ap);
      CHECK(threaded.grad.dU == fast.grad.dU);
      CHECK(threaded.grad.dW.W_O[3] == fast.grad.dW.W_O[3]);
    }
  }
}

TEST_CASE("simd layer gradients: the exact policy on an infeasible token names it", "[simd][layer][backward]") {
  const index p = 6, N = 12;
  const matrix<double> U = test::random_matrix<double>(N, p, 1602);
  // K_t scales with W_O: a factor beyond 1 / (K_t's largest real eigenvalue) puts det(I - K_t) below 0
  bool infeasible = false;
  for (const double factor : {3.0, -3.0, 10.0, -10.0, 30.0, -30.0}) {
    layer<double> l = test::random_layer<double>(p, test::layer_cases[0], 1601);
    for (matrix<double>& W : l.W_O) W *= factor;
    const std::vector<double> b = barrier_per_token<double>(U, l, {extension::exact}, {});
    if (std::all_of(b.begin() + 1, b.end(), [](double x) { return std::isfinite(x); })) continue;
    infeasible = true;
    CHECK_THROWS_WITH(barrier_penalty_backward(simd{}, U, l, {extension::exact}, {}),
                      Catch::Contains("U") && Catch::Contains("infeasible"));
    break;
  }
  REQUIRE(infeasible);
}

}  // namespace suptok
