// suptok/process/markov_chain.hpp: a first-order Markov chain as a causal_model (docs/math.md section 5).
//
//   p(x_1) = pi(x_1),   p(x_t | x_<t) = T(x_{t-1}, x_t)        pi (K), T (K, K) row-stochastic
// Its finite-dimensional distributions have the closed form (S = {s_1 < ... < s_k})
//   P_S(x_S) = (pi^T T^{s_1 - 1})(x_{s_1}) prod_j T^{s_{j+1} - s_j}(x_{s_j}, x_{s_{j+1}}),
// which the tests use as the reference for the exact enumeration.
// Validation: pi and T finite, non-negative, each of pi and the rows of T summing to 1 within
// 16 K eps (eps of S), so that the chain is a process to rounding level. Zero entries are allowed
// (log 0 = -inf). random(K, seed) draws entries uniform in [0.1, 1) in double from
// std::mt19937_64(seed), casts them to S and normalises in S: every S sees the same chain.
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>

#include "model.hpp"

namespace suptok {

template <class S>
class markov_chain {
 public:
  using scalar_type = S;

  markov_chain(vector<S> pi, matrix<S> T) : pi_(std::move(pi)), T_(std::move(T)) {
    using std::log;
    const index K = pi_.size();
    detail::require(K >= 1, "pi", "at least one token is required");
    detail::require(T_.rows() == K && T_.cols() == K, "T", "expected ", K, " x ", K, " (K from pi), got ", T_.rows(),
                    " x ", T_.cols());
    require_distribution(pi_.transpose(), "pi");
    for (index i = 0; i < K; ++i) require_distribution(T_.row(i), "T.row(" + std::to_string(i) + ")");
    log_pi_ = pi_.unaryExpr([](const S& v) { return log(v); });
    log_T_ = T_.unaryExpr([](const S& v) { return log(v); });
  }

  // A chain with entries uniform in [0.1, 1) before normalisation, the same for every S.
  static markov_chain random(index K, std::uint64_t seed) {
    detail::require(K >= 1, "K", "at least one token is required, got ", K);
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<double> u(0.1, 1.0);
    matrix<S> W(K + 1, K);  // row 0: pi, rows 1..K: T
    for (index r = 0; r <= K; ++r) {
      for (index c = 0; c < K; ++c) W(r, c) = S(u(gen));
      W.row(r) /= W.row(r).sum();
    }
    return markov_chain(W.row(0).transpose(), W.bottomRows(K));
  }

  index vocab_size() const { return pi_.size(); }
  const vector<S>& initial() const { return pi_; }     // (K)
  const matrix<S>& transition() const { return T_; }  // (K, K)

  // out (K) = log pi for an empty prefix, else log T(x_m, .).
  void next_log_probs(vector<S>& out, std::span<const token> prefix) const {
    detail::validate_tokens(prefix, vocab_size(), "prefix");
    if (prefix.empty())
      out = log_pi_;
    else
      out = log_T_.row(prefix.back()).transpose();
  }

 private:
  template <class Row>
  void require_distribution(const Row& row, const std::string& argument) const {
    using std::abs;
    S sum = S(0);
    for (index i = 0; i < row.size(); ++i) {
      detail::require(is_finite(row(i)) && !(row(i) < S(0)), argument, "entry ", i, " is ", to_double(row(i)),
                      ", expected a finite probability");
      sum += row(i);
    }
    const S tolerance = S(16) * S(row.size()) * std::numeric_limits<S>::epsilon();
    detail::require(abs(sum - S(1)) <= tolerance, argument, "sums to ", to_double(sum), ", expected 1 within ",
                    to_double(tolerance));
  }

  vector<S> pi_;      // (K)
  matrix<S> T_;       // (K, K)
  vector<S> log_pi_;  // (K)
  matrix<S> log_T_;   // (K, K)
};

}  // namespace suptok
