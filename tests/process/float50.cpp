// The process view in cpp_bin_float_50: exact P_S of a Markov chain against its closed form and
// consistency of both causal models at rounding level (eps = 1e-49 here). Small sizes (K = 2,
// n = 4) keep this translation unit and its run short.
#include "process_checks.hpp"

#include <suptok/support/multiprecision.hpp>

#include <catch2/catch.hpp>

#include <iostream>
#include <limits>

using namespace suptok;

TEST_CASE("float50: Markov P_S matches its closed form", "[process][fdd][float50]") {
  const auto chain = markov_chain<float50>::random(2, 11);
  double worst = 0;
  for (index_set s : {index_set{1}, index_set{3}, index_set{2, 4}, index_set{1, 3, 4}, index_set::first(4)}) {
    worst = std::max(worst, test::max_abs_diff(fdd(chain, s), test::markov_closed_form(chain, s)));
  }
  std::cout << "float50 Markov K = 2, n = 4: max |P_S - closed form| = " << worst << "\n";
  // As in double (a few eps per cell, log space), eps = 5.3e-51 (168 bits): bound 8 eps, measured 1.
  CHECK(worst <= 8 * to_double(std::numeric_limits<float50>::epsilon()));
}

TEST_CASE("float50: causal models are consistent to rounding level", "[process][consistency][float50]") {
  const auto chain = markov_chain<float50>::random(2, 3);
  const transformer_lm<float50> lm(2, 2, 1, 1, 7);
  const auto r_chain = check_consistency(chain, 4);
  const auto r_lm = check_consistency(lm, 4);
  std::cout << "float50 Markov K = 2, n = 4: pairs " << r_chain.pairs_checked << ", max violation "
            << to_double(r_chain.max_violation) << "\nfloat50 transformer K = 2, n = 4: pairs "
            << r_lm.pairs_checked << ", max violation " << to_double(r_lm.max_violation) << "\n";
  CHECK(r_chain.pairs_checked == 81);  // 3^4
  CHECK(r_lm.pairs_checked == 81);
  // Sums of at most 2^4 probabilities, each a log-space product of <= 4 conditionals: a few eps
  // (bound 32 eps, measured 6 and 2).
  CHECK(r_chain.max_violation <= 32 * std::numeric_limits<float50>::epsilon());
  CHECK(r_lm.max_violation <= 32 * std::numeric_limits<float50>::epsilon());
  // The float50 network is the double network (same seed): P_S agree to double rounding.
  const transformer_lm<double> lm_double(2, 2, 1, 1, 7);
  const double to_double_rounding =
      test::max_abs_diff(fdd(lm, index_set{1, 3, 4}), fdd(lm_double, index_set{1, 3, 4}).cast<float50>());
  std::cout << "float50 vs double transformer P_S: " << to_double_rounding / std::numeric_limits<double>::epsilon() << " eps of double\n";
  CHECK(to_double_rounding < 1e-14);
}
