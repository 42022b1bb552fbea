// Precision tier: the forward in float, double and long double against the same inputs in
// cpp_bin_float_50, with errors reported in units of eps(S).
//
// The inputs are drawn in double and cast, so every type sees the same values (exactly in double,
// long double and float50; float rounds them once, which is part of float's error budget, and
// the reference uses the rounded float inputs so that only the arithmetic is measured).
// Bound: each mu_t is a few dot products of length p or d (<= 3), a softmax over <= N = 6 terms
// and a weighted sum; the measured errors are at most about 2 eps (printed below), and the test
// allows 16 eps normwise (max |err| / max |ref|): an 8x margin that still catches any loss of
// precision (e.g. a non-stabilised softmax or an intermediate in a lower precision).
#include "attention_checks.hpp"

#include <catch2/catch.hpp>

using namespace suptok;

TEMPLATE_TEST_CASE("attention_forward: error in units of eps against float50", "[attention][precision]", float,
                   double, long double) {
  using S = TestType;
  const double eps = test::epsilon_of<S>();
  for (std::uint64_t seed : {101, 102, 103}) {
    const matrix<S> U = test::random_matrix<S>(6, 3, seed, 1.5);
    const heads<S> hs = test::mixed_heads<S>(3, seed + 10, 0.8);
    for (mask m : {mask::strict, mask::inclusive}) {
      const attention_params params{m, 0.0};
      const auto out = attention_forward<S>(U, hs, params, true);
      const auto ref = attention_forward<float50>(test::cast<float50>(U), test::cast<float50>(hs), params, true);
      const double mu_err = test::max_rel_error(out.mu, ref.mu) / eps;
      double a_err = 0;
      for (std::size_t h = 0; h < hs.size(); ++h)
        a_err = std::max(a_err, test::max_rel_error(out.weights[h], ref.weights[h]) / eps);
      INFO(scalar_traits<S>::name() << " seed " << seed << " " << to_string(m) << ": mu error " << mu_err
                                    << " eps, weights error " << a_err << " eps");
      CHECK(mu_err <= 16);
      CHECK(a_err <= 16);
      // An error of exactly 0 would mean the comparison is not measuring anything.
      CHECK(mu_err > 0);
      WARN("precision " << scalar_traits<S>::name() << " " << to_string(m) << " seed " << seed << ": mu "
                        << mu_err << " eps, weights " << a_err << " eps");
    }
  }
}
