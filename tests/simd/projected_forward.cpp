// The simd barrier of a layer in the projected form (simd/projected_forward.hpp) and its recursive
// LU (simd/recursive_lu.hpp), against independent formulations: Eigen's PartialPivLU in long double
// for the LU, and the reference path's general form (the (p, p) blocks J_t, barrier/penalty.hpp) for
// b_t, in the same precision and one precision higher, over every layer variant and both masks.
// Error measure: err_eps of simd_checks.hpp, |x - r| <= k eps (|r| + scale).
#include "../layer/hard_families.hpp"
#include "simd_checks.hpp"

#include <catch2/catch.hpp>

#include <Eigen/LU>
#include <Eigen/SVD>

#include <cmath>
#include <limits>
#include <vector>

namespace suptok {  // inside the namespace: `index` would clash with ::index of <strings.h>

namespace {

template <class S>
signed_log_det<S> fast_log_det(matrix<S> A) {
  std::vector<index> pivot;
  return detail::recursive_lu_log_det<S>(A, pivot);
}

template <class S>
Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, 1>> column(const std::vector<S>& v) {
  return {v.data(), index(v.size())};
}

}  // namespace

TEMPLATE_TEST_CASE("recursive LU: sign and log|det| against Eigen's PartialPivLU in long double", "[simd][lu]",
                   float, double) {
  using S = TestType;
  const test::omp_threads one(1);
  const double eps = test::epsilon_of<S>();
  // Sizes around the base panel (16 columns) and the splits of the recursion.
  for (const index n : {1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 100, 161}) {
    DYNAMIC_SECTION("n = " << n) {
      double worst = 0;
      for (std::uint64_t seed = 0; seed < 4; ++seed) {
        const matrix<S> A = test::random_matrix<S>(n, n, 700 + 10 * std::uint64_t(n) + seed);  // pivots needed
        const signed_log_det<S> ld = fast_log_det<S>(A);
        const signed_log_det<long double> ref =
            log_det<long double>(Eigen::PartialPivLU<matrix<long double>>(test::cast<long double>(A)));
        REQUIRE(ld.sign == ref.sign);
        // |error| <= k eps (|log|det|| + n): each of the n pivots carries a relative error of a few
        // eps times the growth of the elimination (moderate for random matrices).
        worst = std::max(worst, std::abs(double(ld.log_abs) - double(ref.log_abs)) /
                                    (eps * (std::abs(double(ref.log_abs)) + double(n))));
      }
      INFO("largest error " << worst << " eps (|log|det|| + n)");
      CHECK(worst <= 16);  // measured up to 3.3 (float) and 10.4 (double)
    }
  }
  SECTION("exact cases: permutations and signs, singular matrices") {
    matrix<S> P = matrix<S>::Zero(40, 40);  // the cyclic shift by 17: a product of 39 transpositions
    for (index i = 0; i < 40; ++i) P(i, (i + 17) % 40) = i % 3 == 0 ? S(-2) : S(1);
    const signed_log_det<S> ld = fast_log_det<S>(P);
    // det = (-1)^39 * (-2)^14: sign -1 (the shift) times +1 (14 negative entries), |det| = 2^14
    CHECK(ld.sign == -1);
    CHECK(test::within_eps<S>(ld.log_abs, 14 * std::log(S(2)), 4));
    matrix<S> Z = test::random_matrix<S>(33, 33, 801);
    Z.col(20).setZero();
    CHECK(fast_log_det<S>(Z).sign == 0);
    CHECK(fast_log_det<S>(Z).log_abs == -std::numeric_limits<S>::infinity());
  }
}

TEMPLATE_TEST_CASE("packed GEMM C - A B against a long double product", "[simd][lu]", float, double) {
  using S = TestType;
  const double eps = test::epsilon_of<S>();
  // Shapes around the register block (8 or 6 rows, 2 vectors), the 96-row chunks and the 256-deep
  // slices: ragged right and bottom edges, one row, a depth past one slice.
  const index shapes[][3] = {{1, 64, 64}, {7, 64, 65}, {97, 80, 81}, {200, 300, 130}, {384, 257, 96}, {50, 513, 70}};
  for (const auto& [m, k, n] : shapes)
    for (const double a_scale : {1.0, 1e-3}) {
      DYNAMIC_SECTION("(m, k, n) = (" << m << ", " << k << ", " << n << "), A and B of scale " << a_scale) {
        const matrix<S> A = test::random_matrix<S>(m, k, 900 + std::uint64_t(k), a_scale);
        const matrix<S> B = test::random_matrix<S>(k, n, 901 + std::uint64_t(n), a_scale);
        const matrix<S> C0 = matrix<S>::Constant(m, n, S(1)) + test::random_matrix<S>(m, n, 902, 1e-2);
        matrix<S> C = C0;
        detail::simd_kernels::packed_gemm_subtract<S>(C.data(), n, A.data(), k, B.data(), n, m, k, n);
        const matrix<long double> exact =
            test::cast<long double>(C0) - test::cast<long double>(A) * test::cast<long double>(B);
        const matrix<long double> scale = test::cast<long double>(C0).cwiseAbs() +
                                          test::cast<long double>(A).cwiseAbs() * test::cast<long double>(B).cwiseAbs();
        // |error| <= k eps (|C| + |A| |B|) entrywise, in units of eps: each product of k terms is
        // summed in the registers from zero and added to C once (per slice of 256), so where A B is
        // small against C = 1 (scale 1e-3) the error stays near one rounding of C; accumulating onto
        // C term by term measured 9-25 eps there.
        const double worst = ((test::cast<long double>(C) - exact).cwiseAbs().cwiseQuotient(scale)).maxCoeff() / eps;
        INFO("largest error " << worst << " eps (|C| + |A| |B|)");
        CHECK(worst <= 4);  // measured up to 1.86 (float) and 1.83 (double)
      }
    }
}

TEMPLATE_TEST_CASE("simd projected barrier of a layer against the reference's general form", "[simd][layer]", float,
                   double) {
  using S = TestType;
  using hi_t = std::conditional_t<std::is_same_v<S, float>, double, long double>;
  const test::omp_threads one(1);
  const double eps = test::epsilon_of<S>();
  const barrier_params bp{extension::extended};
  double worst = 0, worst_hi = 0;
  for (const test::layer_case& c : test::layer_cases)
    for (const mask m : {mask::strict, mask::inclusive})
      for (const index N : {1, 2, 3, 17, 70}) {
        const index p = 12;
        const layer<S> l = test::random_layer<S>(p, c, 900 + std::uint64_t(N), 0.4);
        const matrix<S> U = test::random_matrix<S>(N, p, 950 + std::uint64_t(N));
        const attention_params ap{m, 0};
        REQUIRE(choose_form(N, l) == jacobian_form::projected);  // else the simd path is the reference itself
        const std::vector<S> fast = barrier_per_token(simd{}, U, l, bp, ap);
        const std::vector<S> ref = barrier_per_token<S>(U, l, bp, ap);
        const std::vector<hi_t> hi = barrier_per_token<hi_t>(test::cast<hi_t>(U), test::cast<hi_t>(l), bp, ap);
        // scale p: a rounding of order eps in the entries of J_t moves log det J_t by about p eps
        worst = std::max(worst, test::err_eps(column(fast), column(ref), eps, double(p)));
        worst_hi = std::max(worst_hi, test::err_eps(column(fast), column(hi), eps, double(p)));
        const S penalty = barrier_penalty(simd{}, U, l, bp, ap);
        CHECK(test::within_eps<S>(penalty, barrier_penalty<S>(U, l, bp, ap), 32, double(p)));
      }
  INFO("simd vs reference " << worst << ", vs the reference one precision higher " << worst_hi);
  CHECK(worst <= 64);     // two roundings of up to 32 each: measured 27.8 (float), 14.8 (double)
  CHECK(worst_hi <= 32);  // measured 11.7 (float), 11.6 (double)
}

TEMPLATE_TEST_CASE("simd projected barrier: a wider layer (recursive LU, moment tiles, grouped rotary heads)",
                   "[simd][layer]", float, double) {
  using S = TestType;
  using hi_t = std::conditional_t<std::is_same_v<S, float>, double, long double>;
  const test::omp_threads one(1);
  const double eps = test::epsilon_of<S>();
  const index p = 96, N = 140;
  const layer<S> l = test::random_layer<S>(p, test::wide_grouped_rotary, 1001, 0.12);
  const matrix<S> U = test::random_matrix<S>(N, p, 1002);
  REQUIRE(choose_form(N, l) == jacobian_form::projected);
  for (const mask m : {mask::strict, mask::inclusive}) {
    DYNAMIC_SECTION(to_string(m)) {
      const attention_params ap{m, 0};
      const barrier_params bp{extension::extended};
      const std::vector<S> fast = barrier_per_token(simd{}, U, l, bp, ap);
      const std::vector<hi_t> hi = barrier_per_token<hi_t>(test::cast<hi_t>(U), test::cast<hi_t>(l), bp, ap);
      double size = 0;  // the moment term is not negligible: b_t is far from 0
      for (const hi_t b : hi) size = std::max(size, double(std::abs(b)));
      INFO("max |b_t| " << size);
      CHECK(size > 0.5);
      const double err = test::err_eps(column(fast), column(hi), eps, double(p));
      INFO("error " << err);
      CHECK(err <= 32);  // measured up to 2.7 (float), 4.3 (double)
      // threads split the moment rows and the tokens, never a sum: the values do not change
      const test::omp_threads two(2);
      CHECK(barrier_per_token(simd{}, U, l, bp, ap) == fast);
    }
  }
}

TEMPLATE_TEST_CASE("simd projected barrier on hard inputs: within the conditioning of the data", "[simd][layer][precision]",
                   float, double) {
  // The families of tests/layer/hard_inputs.cpp. Checked: sign and log|det J_t| of the simd path
  // against the general form one precision higher. A relative perturbation eps cond_data of the
  // moments (cond_data = kappa_data + L: input rounding against the spread of the tokens, the logit
  // scale) moves K_t by about eps cond_data |K_t| and log|det(I - K_t)| by about
  //   eps cond_t,  cond_t = 1 + cond_data |K_t| ||(I - K_t)^{-1}||   (norms: largest entry, 2-norm)
  // which is large where the layer's weights are (one-hot attention, |K_t| ~ 700 here).
  using S = TestType;
  using hi_t = std::conditional_t<std::is_same_v<S, float>, double, long double>;
  const test::omp_threads one(1);
  const double eps = test::epsilon_of<S>();
  const index N = 40, p = 8;
  index refined = 0;
  for (const test::hard_family& fam : test::hard_families(N, p))
    for (const mask m : {mask::strict, mask::inclusive}) {
      DYNAMIC_SECTION(fam.name << ", " << to_string(m)) {
        const attention_params ap{m, 0};
        const layer<double> l = test::random_layer<double>(p, test::layer_cases[2] /* grouped, biases */, 1101,
                                                           fam.weight_scale);
        const matrix<S> U = fam.U.cast<S>();
        const layer<S> lS = test::cast<S>(l);
        REQUIRE(choose_form(N, lS) == jacobian_form::projected);
        detail::simd_projected_pass<S> ps;
        detail::simd_projected_moments<S>(ps, U, lS, ap);
        detail::simd_projected_log_dets<S>(ps, m);
        refined += ps.refined;
        const matrix<hi_t> U_hi = fam.U.cast<hi_t>();
        const layer<hi_t> l_hi = test::cast<hi_t>(l);
        const auto J_hi = jacobian_blocks<hi_t>(U_hi, l_hi, ap);
        const auto K_hi = projected_blocks<hi_t>(U_hi, l_hi, ap);
        const double cond_data =
            test::kappa_data(fam.U) + test::logit_scale(attention_forward<double>(fam.U, l, ap));
        double worst = 0, cond_worst = 0;  // the largest error / (eps cond_t), and its cond_t
        for (index t = 0; t < N; ++t) {
          const matrix<hi_t>& K = K_hi[std::size_t(t)];
          const matrix<hi_t> I_K = matrix<hi_t>::Identity(K.rows(), K.cols()) - K;
          const auto sv = Eigen::JacobiSVD<matrix<hi_t>>(I_K).singularValues();
          const double cond_t = 1 + cond_data * double(K.cwiseAbs().maxCoeff() / sv(sv.size() - 1));
          const signed_log_det<hi_t> ref = log_det<hi_t>(J_hi[std::size_t(t)]);
          const signed_log_det<S>& ld = ps.ld[std::size_t(t)];
          CHECK(ld.sign == ref.sign);
          const double err = std::abs(double(ld.log_abs) - double(ref.log_abs)) / (eps * cond_t);
          if (err > worst) worst = err, cond_worst = cond_t;
        }
        INFO("cond_data " << cond_data << ": largest error of log|det J_t| " << worst << " eps cond_t (cond_t "
                          << cond_worst << ")");
        CHECK(worst <= 16);  // measured up to 1.9 (float), 3.8 (double)
      }
    }
  // the centred recomputation must have run on these families (cluster, drift, one-hot attention)
  CHECK(refined > 0);
}

}  // namespace suptok
