// suptok/attention/forward.hpp: causal multi-head attention, reference forward (docs/math.md section 1).
//
// For each head h, with Q = U W_Q^T (N, d_k), K = U W_K^T (N, d_k), Vv = U W_V^T (N, d_v):
//   l_ts   = Q_t . K_s / tau                              s in P(t)
//   lse_t  = log sum_{s in P(t)} exp(l_ts)                (-inf for an empty past)
//   a_ts   = exp(l_ts - lse_t)                            (0 outside P(t))
//   O_t    = sum_s a_ts Vv_s                              (N, d_v)
//   mu_t   = sum_h W_O^h O^h_t = sum_h V_h sum_s a^h_ts u_s     (N, p)
// The output keeps lse and O of every head: the backward can take them instead of recomputing the
// forward (backward.hpp, simd/attention_backward.hpp).
// The softmax subtracts the row maximum, so logits of any finite magnitude give finite weights;
// an empty past (t = 0 under the strict mask) gives a_t = 0 and mu_t = 0, never NaN.
// The reference path materialises the (N, N) weights of each head: O(N^2) memory, for clarity.
#pragma once

#include <limits>
#include <span>
#include <vector>

#include "../core/backend.hpp"
#include "params.hpp"

namespace suptok {

template <class S>
struct attention_output {
  matrix<S> mu;                    // (N, p)
  std::vector<vector<S>> lse;      // H x (N): per-row log-sum-exp of the logits, -inf for an empty past
  std::vector<matrix<S>> head_outputs;  // H x (N, d_v): O^h = a^h Vv^h, before W_O
  std::vector<matrix<S>> weights;  // H x (N, N): a_ts, only when requested (else empty)
};

namespace detail {

// The intermediates of one head on one sequence, shared by the forward and the backward.
template <class S>
struct head_pass {
  matrix<S> Q;   // (N, d_k)
  matrix<S> K;   // (N, d_k)
  matrix<S> Vv;  // (N, d_v)
  matrix<S> a;   // (N, N) attention weights, zero outside P(t)
  vector<S> lse; // (N)
  matrix<S> O;   // (N, d_v) = a Vv
  S tau;
};

// Row-stable softmax of the masked logits Q K^T / tau into pass.a and pass.lse.
template <class S>
void masked_softmax(head_pass<S>& pass, mask m) {
  using std::exp;
  using std::log;
  const index N = pass.Q.rows();
  pass.a.setZero(N, N);
  pass.lse.resize(N);
  for (index t = 0; t < N; ++t) {
    const index end = past_end(t, m);
    if (end == 0) {
      pass.lse(t) = S(-std::numeric_limits<double>::infinity());
      continue;
    }
    for (index s = 0; s < end; ++s) pass.a(t, s) = pass.Q.row(t).dot(pass.K.row(s)) / pass.tau;  // l_ts
    S row_max = pass.a(t, 0);
    for (index s = 1; s < end; ++s) row_max = max_of(row_max, pass.a(t, s));
    S z = S(0);
    for (index s = 0; s < end; ++s) {
      pass.a(t, s) = exp(pass.a(t, s) - row_max);
      z += pass.a(t, s);
    }
    for (index s = 0; s < end; ++s) pass.a(t, s) /= z;
    pass.lse(t) = row_max + log(z);
  }
}

template <class S>
void head_forward(head_pass<S>& pass, const Eigen::Ref<const matrix<S>>& U, const head<S>& w,
                  const attention_params& params) {
  pass.tau = temperature_of(w, params);
  pass.Q.noalias() = U * w.W_Q.transpose();
  pass.K.noalias() = U * w.W_K.transpose();
  pass.Vv.noalias() = U * w.W_V.transpose();
  masked_softmax(pass, params.causal_mask);
  pass.O.noalias() = pass.a * pass.Vv;
}

// The forward on validated arguments.
template <class S>
void attention_forward_unchecked(attention_output<S>& out, const Eigen::Ref<const matrix<S>>& U, const heads<S>& heads,
                                 const attention_params& params, bool keep_weights) {
  const std::size_t H = heads.size();
  matrix<S> mu = matrix<S>::Zero(U.rows(), U.cols());  // out.mu may alias U: written last
  out.lse.resize(H);
  out.head_outputs.resize(H);
  out.weights.resize(keep_weights ? H : 0);
  head_pass<S> pass;
  for (std::size_t h = 0; h < H; ++h) {
    head_forward<S>(pass, U, heads[h], params);
    mu.noalias() += pass.O * heads[h].W_O.transpose();  // (N, d_v) (d_v, p)
    out.lse[h] = pass.lse;
    out.head_outputs[h] = pass.O;
    if (keep_weights) out.weights[h] = pass.a;
  }
  out.mu = std::move(mu);
}

}  // namespace detail

// Reference forward into `out` (resized as needed). keep_weights fills out.weights.
template <class S>
void attention_forward(cpu, attention_output<S>& out, const_ref<S> U, const heads<S>& heads,
                       const attention_params& params = {}, bool keep_weights = false) {
  detail::validate_attention<S>(U, heads, params);
  detail::attention_forward_unchecked<S>(out, U, heads, params, keep_weights);
}

template <class S>
attention_output<S> attention_forward(const_ref<S> U, const heads<S>& heads, const attention_params& params = {},
                                      bool keep_weights = false) {
  attention_output<S> out;
  attention_forward<S>(cpu{}, out, U, heads, params, keep_weights);
  return out;
}

// A batch of sequences (they may differ in length N, not in p): one output per sequence.
// All sequences are validated before any is computed.
template <class S>
std::vector<attention_output<S>> attention_forward_batch(std::type_identity_t<std::span<const matrix<S>>> Us,
                                                         const heads<S>& heads, const attention_params& params = {},
                                                         bool keep_weights = false) {
  detail::validate_batch<S>(Us, heads, params);
  std::vector<attention_output<S>> outs(Us.size());
  for (std::size_t b = 0; b < Us.size(); ++b)
    detail::attention_forward_unchecked<S>(outs[b], Us[b], heads, params, keep_weights);
  return outs;
}

}  // namespace suptok
