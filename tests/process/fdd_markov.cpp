// Exact P_S by enumeration: the Markov chain's closed form, a brute-force sum for the transformer,
// the layout of the cells and the log/probability forms.
#include "process_checks.hpp"

#include <test_support.hpp>

#include <catch2/catch.hpp>

#include <iostream>

using namespace suptok;

namespace {
const index_set test_sets[] = {index_set{},     index_set{1},       index_set{3},          index_set{2, 5},
                               index_set{1, 3, 4}, index_set{6},    index_set::first(6),   index_set{2, 3, 6}};
}

TEST_CASE("P_S of a Markov chain matches its closed form (double)", "[process][fdd]") {
  const auto chain = markov_chain<double>::random(3, 11);
  double worst = 0;
  for (index_set s : test_sets) {
    const vector<double> exact = fdd(chain, s);
    const vector<double> closed = test::markov_closed_form(chain, s);
    REQUIRE(exact.size() == closed.size());
    worst = std::max(worst, test::max_abs_diff(exact, closed));
    CHECK(test::within_eps(exact.sum(), 1.0, 8));  // bound 8 eps, measured 2
  }
  std::cout << "Markov K = 3, n = 6: max |P_S - closed form| = " << worst << "\n";
  // Probabilities <= 1; the enumeration works in log space, so each cell carries a relative error
  // of about (|log P| + n) eps, the closed form about n K eps: bound 8 eps, measured 2.
  CHECK(worst <= 8 * test::epsilon_of<double>());
}

TEST_CASE("P_S cells: first position most significant; log_fdd and fdd agree", "[process][fdd]") {
  // A deterministic chain 0 -> 1 -> 2 -> 0 started in 0: x = (0, 1, 2, 0, ...).
  vector<double> pi(3);
  pi << 1, 0, 0;
  matrix<double> T(3, 3);
  T << 0, 1, 0, 0, 0, 1, 1, 0, 0;
  const markov_chain<double> cycle(pi, T);
  const vector<double> p = fdd(cycle, index_set{2, 3});  // (x_2, x_3) = (1, 2): cell 1 * 3 + 2 = 5
  for (suptok::index c = 0; c < 9; ++c) CHECK(p(c) == (c == 5 ? 1.0 : 0.0));
  const vector<double> lp = log_fdd(cycle, index_set{1, 3});  // (0, 2): cell 2
  CHECK(lp(2) == 0.0);
  CHECK(lp(0) == -std::numeric_limits<double>::infinity());
  CHECK(fdd(cycle, index_set{}).size() == 1);
  CHECK(fdd(cycle, index_set{})(0) == 1.0);
}

TEST_CASE("P_S of the transformer matches a brute-force sum of products", "[process][fdd]") {
  const transformer_lm<double> lm(3, 4, 2, 2, 5);
  double worst = 0;
  for (index_set s : {index_set{1}, index_set{1, 3}, index_set{2, 4}, index_set::first(4), index_set{4}}) {
    const vector<double> exact = fdd(lm, s);
    const vector<double> brute = test::brute_force_fdd(lm, s);
    worst = std::max(worst, test::max_abs_diff(exact, brute));
  }
  std::cout << "transformer K = 3, n = 4: max |P_S - brute force| = " << worst << "\n";
  // Same conditionals, summed in two orders (log-sum-exp vs products of exps): bound 4 eps,
  // measured 0.5.
  CHECK(worst <= 4 * test::epsilon_of<double>());
  // The network really depends on the past: the conditionals after different prefixes differ.
  vector<double> a, b;
  const token p0[] = {0, 1}, p1[] = {2, 1};
  lm.next_log_probs(a, p0);
  lm.next_log_probs(b, p1);
  CHECK(test::max_abs_diff(a, b) > 1e-3);
}
