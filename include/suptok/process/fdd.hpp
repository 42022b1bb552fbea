// suptok/process/fdd.hpp: exact finite-dimensional distributions by enumeration (docs/math.md section 5).
//
//   P_S(x_S) = sum over x at positions {1..max S} \ S of  P_{max S}(x_1..x_{max S})
// where P_m is the joint of the first m positions: prod_{t <= m} p(x_t | x_<t) for a causal_model,
// exp(log_score(x)) / Z_m for a joint_model (see model.hpp).
//
// Layout: a distribution over the positions of a set A = {a_1 < ... < a_k} is a vector of K^k
// values indexed by the base-K number x_{a_1} x_{a_2} ... x_{a_k}: the FIRST position is the MOST
// significant digit. The empty set has one cell (P_{} = 1, log 0).
//
// Algorithm: dynamic programming over prefixes. enumerate_prefixes builds log P_m for m = 0..n,
// level by level: a causal model is called once per prefix of length < n (sum_{m<n} K^m calls),
// the children of cell i of level m-1 being cells i K + x of level m; a joint model is scored once
// per sequence of each length and normalised per length. Then P_S is log_marginalize(log P_{max S})
// : a max-shifted log-sum-exp over the positions not in S, so no underflow however small the
// probabilities. The tables hold about 2 K^n values: enumeration requires K^(max S) <= budget
// (default 2^22), else a suptok::error naming the argument.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "index_set.hpp"
#include "model.hpp"

namespace suptok {

inline constexpr std::uint64_t default_enumeration_budget = std::uint64_t{1} << 22;

template <class S>
struct prefix_joints {
  index K = 0;
  std::vector<vector<S>> log_joint;  // log_joint[m] (K^m): log P_m(x_1..x_m), m = 0..n

  int n() const { return static_cast<int>(log_joint.size()) - 1; }
};

namespace detail {

// K^m when it is at most `budget`, else an error naming `argument`.
inline index enumeration_size(index K, int m, std::uint64_t budget, const std::string& argument) {
  std::uint64_t size = 1;
  for (int i = 0; i < m; ++i) {
    require(size <= budget / static_cast<std::uint64_t>(K), argument, "K^", m, " = ", K, "^", m,
            " sequences exceed the enumeration budget of ", budget, " (pass a larger budget)");
    size *= static_cast<std::uint64_t>(K);
  }
  require(size <= budget, argument, "K^", m, " exceeds the enumeration budget of ", budget);
  return static_cast<index>(size);
}

// The m tokens of cell `cell` (first token most significant).
inline void decode_cell(std::vector<token>& x, index cell, int m, index K) {
  x.resize(static_cast<std::size_t>(m));
  for (int t = m - 1; t >= 0; --t) {
    x[static_cast<std::size_t>(t)] = static_cast<token>(cell % K);
    cell /= K;
  }
}

// cell_B[c] for every cell c over A: the cell over B subset A holding the same tokens.
inline std::vector<index> project_cells(index_set A, index_set B, index K, index size_A) {
  std::vector<index> weight;  // per position of A, least significant first: K^rank in B, or 0
  index w = 1;
  std::vector<int> positions(A.begin(), A.end());
  for (auto it = positions.rbegin(); it != positions.rend(); ++it) {
    weight.push_back(B.contains(*it) ? w : 0);
    if (B.contains(*it)) w *= K;
  }
  std::vector<index> cell_B(static_cast<std::size_t>(size_A));
  for (index c = 0; c < size_A; ++c) {
    index rest = c, b = 0;
    for (index wj : weight) {
      b += (rest % K) * wj;
      rest /= K;
    }
    cell_B[static_cast<std::size_t>(c)] = b;
  }
  return cell_B;
}

// log P_B from log P_A without validation (sizes K^|A| and K^|B| assumed).
template <class S>
vector<S> marginalize_unchecked(const vector<S>& log_p_A, index_set A, index_set B, index K) {
  using std::exp;
  using std::log;
  const std::vector<index> cell_B = project_cells(A, B, K, log_p_A.size());
  index size_B = 1;
  for (int i = 0; i < B.size(); ++i) size_B *= K;
  vector<S> top = vector<S>::Constant(size_B, minus_infinity<S>());  // (K^|B|) max per cell
  for (index c = 0; c < log_p_A.size(); ++c) {
    S& t = top(cell_B[static_cast<std::size_t>(c)]);
    t = max_of(t, log_p_A(c));
  }
  vector<S> sum = vector<S>::Zero(size_B);  // (K^|B|)
  for (index c = 0; c < log_p_A.size(); ++c) {
    const index b = cell_B[static_cast<std::size_t>(c)];
    if (is_finite(top(b))) sum(b) += exp(log_p_A(c) - top(b));
  }
  vector<S> out(size_B);
  for (index b = 0; b < size_B; ++b) out(b) = is_finite(top(b)) ? S(top(b) + log(sum(b))) : top(b);
  return out;
}

template <causal_model M>
void next_level(vector<scalar_of<M>>& level, const vector<scalar_of<M>>& previous, const M& model, int m, index K) {
  level.resize(previous.size() * K);
  std::vector<token> prefix;
  vector<scalar_of<M>> lp;  // (K)
  for (index i = 0; i < previous.size(); ++i) {
    decode_cell(prefix, i, m - 1, K);
    checked_next_log_probs(lp, model, prefix, K);
    for (index x = 0; x < K; ++x) level(i * K + x) = previous(i) + lp(x);
  }
}

template <joint_model M>
  requires(!causal_model<M>)  // a model with both interfaces is used as causal
void next_level(vector<scalar_of<M>>& level, const vector<scalar_of<M>>& previous, const M& model, int m, index K) {
  level.resize(previous.size() * K);
  std::vector<token> x;
  for (index c = 0; c < level.size(); ++c) {
    decode_cell(x, c, m, K);
    level(c) = checked_log_score(model, x);
  }
  const scalar_of<M> log_Z = log_sum_exp(level);
  require(is_finite(log_Z), "model.log_score", "every sequence of length ", m, " has score -inf");
  level.array() -= log_Z;
}

}  // namespace detail

// log P_m for m = 0..n (prefix_joints::log_joint), n in 0..64, K^n <= budget.
template <process_model M>
prefix_joints<scalar_of<M>> enumerate_prefixes(const M& model, int n,
                                               std::uint64_t budget = default_enumeration_budget) {
  using S = scalar_of<M>;
  const index K = detail::vocab_of(model);
  detail::require(n >= 0 && n <= index_set::max_position, "n", "n = ", n, " outside 0..", index_set::max_position);
  detail::enumeration_size(K, n, budget, "n");
  prefix_joints<S> table;
  table.K = K;
  table.log_joint.resize(static_cast<std::size_t>(n) + 1);
  table.log_joint[0] = vector<S>::Zero(1);
  for (int m = 1; m <= n; ++m)
    detail::next_level(table.log_joint[static_cast<std::size_t>(m)], table.log_joint[static_cast<std::size_t>(m - 1)],
                       model, m, K);
  return table;
}

// log P_B (K^|B|) from log P_A (K^|A|), B subset A, summing out the positions of A \ B.
template <class S>
vector<S> log_marginalize(const vector<S>& log_p_A, index_set A, index_set B, index K) {
  detail::require(K >= 1, "K", "must be at least 1, got ", K);
  detail::require(B.subset_of(A), "B", B.to_string(), " is not a subset of A = ", A.to_string());
  const index size_A = detail::enumeration_size(K, A.size(), default_enumeration_budget, "A");
  detail::require(log_p_A.size() == size_A, "log_p_A", "expected K^|A| = ", size_A, " values, got ", log_p_A.size());
  return detail::marginalize_unchecked(log_p_A, A, B, K);
}

// log P_S from a table of prefix joints, max S <= table.n().
template <class S>
vector<S> log_fdd(const prefix_joints<S>& table, index_set positions) {
  detail::require(positions.max() <= table.n(), "positions", positions.to_string(), " reaches beyond n = ",
                  table.n(), " of the table");
  const int m = positions.max();
  return detail::marginalize_unchecked(table.log_joint[static_cast<std::size_t>(m)], index_set::first(m), positions,
                                       table.K);
}

// log P_S(x_S) for every x_S (K^|S| values, layout above); K^(max S) <= budget.
template <process_model M>
vector<scalar_of<M>> log_fdd(const M& model, index_set positions, std::uint64_t budget = default_enumeration_budget) {
  detail::enumeration_size(detail::vocab_of(model), positions.max(), budget, "positions");
  return log_fdd(enumerate_prefixes(model, positions.max(), budget), positions);
}

// P_S(x_S) = exp(log P_S(x_S)).
template <process_model M>
vector<scalar_of<M>> fdd(const M& model, index_set positions, std::uint64_t budget = default_enumeration_budget) {
  using std::exp;
  return log_fdd(model, positions, budget).unaryExpr([](const scalar_of<M>& v) { return exp(v); });
}

}  // namespace suptok
