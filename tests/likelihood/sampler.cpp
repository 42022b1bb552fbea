// The sampler (docs/math.md section 6): round trip inside the barrier (sample eps, solve for u,
// recompute eps), the p = 1 root count inside / outside the barrier on the configuration of
// docs/math.md section 3, non-convergence reporting, validation.
#include "likelihood_checks.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

using namespace suptok;

namespace {

// The p = 1 configuration of docs/math.md section 3: V = 1, W_K = 1, W_Q = VA = va, temperature 1.
heads<double> p1_heads(double va) {
  heads<double> hs(1);
  hs[0].W_Q = matrix<double>::Constant(1, 1, va);
  hs[0].W_K = matrix<double>::Constant(1, 1, 1.0);
  hs[0].W_V = matrix<double>::Constant(1, 1, 1.0);
  hs[0].W_O = matrix<double>::Constant(1, 1, 1.0);
  return hs;
}
const attention_params p1_params{mask::strict, 1.0};

}  // namespace

TEST_CASE("sampler round trip inside the barrier", "[likelihood][sampler]") {
  for (const auto& params : {test::strict_params, test::inclusive_params})
    for (const suptok::index p : {3, 1}) {
      DYNAMIC_SECTION("mask " << to_string(params.causal_mask) << ", p = " << p) {
        const auto hs = test::random_heads<double>(2, p, 2, 2, 701, 0.4);
        const auto eps = test::random_matrix<double>(8, p, 702);
        const auto s = sample<double>(eps, hs, params);
        REQUIRE(s.tokens.size() == 8);
        CHECK(s.converged());
        for (const auto& r : s.tokens) {
          CHECK(r.det_sign == 1);  // small weights: inside the barrier at every token
          CHECK(r.iterations <= 20);
        }
        // Newton converges quadratically to the 64-epsilon residual tolerance, then
        // recomputing e = U - mu gives eps back: 1e-10 absolute, the documented requirement.
        const double err = (residuals<double>(s.U, hs, params) - eps).cwiseAbs().maxCoeff();
        INFO("round-trip error " << err);
        CHECK(err < 1e-10);
      }
    }
}

TEST_CASE("all_roots_1d: one root inside the barrier, three outside", "[likelihood][sampler]") {
  matrix<double> past(2, 1);
  past << 1.0, -1.0;  // u_1 = 1, u_2 = -1: C_max = (u_1 - u_2)^2 / 4 = 1, barrier at VA = 1
  // Here mu_3(x) = tanh(VA x) and e(x) = x - tanh(VA x), J(x) = 1 - VA sech^2(VA x).
  const double eps_t = 0.1;  // |eps_t| < 0.2664, the local maximum of -e for VA = 2: three roots
  for (const double va : {0.5, 2.0}) {
    DYNAMIC_SECTION("VA = " << va) {
      const auto roots = all_roots_1d<double>(past, eps_t, p1_heads(va), -5.0, 5.0, p1_params);
      REQUIRE(roots.size() == (va < 1 ? 1u : 3u));
      for (const double x : roots) CHECK(std::abs(x - std::tanh(va * x) - eps_t) < 1e-14);
      if (va > 1) {  // the middle root sits on the folded branch, J < 0
        const double c = std::cosh(va * roots[1]);
        CHECK(1 - va / (c * c) < 0);
        CHECK(roots[0] < roots[1]);
        CHECK(roots[1] < roots[2]);
      }
      // The sampler finds one of them and says which side of the fold it is on.
      matrix<double> eps(3, 1);
      eps << 1.0, -2.0, eps_t;  // strict mask: u_1 = eps_1 = 1, u_2 = eps_2 + V u_1 = -1
      const auto s = sample<double>(eps, p1_heads(va), p1_params);
      CHECK(s.converged());
      CHECK(std::abs(s.U(0, 0) - 1.0) == 0.0);
      CHECK(std::abs(s.U(1, 0) + 1.0) < 1e-15);
      CHECK(std::any_of(roots.begin(), roots.end(), [&](double x) { return std::abs(x - s.U(2, 0)) < 1e-12; }));
      const double u3 = s.U(2, 0);
      const double e3 = (residuals<double>(s.U, p1_heads(va), p1_params))(2, 0);
      CHECK(std::abs(e3 - eps_t) < 1e-12);
      const double c = std::cosh(va * u3);
      CHECK(s.tokens[2].det_sign == ((1 - va / (c * c)) > 0 ? 1 : -1));
    }
  }
}

TEST_CASE("sampler reports non-convergence instead of throwing", "[likelihood][sampler]") {
  const auto hs = test::random_heads<double>(2, 3, 2, 2, 711, 0.8);
  const auto eps = test::random_matrix<double>(6, 3, 712);
  sampler_options one_step;
  one_step.max_iterations = 1;  // one Newton step cannot reach a 64-epsilon residual at t >= 2
  const auto s = sample<double>(eps, hs, test::strict_params, one_step);
  CHECK_FALSE(s.converged());
  CHECK(s.tokens[0].converged);  // strict mask: mu_0 = 0, u_0 = eps_0 exactly
  bool some_failed = false;
  for (const auto& r : s.tokens) some_failed = some_failed || !r.converged;
  CHECK(some_failed);
  const auto full = sample<double>(eps, hs, test::strict_params);
  CHECK(full.converged());
}

TEST_CASE("sampler validation", "[likelihood][validation]") {
  const auto hs = test::random_heads<double>(1, 3, 2, 2, 1);
  auto arg = [](auto&& f) {
    try {
      f();
    } catch (const suptok::error& e) {
      return e.argument();
    }
    return std::string("no error");
  };
  CHECK(arg([&] { sample<double>(test::random_matrix<double>(4, 2, 1), hs); }) == "eps");
  matrix<double> bad = test::random_matrix<double>(4, 3, 1);
  bad(1, 2) = std::nan("");
  CHECK(arg([&] { sample<double>(bad, hs); }) == "eps");
  CHECK(arg([&] { sample<double>(matrix<double>(0, 3), hs); }) == "eps");
  sampler_options o;
  o.max_iterations = 0;
  CHECK(arg([&] { sample<double>(test::random_matrix<double>(4, 3, 1), hs, {}, o); }) == "options.max_iterations");
  o = {};
  o.tolerance = -1;
  CHECK(arg([&] { sample<double>(test::random_matrix<double>(4, 3, 1), hs, {}, o); }) == "options.tolerance");
  CHECK(arg([&] { sample<double>(test::random_matrix<double>(4, 3, 1), heads<double>{}); }) == "heads");
  const matrix<double> past = matrix<double>::Zero(2, 1);
  CHECK(arg([&] { all_roots_1d<double>(matrix<double>::Zero(2, 3), 0.0, hs, -1.0, 1.0); }) == "heads");
  CHECK(arg([&] { all_roots_1d<double>(past, 0.0, p1_heads(2), 1.0, -1.0); }) == "lo");
  CHECK(arg([&] { all_roots_1d<double>(past, std::nan(""), p1_heads(2), -1.0, 1.0); }) == "eps_t");
  CHECK(arg([&] { all_roots_1d<double>(past, 0.0, p1_heads(2), -1.0, 1.0, {}, 0); }) == "grid");
  CHECK(arg([&] { all_roots_1d<double>(past, 0.0, p1_heads(2), -1.0, 1.0); }) == "no error");
}
