// suptok/process/model.hpp: what a token model is to the process view (docs/math.md section 5).
//
// Tokens are ints in 0..K-1; a sequence x_1..x_m is a std::span<const token> of length m
// (position t of docs/math.md is element t-1). A model comes in one of two kinds:
//
//   causal_model   m.next_log_probs(out, prefix): out (K) = log p(x_{m+1} = . | x_1..x_m) for a
//                  prefix of length m >= 0. The joint of the first m positions is the product
//                  of these conditionals, so the family of its P_S is consistent by construction.
//   joint_model    m.log_score(x): an unnormalised log-weight of a whole sequence x of length
//                  m >= 1. The model's distribution of length m is P_m(x) = exp(log_score(x)) / Z_m,
//                  Z_m = sum over all K^m sequences (computed by enumeration), and its P_S is the
//                  marginal of P_{max S}. Nothing ties P_m to P_{m+1}: such families may be
//                  inconsistent (bidirectional_lm is the shipped example).
//
// Both expose `using scalar_type = S;` and `index vocab_size() const` (K >= 1). Values may be
// -inf (probability zero); NaN and +inf are rejected with an error naming the model's function.
// log_sum_exp and log_softmax below are max-shifted, and return -inf (never NaN) when every
// input is -inf.
#pragma once

#include <concepts>
#include <limits>
#include <span>
#include <string>

#include "../core/error.hpp"
#include "../core/scalar_traits.hpp"
#include "../core/view.hpp"

namespace suptok {

using token = int;

template <class M>
concept token_model = requires(const M& m) {
  typename M::scalar_type;
  { m.vocab_size() } -> std::convertible_to<index>;
};

template <class M>
concept causal_model = token_model<M> && requires(const M& m, vector<typename M::scalar_type>& out,
                                                  std::span<const token> prefix) {
  m.next_log_probs(out, prefix);
};

template <class M>
concept joint_model = token_model<M> && requires(const M& m, std::span<const token> x) {
  { m.log_score(x) } -> std::convertible_to<typename M::scalar_type>;
};

template <class M>
concept process_model = causal_model<M> || joint_model<M>;

template <class M>
using scalar_of = typename M::scalar_type;

namespace detail {

template <class S>
S minus_infinity() {
  return S(-std::numeric_limits<double>::infinity());
}

// log sum_i exp(v_i) over any Eigen vector expression, max-shifted; -inf when all are -inf.
template <class Derived>
typename Derived::Scalar log_sum_exp(const Eigen::MatrixBase<Derived>& v) {
  using S = typename Derived::Scalar;
  using std::exp;
  using std::log;
  S top = minus_infinity<S>();
  for (index i = 0; i < v.size(); ++i) top = max_of(top, S(v(i)));
  if (!is_finite(top)) return top;
  S sum = S(0);
  for (index i = 0; i < v.size(); ++i) sum += exp(v(i) - top);
  return top + log(sum);
}

// logits (K) -> log softmax (K).
template <class S>
vector<S> log_softmax(const vector<S>& logits) {
  const S lse = log_sum_exp(logits);
  return (logits.array() - lse).matrix();
}

// Tokens in 0..K-1, with an error naming `argument`.
inline void validate_tokens(std::span<const token> x, index K, const std::string& argument) {
  for (std::size_t t = 0; t < x.size(); ++t)
    require(x[t] >= 0 && x[t] < K, argument, "token ", x[t], " at index ", t, " outside 0..", K - 1);
}

// A model's log-probability or log-score: -inf allowed, NaN and +inf rejected.
template <class S>
void require_log_value(const S& v, const std::string& argument) {
  require(is_finite(v) || v < S(0), argument, "returned NaN or +inf");
}

template <token_model M>
index vocab_of(const M& model) {
  const index K = model.vocab_size();
  require(K >= 1, "model.vocab_size()", "must be at least 1, got ", K);
  return K;
}

// model.next_log_probs with its output checked: K values, none NaN or +inf.
template <causal_model M>
void checked_next_log_probs(vector<scalar_of<M>>& out, const M& model, std::span<const token> prefix, index K) {
  model.next_log_probs(out, prefix);
  require(out.size() == K, "model.next_log_probs", "returned ", out.size(), " values, expected K = ", K);
  for (index i = 0; i < K; ++i) require_log_value(out(i), "model.next_log_probs");
}

template <joint_model M>
scalar_of<M> checked_log_score(const M& model, std::span<const token> x) {
  const scalar_of<M> v = model.log_score(x);
  require_log_value(v, "model.log_score");
  return v;
}

}  // namespace detail
}  // namespace suptok
