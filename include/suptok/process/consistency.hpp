// suptok/process/consistency.hpp: the Kolmogorov consistency check (docs/math.md section 5).
//
// For every pair S' subset S subset {1..n}, S' = S and S' = {} included (3^n pairs: each
// position is outside S, in S \ S' or in S'), it sums P_S over the positions of S \ S' and
// compares with P_S' cell by cell:
//   violation(S, S') = max_{x_S'} | sum_{x_{S \ S'}} P_S(x_S) - P_S'(x_S') |     (probabilities)
// and reports the maximum over all pairs, the pair where it occurs (the first one met, S in
// increasing order of bits, S' likewise) and the number of pairs checked. The pairs S' = S give
// exactly 0; the pairs S' = {} check that P_S sums to 1.
// A causal model gives violations at rounding level (about K^n eps of S; ~1e-16 in double and
// ~1e-49 in cpp_bin_float_50 for n <= 6); a joint model with inconsistent lengths (bidirectional_lm)
// gives a violation of the size of the discrepancy.
// Cost: the log P_S of all 2^n sets (one marginalisation of the prefix table each) and then
// sum over pairs of K^|S| = (2K + 1)^n terms, required to be <= budget.
#pragma once

#include <cstdint>
#include <vector>

#include "fdd.hpp"

namespace suptok {

template <class S>
struct consistency_report {
  S max_violation = S(0);       // max |sum_{S \ S'} P_S - P_S'| over pairs and cells
  index_set worst_S;            // the pair where the maximum occurs
  index_set worst_S_prime;
  std::uint64_t pairs_checked = 0;  // 3^n
};

// The check on a table of prefix joints of length n = table.n().
template <class S>
consistency_report<S> check_consistency(const prefix_joints<S>& table,
                                        std::uint64_t budget = default_enumeration_budget) {
  using std::abs;
  using std::exp;
  const int n = table.n();
  detail::require(table.K >= 1 && n >= 0, "table", "empty table (use enumerate_prefixes)");
  detail::enumeration_size(2 * table.K + 1, n, budget, "n");
  const index_set all = index_set::first(n);
  std::vector<vector<S>> log_p(std::size_t{1} << n);  // log P_S for every S subset {1..n}, by bits
  for (index_set s : subsets(all)) log_p[s.bits()] = log_fdd(table, s);
  consistency_report<S> report;
  for (index_set s : subsets(all)) {
    for (index_set s_prime : subsets(s)) {
      ++report.pairs_checked;
      const vector<S> summed = detail::marginalize_unchecked(log_p[s.bits()], s, s_prime, table.K);  // (K^|S'|)
      const vector<S>& direct = log_p[s_prime.bits()];
      for (index c = 0; c < summed.size(); ++c) {
        const S violation = abs(exp(summed(c)) - exp(direct(c)));
        detail::require(is_finite(violation), "model", "non-finite probabilities in P_", s, " or P_", s_prime);
        if (report.max_violation < violation) {
          report.max_violation = violation;
          report.worst_S = s;
          report.worst_S_prime = s_prime;
        }
      }
    }
  }
  return report;
}

// The check of a model over {1..n}: K^n <= budget and (2K + 1)^n <= budget.
template <process_model M>
consistency_report<scalar_of<M>> check_consistency(const M& model, int n,
                                                   std::uint64_t budget = default_enumeration_budget) {
  detail::require(n >= 0 && n <= index_set::max_position, "n", "n = ", n, " outside 0..", index_set::max_position);
  detail::enumeration_size(2 * detail::vocab_of(model) + 1, n, budget, "n");
  return check_consistency(enumerate_prefixes(model, n, budget), budget);
}

}  // namespace suptok
