// suptok/process/attention_lm.hpp: small attention language models over K tokens (docs/math.md
// sections 1 and 5), built from attention_forward.
//
// Input of length N = m + 1: a BOS token (id K) at position 0, then x_1..x_m. With E (K + 1, p)
// token embeddings, P (max_length + 1, p) learned position embeddings, L head stacks and the
// unembedding W_U (K, p):
//   h_t     = E(x_t) + P(t)                          (N, p)
//   h      <- h + mu(h)  for each layer              mu = multi-head attention, docs/math.md section 1
//   logit_t = W_U h_t                                (N, K): row t predicts x_{t+1}
//
//   transformer_lm    causal (inclusive mask): log p(x_{m+1} | x_1..x_m) = log_softmax(logit_m);
//                     a causal_model, hence a consistent process.
//   bidirectional_lm  the same network where every position attends to every position, so
//                     logit_{t-1} sees x_t..x_m. A joint_model: log_score(x) = sum_{t=1..m}
//                     log_softmax(logit_{t-1})[x_t], renormalised per length m by the library.
//                     Its family P_m is not consistent: the deliberate counterexample.
// The full (bidirectional) mask reuses attention_forward with the inclusive mask: without
// position encodings inside attention, mu_t depends on u_t and the multiset of its past only
// (docs/math.md section 5), so row t of full attention is the last row of the inclusive forward over
// the other rows followed by row t. This costs N forwards per layer: fine for N <= 65.
// Weights: lm_weights<S>::random(K, p, layers, heads, seed) draws them in double from
// std::mt19937_64(seed) (E, P ~ N(0, 1); W_Q, W_K, W_V ~ N(0, 1/p); W_O ~ N(0, 1/d_v);
// W_U ~ N(0, 1/4)), d_k = d_v = max(1, p / heads), and casts them to S: every S gets the same
// network. Temperatures are the default sqrt(d_k).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "../attention/forward.hpp"
#include "model.hpp"

namespace suptok {

template <class S>
struct lm_weights {
  static constexpr index max_length = 64;  // positions 1..64 after the BOS position 0

  matrix<S> E;                // (K + 1, p), row K is BOS
  matrix<S> P;                // (max_length + 1, p)
  std::vector<heads<S>> layers;
  matrix<S> W_U;              // (K, p)

  index vocab_size() const { return W_U.rows(); }
  index p() const { return W_U.cols(); }

  static lm_weights random(index K, index p, index n_layers, index n_heads, std::uint64_t seed) {
    detail::require(K >= 1, "K", "at least one token is required, got ", K);
    detail::require(p >= 1, "p", "must be positive, got ", p);
    detail::require(n_layers >= 1, "layers", "at least one layer is required, got ", n_layers);
    detail::require(n_heads >= 1, "heads", "at least one head is required, got ", n_heads);
    std::mt19937_64 gen(seed);
    const auto draw = [&gen](index rows, index cols, double sd) {
      std::normal_distribution<double> normal(0.0, sd);
      matrix<S> m(rows, cols);
      for (index r = 0; r < rows; ++r)
        for (index c = 0; c < cols; ++c) m(r, c) = S(normal(gen));
      return m;
    };
    const index d = p / n_heads > 0 ? p / n_heads : 1;
    const double s_in = 1.0 / std::sqrt(double(p)), s_out = 1.0 / std::sqrt(double(d));
    lm_weights w;
    w.E = draw(K + 1, p, 1.0);
    w.P = draw(max_length + 1, p, 1.0);
    w.layers.resize(static_cast<std::size_t>(n_layers));
    for (auto& heads : w.layers) {
      heads.resize(static_cast<std::size_t>(n_heads));
      for (auto& h : heads) {
        h.W_Q = draw(d, p, s_in);
        h.W_K = draw(d, p, s_in);
        h.W_V = draw(d, p, s_in);
        h.W_O = draw(p, d, s_out);
      }
    }
    w.W_U = draw(K, p, 0.5);
    return w;
  }
};

namespace detail {

template <class S>
void validate_lm_weights(const lm_weights<S>& w) {
  const index K = w.W_U.rows(), p = w.W_U.cols();
  require(K >= 1 && p >= 1, "weights.W_U", "expected K x p with K, p >= 1, got ", K, " x ", p);
  require_shape(w.E, K + 1, p, "weights.E");
  require_shape(w.P, lm_weights<S>::max_length + 1, p, "weights.P");
  require(!w.layers.empty(), "weights.layers", "at least one layer is required");
  require_finite(w.E, "weights.E");
  require_finite(w.P, "weights.P");
  require_finite(w.W_U, "weights.W_U");
  for (const auto& heads : w.layers) validate_heads(heads, p);
}

// Multi-head attention where every position is in every past: row t is the last row of the
// inclusive-mask forward over (h without row t, then row t).
template <class S>
matrix<S> full_attention_mu(const matrix<S>& h, const heads<S>& heads) {
  const index N = h.rows();
  const attention_params params{mask::inclusive, 0};
  matrix<S> mu(N, h.cols());  // (N, p)
  matrix<S> order(N, h.cols());  // (N, p)
  for (index t = 0; t < N; ++t) {
    order.topRows(t) = h.topRows(t);
    order.middleRows(t, N - 1 - t) = h.bottomRows(N - 1 - t);
    order.row(N - 1) = h.row(t);
    mu.row(t) = attention_forward<S>(order, heads, params).mu.row(N - 1);
  }
  return mu;
}

// logits (m + 1, K) of the network on [BOS, x_1..x_m]; x validated by the caller.
template <class S>
matrix<S> lm_logits(const lm_weights<S>& w, std::span<const token> x, bool bidirectional) {
  const index N = static_cast<index>(x.size()) + 1, K = w.vocab_size();
  matrix<S> h(N, w.p());  // (N, p)
  h.row(0) = w.E.row(K) + w.P.row(0);
  for (index t = 1; t < N; ++t) h.row(t) = w.E.row(x[t - 1]) + w.P.row(t);
  const attention_params causal{mask::inclusive, 0};
  for (const auto& heads : w.layers) {
    if (bidirectional)
      h += full_attention_mu(h, heads);
    else
      h += attention_forward<S>(h, heads, causal).mu;
  }
  return h * w.W_U.transpose();  // (N, K)
}

inline void validate_lm_input(std::span<const token> x, index K, index min_length, index max_length,
                              const std::string& argument) {
  const index m = static_cast<index>(x.size());
  require(m >= min_length && m <= max_length, argument, "length ", m, " outside ", min_length, "..", max_length);
  validate_tokens(x, K, argument);
}

}  // namespace detail

template <class S>
class transformer_lm {
 public:
  using scalar_type = S;

  explicit transformer_lm(lm_weights<S> weights) : w_(std::move(weights)) { detail::validate_lm_weights(w_); }
  transformer_lm(index K, index p, index n_layers, index n_heads, std::uint64_t seed)
      : transformer_lm(lm_weights<S>::random(K, p, n_layers, n_heads, seed)) {}

  index vocab_size() const { return w_.vocab_size(); }
  const lm_weights<S>& weights() const { return w_; }

  // out (K) = log p(x_{m+1} = . | x_1..x_m), prefix length m in 0..63.
  void next_log_probs(vector<S>& out, std::span<const token> prefix) const {
    detail::validate_lm_input(prefix, vocab_size(), 0, lm_weights<S>::max_length - 1, "prefix");
    const matrix<S> logits = detail::lm_logits(w_, prefix, false);  // (m + 1, K)
    out = detail::log_softmax<S>(logits.row(logits.rows() - 1).transpose());
  }

 private:
  lm_weights<S> w_;
};

template <class S>
class bidirectional_lm {
 public:
  using scalar_type = S;

  explicit bidirectional_lm(lm_weights<S> weights) : w_(std::move(weights)) { detail::validate_lm_weights(w_); }
  bidirectional_lm(index K, index p, index n_layers, index n_heads, std::uint64_t seed)
      : bidirectional_lm(lm_weights<S>::random(K, p, n_layers, n_heads, seed)) {}

  index vocab_size() const { return w_.vocab_size(); }
  const lm_weights<S>& weights() const { return w_; }

  // sum_t log_softmax(logit_{t-1})[x_t] with bidirectional attention, length m in 1..64.
  S log_score(std::span<const token> x) const {
    detail::validate_lm_input(x, vocab_size(), 1, lm_weights<S>::max_length, "x");
    const matrix<S> logits = detail::lm_logits(w_, x, true);  // (m + 1, K)
    S score = S(0);
    for (std::size_t t = 0; t < x.size(); ++t) {
      const vector<S> row = logits.row(static_cast<index>(t)).transpose();  // (K)
      score += row(x[t]) - detail::log_sum_exp(row);
    }
    return score;
  }

 private:
  lm_weights<S> w_;
};

}  // namespace suptok
