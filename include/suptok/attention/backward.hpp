// suptok/attention/backward.hpp: reference backward of causal multi-head attention.
//
// Given dMu = dL/dmu (N, p), returns dL/dU (N, p) and dL/dW for every head. Per head, each line
// differentiates the forward line quoted beside it (see forward.hpp):
//   mu  += O W_O^T          ->  dO = dMu W_O (N, d_v),      dW_O = dMu^T O (p, d_v)
//   O    = a Vv             ->  da = dO Vv^T (N, N),         dVv = a^T dO (N, d_v)
//   a_ts = softmax_s(l_ts)  ->  dl_ts = a_ts (da_ts - sum_r a_tr da_tr)   (0 outside P(t))
//   l    = Q K^T / tau      ->  dQ = dl K / tau,             dK = dl^T Q / tau
//   Q, K, Vv = U W^T        ->  dW_Q = dQ^T U, dW_K = dK^T U, dW_V = dVv^T U,
//                               dU  += dQ W_Q + dK W_K + dVv W_V
// The temperature is a fixed hyper-parameter and gets no gradient.
#pragma once

#include <span>
#include <vector>

#include "forward.hpp"

namespace suptok {

template <class S>
struct attention_gradients {
  matrix<S> dU;  // (N, p); for a batch, see attention_batch_gradients
  heads<S> dW;   // same shapes as the heads
};

template <class S>
struct attention_batch_gradients {
  std::vector<matrix<S>> dU;  // one (N_b, p) per sequence
  heads<S> dW;                // summed over the batch
};

namespace detail {

// Validates an upstream gradient: same shape as its sequence, finite.
template <class S>
void validate_upstream(const Eigen::Ref<const matrix<S>>& dMu, const Eigen::Ref<const matrix<S>>& U,
                       const std::string& argument) {
  require_shape(dMu, U.rows(), U.cols(), argument);
  require_finite(dMu, argument);
}

// Validates a batch backward: the batch as validate_batch, then one upstream gradient per sequence.
template <class S>
void validate_backward_batch(std::span<const matrix<S>> dMus, std::span<const matrix<S>> Us, const heads<S>& heads,
                             const attention_params& params) {
  validate_batch<S>(Us, heads, params);
  require(dMus.size() == Us.size(), "dMus", "expected ", Us.size(), " gradients, got ", dMus.size());
  for (std::size_t b = 0; b < Us.size(); ++b) validate_upstream<S>(dMus[b], Us[b], "dMus[" + std::to_string(b) + "]");
}

// Validates the forward output handed to a backward: for every head, lse (N) is -inf exactly where
// the past P(t) is empty and finite elsewhere, and head_outputs (N, d_v) is finite. It cannot tell
// whether the output came from the same U and weights: that is the caller's contract.
template <class S>
void validate_saved_forward(const attention_output<S>& forward, const Eigen::Ref<const matrix<S>>& U,
                            const heads<S>& heads, mask m) {
  const std::size_t H = heads.size();
  require(forward.lse.size() == H, "forward.lse", "expected ", H, " heads, got ", forward.lse.size());
  require(forward.head_outputs.size() == H, "forward.head_outputs", "expected ", H, " heads, got ",
          forward.head_outputs.size());
  for (std::size_t h = 0; h < H; ++h) {
    const std::string lse = "forward.lse[" + std::to_string(h) + "]";
    require(forward.lse[h].size() == U.rows(), lse, "expected ", U.rows(), " entries, got ", forward.lse[h].size());
    for (index t = 0; t < U.rows(); ++t) {
      const bool empty_past = past_end(t, m) == 0;
      const S& l = forward.lse[h](t);
      require(empty_past ? !is_finite(l) && l < S(0) : is_finite(l), lse, "entry ", t, " is ", l,
              empty_past ? "; expected -inf (empty past)" : "; expected a finite value");
    }
    const std::string O = "forward.head_outputs[" + std::to_string(h) + "]";
    require_shape(forward.head_outputs[h], U.rows(), heads[h].d_v(), O);
    require_finite(forward.head_outputs[h], O);
  }
}

template <class S>
heads<S> zero_like(const heads<S>& heads) {
  suptok::heads<S> z(heads.size());
  for (std::size_t h = 0; h < heads.size(); ++h) {
    z[h].W_Q.setZero(heads[h].W_Q.rows(), heads[h].W_Q.cols());
    z[h].W_K.setZero(heads[h].W_K.rows(), heads[h].W_K.cols());
    z[h].W_V.setZero(heads[h].W_V.rows(), heads[h].W_V.cols());
    z[h].W_O.setZero(heads[h].W_O.rows(), heads[h].W_O.cols());
  }
  return z;
}

// The part of one head's backward that starts at the weights, shared with the Jacobian-block
// backward (likelihood/jacobian_backward.hpp): given da = dL/da (N, N), adds dL/dW_Q, dL/dW_K to
// dW and dQ W_Q + dK W_K to dU (N, p).
template <class S>
void weights_backward(matrix<S>& dU, head<S>& dW, const matrix<S>& da, const Eigen::Ref<const matrix<S>>& U,
                      const head<S>& w, const head_pass<S>& pass) {
  const vector<S> row_dot = pass.a.cwiseProduct(da).rowwise().sum();  // (N): sum_r a_tr da_tr
  const matrix<S> dl = pass.a.cwiseProduct(da.colwise() - row_dot);   // (N, N)
  const matrix<S> dQ = (dl * pass.K) / pass.tau;                      // (N, d_k)
  const matrix<S> dK = (dl.transpose() * pass.Q) / pass.tau;          // (N, d_k)
  dW.W_Q.noalias() += dQ.transpose() * U;                             // (d_k, p)
  dW.W_K.noalias() += dK.transpose() * U;                             // (d_k, p)
  dU.noalias() += dQ * w.W_Q + dK * w.W_K;                            // (N, p)
}

// Accumulates the gradients of one sequence into dU (N, p) and dW (summed over calls).
template <class S>
void attention_backward_accumulate(matrix<S>& dU, heads<S>& dW, const Eigen::Ref<const matrix<S>>& dMu,
                                   const Eigen::Ref<const matrix<S>>& U, const heads<S>& heads,
                                   const attention_params& params) {
  matrix<S> dU_local = matrix<S>::Zero(U.rows(), U.cols());  // dU may alias dMu or U: written last
  head_pass<S> pass;
  for (std::size_t h = 0; h < heads.size(); ++h) {
    const head<S>& w = heads[h];
    head_forward<S>(pass, U, w, params);
    const matrix<S> dO = dMu * w.W_O;                          // (N, d_v)
    dW[h].W_O.noalias() += dMu.transpose() * pass.O;           // (p, d_v)
    const matrix<S> dVv = pass.a.transpose() * dO;             // (N, d_v)
    const matrix<S> da = dO * pass.Vv.transpose();             // (N, N)
    dW[h].W_V.noalias() += dVv.transpose() * U;                // (d_v, p)
    dU_local.noalias() += dVv * w.W_V;                         // (N, p)
    weights_backward<S>(dU_local, dW[h], da, U, w, pass);
  }
  dU = std::move(dU_local);
}

}  // namespace detail

template <class S>
void attention_backward(cpu, attention_gradients<S>& grads, const_ref<S> dMu, const_ref<S> U, const heads<S>& heads,
                        const attention_params& params = {}) {
  detail::validate_attention<S>(U, heads, params);
  detail::validate_upstream<S>(dMu, U, "dMu");
  grads.dW = detail::zero_like(heads);
  detail::attention_backward_accumulate<S>(grads.dU, grads.dW, dMu, U, heads, params);
}

// The backward given the forward's output for the same U, heads and params (`forward`: its lse and
// head_outputs, validated). The reference recomputes them; the simd path reuses them.
template <class S>
void attention_backward(cpu, attention_gradients<S>& grads, const_ref<S> dMu, const_ref<S> U, const heads<S>& heads,
                        const attention_output<S>& forward, const attention_params& params = {}) {
  detail::validate_attention<S>(U, heads, params);
  detail::validate_upstream<S>(dMu, U, "dMu");
  detail::validate_saved_forward<S>(forward, U, heads, params.causal_mask);
  grads.dW = detail::zero_like(heads);
  detail::attention_backward_accumulate<S>(grads.dU, grads.dW, dMu, U, heads, params);
}

template <class S>
attention_gradients<S> attention_backward(const_ref<S> dMu, const_ref<S> U, const heads<S>& heads,
                                          const attention_params& params = {}) {
  attention_gradients<S> grads;
  attention_backward<S>(cpu{}, grads, dMu, U, heads, params);
  return grads;
}

// Batch backward: dMus[b] is the upstream gradient of sequence b; weight gradients are summed.
template <class S>
attention_batch_gradients<S> attention_backward_batch(std::type_identity_t<std::span<const matrix<S>>> dMus,
                                                      std::type_identity_t<std::span<const matrix<S>>> Us,
                                                      const heads<S>& heads, const attention_params& params = {}) {
  detail::validate_backward_batch<S>(dMus, Us, heads, params);
  attention_batch_gradients<S> grads;
  grads.dU.resize(Us.size());
  grads.dW = detail::zero_like(heads);
  for (std::size_t b = 0; b < Us.size(); ++b)
    detail::attention_backward_accumulate<S>(grads.dU[b], grads.dW, dMus[b], Us[b], heads, params);
  return grads;
}

}  // namespace suptok
