// analyse(simd{}, U, layer, options) (simd/projected_analysis.hpp) against the reference path's
// analyse in one precision higher (its exact margins: the SVD of the (p, p) block J_t of the
// general form), over every layer variant, both masks and both margin methods; the threads; the
// head-stack overload and the general-form route. Error measure: err_eps of simd_checks.hpp.
#include "../layer/layer_checks.hpp"
#include "simd_checks.hpp"

#include <suptok/barrier/analysis.hpp>

#include <Eigen/SVD>

#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace suptok {  // inside the namespace: `index` would clash with ::index of <strings.h>

namespace {

// The singular values of every J_t of the general form in R (one precision above the path checked),
// descending: the reference for both margin methods.
template <class R>
std::vector<vector<R>> singular_values_of_blocks(const matrix<R>& U, const layer<R>& l, const attention_params& ap) {
  std::vector<vector<R>> sv;
  for (const matrix<R>& J : jacobian_blocks<R>(U, l, ap)) sv.push_back(Eigen::JacobiSVD<matrix<R>>(J).singularValues());
  return sv;
}

// The largest errors of a simd table against the reference, in eps of S. With s_1 >= ... >= s_p the
// singular values of J_t in R:
//   log|det J_t|   |x - r| / (|r| + p), r from the reference analysis in R
//   exact margins  sigma_min and kappa from the SVD of J_t formed in S: a rounding of J_t of eps |J_t|
//                  moves each singular value by about eps s_1, so sigma_min errs by eps s_1
//                  (measured against s_1) and kappa by eps kappa (1 + kappa)
//   estimates      the iterations bracket the extreme singular values: sigma_min in [s_p, s_{p-1}]
//                  and sigma_max in [s_2, s_1] up to rounding (the stopping rule's error is at most the
//                  gap to the next singular value); `estimate_low` and `estimate_high` are the
//                  largest excursions below s_p (above s_1) and above s_{p-1} (below s_2), in eps of
//                  S relative to s_1; `converged` counts tokens within 1e-4 relative of s_p
struct table_errors {
  double log_abs = 0, sigma_min = 0, kappa = 0, penalty = 0, estimate_low = 0, estimate_high = 0;
  int tokens = 0, converged = 0;
};

template <class S, class R>
void compare_tables(table_errors& e, const analysis<S>& fast, const analysis<R>& ref,
                    const std::vector<vector<R>>& sv, margin_method mm, double p) {
  const double eps = test::epsilon_of<S>();
  REQUIRE(fast.tokens.size() == ref.tokens.size());
  for (std::size_t t = 0; t < ref.tokens.size(); ++t) {
    const auto& a = fast.tokens[t];
    const auto& r = ref.tokens[t];
    CHECK(a.position == r.position);
    REQUIRE(a.sign == r.sign);  // these layers keep |det J_t| well away from 0
    CHECK(a.signed_margin == a.sign * a.sigma_min);
    e.log_abs = std::max(e.log_abs, std::abs(double(a.log_abs_det) - double(r.log_abs_det)) /
                                        (eps * (std::abs(double(r.log_abs_det)) + p)));
    const vector<R>& s = sv[t];
    const double s1 = double(s(0)), s2 = double(s(1)), sp1 = double(s(s.size() - 2)), sp = double(s(s.size() - 1));
    const double sigma_min = double(a.sigma_min), sigma_max = double(a.kappa) * sigma_min;
    ++e.tokens;
    if (mm == margin_method::exact) {
      e.sigma_min = std::max(e.sigma_min, std::abs(sigma_min - sp) / (eps * s1));
      const double kappa = s1 / sp;
      e.kappa = std::max(e.kappa, std::abs(double(a.kappa) - kappa) / (eps * kappa * (1 + kappa)));
    } else {
      e.estimate_low = std::max({e.estimate_low, (sp - sigma_min) / (eps * s1), (sigma_max - s1) / (eps * s1)});
      e.estimate_high = std::max({e.estimate_high, (sigma_min - sp1) / (eps * s1), (s2 - sigma_max) / (eps * s1)});
      e.converged += std::abs(sigma_min - sp) <= 1e-4 * sp;
    }
  }
  e.penalty = std::max(e.penalty, std::abs(double(fast.penalty) - double(ref.penalty)) /
                                      (eps * (std::abs(double(ref.penalty)) + p)));
}

// One line of measured errors for the INFO of a check.
std::string describe(const table_errors& e) {
  std::ostringstream out;
  out << "log|det| " << e.log_abs << ", penalty " << e.penalty << ", exact sigma_min " << e.sigma_min << ", kappa "
      << e.kappa << ", estimates below/above their bracket " << e.estimate_low << " / " << e.estimate_high << " ("
      << e.converged << " of " << e.tokens << " converged)";
  return out.str();
}

}  // namespace

TEMPLATE_TEST_CASE("simd analyse of a layer against the reference one precision higher", "[simd][layer][analysis]",
                   float, double) {
  using S = TestType;
  using hi_t = std::conditional_t<std::is_same_v<S, float>, double, long double>;
  const test::omp_threads one(1);
  const index p = 12;
  table_errors exact, estimate;
  for (const test::layer_case& c : test::layer_cases)
    for (const mask m : {mask::strict, mask::inclusive})
      for (const index N : {1, 3, 17, 40}) {
        const layer<S> l = test::random_layer<S>(p, c, 1300 + std::uint64_t(N), 0.4);
        const matrix<S> U = test::random_matrix<S>(N, p, 1350 + std::uint64_t(N));
        const matrix<hi_t> U_hi = test::cast<hi_t>(U);
        const layer<hi_t> l_hi = test::cast<hi_t>(l);
        const auto ref = analyse<hi_t>(U_hi, l_hi, test::options_with(m, jacobian_form::general, margin_method::exact));
        const auto sv = singular_values_of_blocks<hi_t>(U_hi, l_hi, {m, 0});
        for (const margin_method mm : {margin_method::exact, margin_method::estimate}) {
          const auto fast = analyse(simd{}, U, l, test::options_with(m, jacobian_form::automatic, mm));
          REQUIRE(fast.form == jacobian_form::projected);  // else the reference path runs itself
          compare_tables(mm == margin_method::exact ? exact : estimate, fast, ref, sv, mm, double(p));
          CHECK(fast.support_count == ref.support_count);
        }
      }
  INFO("exact margins: " << describe(exact));
  INFO("estimated margins: " << describe(estimate));
  // Measured (float / double): log|det| 18.8 / 18.9 and the penalty 4.6 / 11.7 eps (|r| + p); exact
  // sigma_min 7.3 / 12.9 eps s_1, kappa 4.5 / 8.2 eps kappa (1 + kappa); estimates at most 6.2 /
  // 0.4 eps s_1 outside their brackets; 608 of 610 estimates within 1e-4 of s_p.
  CHECK(std::max(exact.log_abs, estimate.log_abs) <= 64);
  CHECK(std::max(exact.penalty, estimate.penalty) <= 32);
  CHECK(exact.sigma_min <= 32);
  CHECK(exact.kappa <= 32);
  CHECK(std::max(estimate.estimate_low, estimate.estimate_high) <= 16);
  CHECK(estimate.converged * 20 >= estimate.tokens * 19);
}

TEMPLATE_TEST_CASE("simd analyse: a wider layer in tiles of tokens, on one and two threads", "[simd][layer][analysis]",
                   float, double) {
  // n = 4 x 40 = 160 > p = 48: the projected form is forced (the rule would pick the general one);
  // N = 40 makes three tiles of 16 tokens, and n^3 is enough work for two threads.
  using S = TestType;
  using hi_t = std::conditional_t<std::is_same_v<S, float>, double, long double>;
  const index p = 48, N = 40;
  const test::layer_case c{"4 query heads on 2 key/value heads of width 40, biases, rotary", 4, 2, 40, 40, true, 500};
  const layer<S> l = test::random_layer<S>(p, c, 1401, 0.1);
  const matrix<S> U = test::random_matrix<S>(N, p, 1402);
  REQUIRE(detail::projected_tile_tokens<S>(160) == 16);
  for (const mask m : {mask::strict, mask::inclusive}) {
    DYNAMIC_SECTION(to_string(m)) {
      const matrix<hi_t> U_hi = test::cast<hi_t>(U);
      const layer<hi_t> l_hi = test::cast<hi_t>(l);
      const auto ref = analyse<hi_t>(U_hi, l_hi, test::options_with(m, jacobian_form::general, margin_method::exact));
      const auto sv = singular_values_of_blocks<hi_t>(U_hi, l_hi, {m, 0});
      table_errors e;
      const auto o = test::options_with(m, jacobian_form::projected, margin_method::estimate);
      const test::omp_threads one(1);
      const auto fast = analyse(simd{}, U, l, o);
      CHECK(fast.form == jacobian_form::projected);
      compare_tables(e, fast, ref, sv, margin_method::estimate, double(p));
      INFO(describe(e));
      // Measured: log|det| up to 0.52 and the penalty 0.05 eps (|r| + p), estimates inside their
      // brackets, 33 or 34 of 40 within 1e-4 of s_p (the others stop between s_p and s_{p-1}).
      CHECK(e.log_abs <= 16);
      CHECK(e.penalty <= 16);
      CHECK(std::max(e.estimate_low, e.estimate_high) <= 16);
      CHECK(e.converged * 4 >= e.tokens * 3);
      // Threads take whole tiles and each tile's arithmetic is fixed: the tables are equal.
      const test::omp_threads two(2);
      const auto threaded = analyse(simd{}, U, l, o);
      for (std::size_t t = 0; t < fast.tokens.size(); ++t) {
        CHECK(threaded.tokens[t].log_abs_det == fast.tokens[t].log_abs_det);
        CHECK(threaded.tokens[t].sigma_min == fast.tokens[t].sigma_min);
        CHECK(threaded.tokens[t].kappa == fast.tokens[t].kappa);
      }
    }
  }
}

TEST_CASE("simd analyse: the head-stack overload and the general form", "[simd][layer][analysis]") {
  // A stack of plain heads (the packed path's input) and a layer analysed in the general form
  // (forced): both against the reference in long double.
  const test::omp_threads one(1);
  const index p = 6, N = 20;
  const matrix<double> U = test::random_matrix<double>(N, p, 1501);
  heads<double> hs;
  for (index h = 0; h < 2; ++h)
    hs.push_back({test::random_matrix<double>(3, p, 1510 + 4 * std::uint64_t(h), 0.5),
                  test::random_matrix<double>(3, p, 1511 + 4 * std::uint64_t(h), 0.5),
                  test::random_matrix<double>(2, p, 1512 + 4 * std::uint64_t(h), 0.5),
                  test::random_matrix<double>(p, 2, 1513 + 4 * std::uint64_t(h), 0.5)});
  const layer<double> l = test::random_layer<double>(p, test::layer_cases[4], 1520, 0.5);
  const matrix<long double> U_hi = test::cast<long double>(U);
  for (const mask m : {mask::strict, mask::inclusive}) {
    table_errors stack, general;
    const auto exact = test::options_with(m, jacobian_form::general, margin_method::exact);
    const layer<long double> stack_hi = as_layer(test::cast<long double>(hs)), l_hi = test::cast<long double>(l);
    compare_tables(stack, analyse(simd{}, U, hs, test::options_with(m, jacobian_form::automatic, margin_method::estimate)),
                   analyse<long double>(U_hi, stack_hi, exact), singular_values_of_blocks(U_hi, stack_hi, {m, 0}),
                   margin_method::estimate, double(p));
    const auto fast_general = analyse(simd{}, U, l, test::options_with(m, jacobian_form::general, margin_method::estimate));
    CHECK(fast_general.form == jacobian_form::general);
    compare_tables(general, fast_general, analyse<long double>(U_hi, l_hi, exact),
                   singular_values_of_blocks(U_hi, l_hi, {m, 0}), margin_method::estimate, double(p));
    INFO("head stack: " << describe(stack) << "; general form: " << describe(general));
    // Measured: log|det| up to 0.62 and the penalty 0.06 eps (|r| + p); estimates at most 1 eps
    // s_1 outside their brackets, 19 or 20 of 20 within 1e-4 of s_p.
    for (const table_errors* e : {&stack, &general}) {
      CHECK(e->log_abs <= 16);
      CHECK(e->penalty <= 16);
      CHECK(std::max(e->estimate_low, e->estimate_high) <= 16);
      CHECK(e->converged * 4 >= e->tokens * 3);
    }
  }
}

}  // namespace suptok
