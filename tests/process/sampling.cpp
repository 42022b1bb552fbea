// Sampling: reproducibility, goodness of fit of the sampler against the exact P_S (and the
// power of that test), Wilson intervals and the chi-square test on hand-computed cases.
#include "process_checks.hpp"

#include <test_support.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>

using namespace suptok;

// Confidence level of the goodness-of-fit tests: a correct sampler fails with probability 1e-3
// per test; the seeds are fixed, so the outcome is deterministic.
constexpr double gof_level = 1e-3;

TEST_CASE("sampling is reproducible from its seed", "[process][sampling]") {
  const transformer_lm<double> lm(3, 4, 2, 2, 7);
  const matrix<token> a = sample_sequences(lm, 5, 50, 42);
  const matrix<token> b = sample_sequences(lm, 5, 50, 42);
  const matrix<token> c = sample_sequences(lm, 5, 50, 43);
  CHECK(a.rows() == 50);
  CHECK(a.cols() == 5);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a.minCoeff() >= 0);
  CHECK(a.maxCoeff() <= 2);
}

TEST_CASE("the sampler fits the exact P_S (chi-square, every model)", "[process][sampling]") {
  const auto chain = markov_chain<double>::random(3, 3);
  const transformer_lm<double> lm(3, 4, 2, 2, 7);
  const bidirectional_lm<double> bi(3, 4, 2, 2, 7);
  const std::int64_t N = 20000;
  for (index_set s : {index_set{1, 2, 3}, index_set{2, 5}, index_set{4}}) {
    const gof_result g_chain = sampler_gof(chain, s, N, 1);
    const gof_result g_lm = sampler_gof(lm, s, N, 2);
    const gof_result g_bi = sampler_gof(bi, s, N, 3);
    std::cout << "S = " << s << ": p-values Markov " << g_chain.p_value << ", transformer " << g_lm.p_value
              << ", bidirectional " << g_bi.p_value << " (df " << g_lm.degrees_of_freedom << ")\n";
    CHECK(g_chain.p_value > gof_level);
    CHECK(g_lm.p_value > gof_level);
    CHECK(g_bi.p_value > gof_level);
    CHECK(g_lm.cells == std::llround(std::pow(3.0, s.size())));
  }
}

TEST_CASE("the goodness-of-fit test has power", "[process][sampling]") {
  // The transformer's samples tested against the Markov chain's P_S, and the bidirectional
  // model's samples of length 6 (marginal of P_6) against its P_{1} (marginal of P_1).
  const auto chain = markov_chain<double>::random(3, 3);
  const transformer_lm<double> lm(3, 4, 2, 2, 7);
  const bidirectional_lm<double> bi(3, 4, 2, 2, 7);
  const index_set s{1, 2};
  const fdd_estimate e = estimate_fdd(lm, s, 20000, 2);
  CHECK(chi_square_gof<double>(e.counts, fdd(chain, s)).p_value < 1e-6);
  const fdd_estimate long_runs = estimate_fdd(sample_sequences(bi, 6, 20000, 4), index_set{1}, 3);
  const fdd_estimate short_runs = estimate_fdd(sample_sequences(bi, 1, 20000, 4), index_set{1}, 3);
  CHECK(chi_square_gof<double>(long_runs.counts, fdd(bi, index_set{1})).p_value < 1e-6);
  CHECK(chi_square_gof<double>(short_runs.counts, fdd(bi, index_set{1})).p_value > gof_level);
}

TEST_CASE("Monte-Carlo estimates and their Wilson intervals", "[process][sampling]") {
  const transformer_lm<double> lm(3, 4, 2, 2, 7);
  const index_set s{1, 3, 4};
  const fdd_estimate e = estimate_fdd(lm, s, 20000, 9, 0.95);
  const vector<double> exact = fdd(lm, s);
  REQUIRE(e.counts.size() == 27);
  int covered = 0;
  std::int64_t total = 0;
  for (std::size_t c = 0; c < e.counts.size(); ++c) {
    total += e.counts[c];
    CHECK(e.wilson[c].lower <= e.p_hat[c]);
    CHECK(e.p_hat[c] <= e.wilson[c].upper);
    covered += e.wilson[c].lower <= exact(suptok::index(c)) && exact(suptok::index(c)) <= e.wilson[c].upper;
  }
  CHECK(total == 20000);
  // 27 cells at 95%: about 25.6 covered on average; fewer than 20 has probability < 1e-3
  // (binomial(27, 0.95) tail; cells are only weakly dependent).
  std::cout << "Wilson 95%: " << covered << " of 27 cells cover the exact P_S\n";
  CHECK(covered >= 20);
}

TEST_CASE("Wilson interval and chi-square on hand-computed cases", "[process][statistics]") {
  // 5 of 10 at 95%: the textbook Wilson interval (0.2366, 0.7634), written out:
  // (p + z^2 / 2n -+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n), z = Phi^-1(0.975).
  const double z = 1.959963984540054, z2 = z * z;
  const interval w = wilson_interval(5, 10, 0.95);
  const double centre = (0.5 + z2 / 20) / (1 + z2 / 10), half = z * std::sqrt(0.025 + z2 / 400) / (1 + z2 / 10);
  CHECK(test::within_eps(w.lower, centre - half, 4));  // bound 4 eps, measured 0
  CHECK(test::within_eps(w.upper, centre + half, 4));  // bound 4 eps, measured 0
  CHECK(std::abs(w.lower - 0.2366) < 5e-5);  // the textbook's four digits
  CHECK(std::abs(w.upper - 0.7634) < 5e-5);
  const interval zero = wilson_interval(0, 20, 0.95);  // lower bound 0, upper z^2 / (N + z^2)
  CHECK(zero.lower == 0.0);
  CHECK(test::within_eps(zero.upper, z2 / (20 + z2), 4));  // bound 4 eps, measured 0

  vector<double> p(3);
  p << 1.0 / 6, 1.0 / 3, 1.0 / 2;
  const std::int64_t perfect[] = {10, 20, 30}, off[] = {30, 20, 10};
  // X^2 = sum (O - E)^2 / E with E = 60 p: 0 up to the rounding of E (scale 1: O(1) terms).
  CHECK(test::within_eps(chi_square_gof<double>(perfect, p).statistic, 0.0, 4, 1.0));  // bound 4 eps, measured 0
  CHECK(test::within_eps(chi_square_gof<double>(perfect, p).p_value, 1.0, 4));  // bound 4 eps, measured 0
  // X^2 = (30-10)^2/10 + 0 + (10-30)^2/30 = 53.33, df = 2: survival exp(-X^2 / 2).
  const gof_result g = chi_square_gof<double>(off, p);
  CHECK(test::within_eps(g.statistic, 160.0 / 3, 4));  // bound 4 eps, measured 0
  CHECK(g.degrees_of_freedom == 2);
  CHECK(test::within_eps(g.p_value, std::exp(-80.0 / 3), 4));  // bound 4 eps, measured 0

  // Pooling: E = 1, 2, 47, 50 -> {1, 2} has E = 3 < 5, so 47 joins it: two cells, df = 1.
  vector<double> q(4);
  q << 0.01, 0.02, 0.47, 0.50;
  const std::int64_t counts[] = {3, 0, 47, 50};
  const gof_result pooled = chi_square_gof<double>(counts, q);
  CHECK(pooled.cells == 4);
  CHECK(pooled.pooled_cells == 2);
  CHECK(pooled.degrees_of_freedom == 1);
  CHECK(test::within_eps(pooled.statistic, 0.0, 4, 1.0));  // 50 vs 50 in both (bound 4 eps, measured 0)
  // An observation in a cell of probability zero: X^2 = inf, p = 0.
  vector<double> r(3);
  r << 0.0, 0.5, 0.5;
  const std::int64_t impossible[] = {1, 50, 49};
  CHECK(chi_square_gof<double>(impossible, r).p_value == 0.0);
}
