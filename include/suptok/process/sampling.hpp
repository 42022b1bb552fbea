// suptok/process/sampling.hpp: exact sampling of token sequences (docs/math.md section 5).
//
//   sample_sequences(model, m, count, seed)  ->  (count, m) row-major matrix of tokens, row i
//   one sequence x_1..x_m drawn from P_m, with std::mt19937_64(seed): the same seed gives the same
//   sequences.
// causal_model: ancestral sampling, x_t ~ p(. | x_<t) from model.next_log_probs, one call per
//   token (independent of the enumeration code of fdd.hpp, so that tests can compare the two).
// joint_model: P_m has no conditionals to sample from; it is enumerated (K^m <= budget) and each
//   sequence drawn by inverse CDF over the K^m cells.
// Each draw takes u = std::uniform_real_distribution<double>(0, 1) and returns the first cell
// whose cumulative probability (in double, from the max-shifted exp of the log-probabilities)
// exceeds u times the total: cells of probability zero are never drawn.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "fdd.hpp"

namespace suptok {

namespace detail {

// Cumulative sums (in double) of exp(log_p - max log_p); log_p is not necessarily normalised.
template <class S>
void cumulative_of(std::vector<double>& cumulative, const vector<S>& log_p) {
  using std::exp;
  S top = minus_infinity<S>();
  for (index i = 0; i < log_p.size(); ++i) top = max_of(top, log_p(i));
  require(is_finite(top), "model", "every token has probability zero");
  cumulative.resize(static_cast<std::size_t>(log_p.size()));
  double sum = 0;
  for (index i = 0; i < log_p.size(); ++i) {
    sum += to_double(exp(log_p(i) - top));
    cumulative[static_cast<std::size_t>(i)] = sum;
  }
}

inline index draw_cell(const std::vector<double>& cumulative, std::mt19937_64& gen) {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(gen) * cumulative.back();
  return static_cast<index>(std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin());
}

template <causal_model M>
void sample_into(matrix<token>& x, const M& model, std::mt19937_64& gen, std::uint64_t) {
  const index K = vocab_of(model);
  vector<scalar_of<M>> lp;  // (K)
  std::vector<double> cumulative;
  for (index i = 0; i < x.rows(); ++i)
    for (index t = 0; t < x.cols(); ++t) {
      checked_next_log_probs(lp, model, std::span<const token>(x.row(i).data(), static_cast<std::size_t>(t)), K);
      cumulative_of(cumulative, lp);
      x(i, t) = static_cast<token>(draw_cell(cumulative, gen));
    }
}

template <joint_model M>
  requires(!causal_model<M>)  // a model with both interfaces is used as causal
void sample_into(matrix<token>& x, const M& model, std::mt19937_64& gen, std::uint64_t budget) {
  const int m = static_cast<int>(x.cols());
  const prefix_joints<scalar_of<M>> table = enumerate_prefixes(model, m, budget);
  std::vector<double> cumulative;
  cumulative_of(cumulative, table.log_joint[static_cast<std::size_t>(m)]);
  std::vector<token> tokens;
  for (index i = 0; i < x.rows(); ++i) {
    decode_cell(tokens, draw_cell(cumulative, gen), m, table.K);
    for (index t = 0; t < m; ++t) x(i, t) = tokens[static_cast<std::size_t>(t)];
  }
}

}  // namespace detail

// count sequences of length m (1..64) drawn from P_m; joint models need K^m <= budget.
template <process_model M>
matrix<token> sample_sequences(const M& model, int m, std::int64_t count, std::uint64_t seed,
                               std::uint64_t budget = default_enumeration_budget) {
  detail::vocab_of(model);
  detail::require(m >= 1 && m <= index_set::max_position, "m", "length ", m, " outside 1..", index_set::max_position);
  detail::require(count >= 1, "count", "at least one sample is required, got ", count);
  matrix<token> x(count, m);  // (count, m)
  std::mt19937_64 gen(seed);
  detail::sample_into(x, model, gen, budget);
  return x;
}

}  // namespace suptok
