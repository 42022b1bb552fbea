// analyse(U, layer, options) in double: margins by iteration against the exact SVD, the general and
// projected forms against each other, signed margins ranking infeasible tokens first, the totals
// against barrier_penalty, the form rule, and validation.
#include "layer_checks.hpp"

#include <suptok/barrier/analysis.hpp>

#include <catch2/catch.hpp>

using namespace suptok;

TEST_CASE("analyse: estimated margins, both forms, against the exact SVD of J_t", "[layer][analysis]") {
  for (const auto& c : test::layer_cases)
    for (const mask m : {mask::strict, mask::inclusive}) {
      DYNAMIC_SECTION(c.name << ", " << to_string(m)) {
        const auto U = test::random_matrix<double>(12, 5, 71);
        const auto l = test::random_layer<double>(5, c, 72, 0.6);
        const auto exact = analyse<double>(U, l, test::options_with(m, jacobian_form::general, margin_method::exact));
        for (const jacobian_form f : {jacobian_form::general, jacobian_form::projected}) {
          const auto est = analyse<double>(U, l, test::options_with(m, f, margin_method::estimate));
          CHECK(est.form == f);
          for (std::size_t t = 0; t < exact.tokens.size(); ++t) {
            const auto &a = est.tokens[t], &e = exact.tokens[t];
            CHECK(a.position == e.position);
            CHECK(a.sign == e.sign);
            // log|det| from two LUs of different matrices (J_t or I - K_t): bound 128 eps
            // absolute, measured up to 18.
            CHECK(test::within_eps(a.log_abs_det, e.log_abs_det, 128, 1.0));
            // The iteration stops at a relative change of 1e-10 (4.5e5 eps); when the two smallest
            // singular values are well separated its error is of that order. Bound 1e7 eps
            // (2.2e-9 relative), measured up to 1.2e6 (sigma_min, signed margin) and 3.8e6 (kappa).
            CHECK(test::within_eps(a.sigma_min, e.sigma_min, 1e7));
            CHECK(test::within_eps(a.signed_margin, e.signed_margin, 1e7));
            CHECK(test::within_eps(a.kappa, e.kappa, 1e7));
          }
          // Bound 16 eps absolute, measured up to 3.6.
          CHECK(test::within_eps(est.penalty, exact.penalty, 16, 1.0));
        }
      }
    }
}

TEST_CASE("analyse: blocks with entries near the top of double's range keep finite margins", "[layer][analysis]") {
  // W_O scaled by 2^600 (4e180): J_t = I - 2^600 A_t has entries near 1e180 whose squares overflow
  // double, so a plain |J x| is +inf and |J^{-1} x| (near 1e-180) squares to 0. Reference: the
  // singular values of 2^-600 J_t (an exact scaling of the same double block) by Eigen's JacobiSVD,
  // times 2^600. (A validation fuzz input with weights of 1e300 gave margins of -inf and kappa NaN
  // before the estimate's norms were scaled.) The general form only: the projected form's
  // J^{-1} x = x + W (I - K_t)^{-1} Y_t x cancels terms of size |x| to a result of size 1e-180, so
  // there sigma_min comes out near 1 / eps instead (docs/errors.md). Two heads of d_v = 2 (n = p):
  // every J_t is well conditioned (kappa <= 1e2), so the reference is accurate.
  const auto U = test::random_matrix<double>(7, 4, 95);
  auto l = test::random_layer<double>(4, test::layer_cases[0], 96, 0.7);
  for (auto& W : l.W_O) W *= std::ldexp(1.0, 600);
  const attention_params ap{mask::inclusive, 0};
  const auto blocks = jacobian_blocks<double>(U, l, ap);
  const auto r = analyse<double>(U, l, test::options_with(mask::inclusive, jacobian_form::general, margin_method::estimate));
  for (std::size_t t = 0; t < blocks.size(); ++t) {
    INFO("token " << t);
    const matrix<double> scaled = std::ldexp(1.0, -600) * blocks[t];
    const vector<double> s = Eigen::JacobiSVD<matrix<double>>(scaled).singularValues();
    const double sigma_min = std::ldexp(s(s.size() - 1), 600), kappa = s(0) / s(s.size() - 1);
    const auto& row = r.tokens[t];
    REQUIRE(std::isfinite(row.sigma_min));
    REQUIRE(std::isfinite(row.kappa));
    // As in the first test: the iteration's 1e-10 stopping rule; bound 1e7 eps, measured up to
    // 1.9e5 (sigma_min, signed margin) and 4.4e5 (kappa). Before the fix: +inf and NaN.
    CHECK(test::within_eps(row.sigma_min, sigma_min, 1e7));
    CHECK(test::within_eps(row.signed_margin, row.sign * sigma_min, 1e7));
    CHECK(test::within_eps(row.kappa, kappa, 1e7));
  }
}

TEST_CASE("analyse: the penalty and rows agree with the head-stack functions", "[layer][analysis]") {
  const auto U = test::random_matrix<double>(10, 4, 81);
  const auto hs = test::random_heads<double>(2, 4, 2, 2, 82, 0.8);
  for (const mask m : {mask::strict, mask::inclusive}) {
    analysis_options o = test::options_with(m, jacobian_form::automatic, margin_method::exact);
    const auto r = analyse<double>(U, hs, o);
    const double penalty = barrier_penalty<double>(U, hs, o.barrier, o.attention);
    // Same blocks formed in a different order: bound 16 eps absolute, measured up to 1.6.
    CHECK(test::within_eps(r.penalty, penalty, 16, 1.0));
    const auto ms = token_margins<double>(U, hs, o.attention);
    for (std::size_t t = 0; t < ms.size(); ++t) {
      // Bound 16 eps absolute, measured up to 2.7.
      CHECK(test::within_eps(r.tokens[t].signed_margin, ms[t].signed_margin, 16, 1.0));
      CHECK(r.tokens[t].sign == ms[t].sign);
    }
  }
}

TEST_CASE("analyse: infeasible tokens have negative signed margins and rank first", "[layer][analysis]") {
  // Strong heads (weights of scale 2.5) on a strict mask: several tokens cross the barrier.
  const auto U = test::random_matrix<double>(16, 3, 91);
  const auto l = test::random_layer<double>(3, test::layer_cases[0], 92, 2.5);
  analysis_options o = test::options_with(mask::strict, jacobian_form::general, margin_method::exact);
  o.support = support_rule::smallest(4);
  const auto r = analyse<double>(U, l, o);
  REQUIRE(r.infeasible_count >= 1);
  REQUIRE(r.infeasible_count < 14);
  suptok::index infeasible_support = 0;
  for (const auto& row : r.tokens) {
    if (row.sign < 0) CHECK(row.signed_margin < 0);
    if (row.sign > 0) CHECK(row.signed_margin > 0);
    if (row.support && row.sign < 0) ++infeasible_support;
    if (row.position < 2) CHECK_FALSE(row.support);  // trivial positions are skipped by default
  }
  CHECK(r.support_count == 4);
  CHECK(infeasible_support == std::min<suptok::index>(4, r.infeasible_count));
}

TEST_CASE("choose_form: projected for narrow heads at real width, general for wide heads", "[layer][analysis]") {
  layer<double> gpt2;
  for (int h = 0; h < 12; ++h) {
    gpt2.W_Q.push_back(matrix<double>::Zero(64, 768));
    gpt2.W_K.push_back(matrix<double>::Zero(64, 768));
    gpt2.W_V.push_back(matrix<double>::Zero(64, 768));
    gpt2.W_O.push_back(matrix<double>::Zero(768, 64));
  }
  CHECK(choose_form(1024, gpt2) == jacobian_form::projected);
  const layer<double> wide = as_layer(test::random_heads<double>(4, 8, 8, 8, 1));
  CHECK(choose_form(64, wide) == jacobian_form::general);
}

TEST_CASE("analyse: validation names the option", "[layer][analysis][validation]") {
  const auto U = test::random_matrix<double>(5, 4, 101);
  const auto l = test::random_layer<double>(4, test::layer_cases[1], 102);
  const auto argument_of = [&](analysis_options o) -> std::string {
    try {
      analyse<double>(U, l, o);
    } catch (const suptok::error& e) {
      return e.argument();
    }
    return "";
  };
  analysis_options o;
  o.support = support_rule::smallest(-1);
  CHECK(argument_of(o) == "options.support.k");
  o.support = support_rule::within(-0.5);
  CHECK(argument_of(o) == "options.support.delta");
  o.support = support_rule::barrier_fraction(1.5);
  CHECK(argument_of(o) == "options.support.q");
  o = {};
  o.iteration.max_iterations = 0;
  CHECK(argument_of(o) == "options.iteration.max_iterations");
  o = {};
  o.iteration.tolerance = 0;
  CHECK(argument_of(o) == "options.iteration.tolerance");
  o = {};
  o.barrier.z0 = -1;
  CHECK(argument_of(o) == "options.barrier.z0");
  o = {};
  o.attention.temperature = -1;
  CHECK(argument_of(o) == "options.attention.temperature");
}
