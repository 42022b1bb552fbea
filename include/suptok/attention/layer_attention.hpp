// suptok/attention/layer_attention.hpp: reference forward and backward of one attention layer
// (attention/layer.hpp: grouped-query heads, biases, rotary embeddings).
//
// Forward, per query head h of group g (shapes (N, d_k), (N, d_v), (N, N)):
//   Q' = U W_Q[h]^T + 1 b_Q[h]^T     Q = rows R_t q'_t        K' = U W_K[g]^T + 1 b_K[g]^T    K = rows R_s k'_s
//   Vv = U W_V[g]^T + 1 b_V[g]^T     a = masked softmax(Q K^T / tau)    O = a Vv
//   mu = sum_h O^h W_O[h]^T + 1 b_O^T                                                         (N, p)
// Backward, each line differentiating the forward line it follows:
//   mu += O W_O^T + b_O       ->  dO = dMu W_O,  dW_O += dMu^T O,  db_O += colsum(dMu)
//   O = a Vv                  ->  da = dO Vv^T,  dVv = a^T dO
//   Vv = U W_V^T + b_V        ->  dW_V += dVv^T U,  db_V += colsum(dVv),  dU += dVv W_V
//   a = softmax(Q K^T / tau)  ->  dl = a .* (da - rowsum(a .* da)),  dQ = dl K / tau,  dK = dl^T Q / tau
//   Q = R Q',  K = R K'       ->  dQ' = rows R_t^T dq_t,  dK' = rows R_s^T dk_s
//   Q' = U W_Q^T + b_Q        ->  dW_Q += dQ'^T U,  db_Q += colsum(dQ'),  dU += dQ' W_Q   (same for K')
// Gradients of shared key/value weights accumulate over the query heads of their group. The
// temperature and the rotary base are fixed hyper-parameters and get no gradient.
#pragma once

#include <vector>

#include "backward.hpp"
#include "layer.hpp"

namespace suptok {

template <class S>
struct layer_gradients {
  matrix<S> dU;  // (N, p)
  layer<S> dW;   // same shapes as the layer, biases included where the layer has them
};

namespace detail {

// One query head's pass: head_pass (rotated Q and K) plus the unrotated queries q'_t.
template <class S>
struct layer_head_pass : head_pass<S> {
  matrix<S> Qp;  // (N, d_k)  q'_t = W_Q u_t + b_Q
};

template <class S>
S layer_temperature(const layer<S>& layer, std::size_t h, const attention_params& params) {
  using std::sqrt;
  return params.temperature == 0 ? sqrt(S(layer.W_Q[h].rows())) : S(params.temperature);
}

// Y = X W^T + 1 b^T (N, rows of W); b may be absent (empty list).
template <class S>
matrix<S> affine_rows(const Eigen::Ref<const matrix<S>>& X, const matrix<S>& W, const std::vector<vector<S>>& b,
                      std::size_t k) {
  matrix<S> Y = X * W.transpose();
  if (!b.empty()) Y.rowwise() += b[k].transpose();
  return Y;
}

template <class S>
void layer_head_forward(layer_head_pass<S>& pass, const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                        std::size_t h, const attention_params& params) {
  const std::size_t g = layer.group_of(h);
  pass.tau = layer_temperature(layer, h, params);
  pass.Qp = affine_rows<S>(U, layer.W_Q[h], layer.b_Q, h);  // (N, d_k)
  pass.Q = pass.Qp;
  rotate_rows(pass.Q, layer.rope_theta);
  pass.K = affine_rows<S>(U, layer.W_K[g], layer.b_K, g);  // (N, d_k)
  rotate_rows(pass.K, layer.rope_theta);
  pass.Vv = affine_rows<S>(U, layer.W_V[g], layer.b_V, g);  // (N, d_v)
  masked_softmax<S>(pass, params.causal_mask);
  pass.O.noalias() = pass.a * pass.Vv;  // (N, d_v)
}

template <class S>
void layer_forward_unchecked(attention_output<S>& out, const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                             const attention_params& params, bool keep_weights) {
  const std::size_t H = layer.W_Q.size();
  matrix<S> mu = matrix<S>::Zero(U.rows(), U.cols());  // out.mu may alias U: written last
  out.lse.resize(H);
  out.head_outputs.resize(H);
  out.weights.resize(keep_weights ? H : 0);
  layer_head_pass<S> pass;
  for (std::size_t h = 0; h < H; ++h) {
    layer_head_forward<S>(pass, U, layer, h, params);
    mu.noalias() += pass.O * layer.W_O[h].transpose();  // (N, d_v) (d_v, p)
    out.lse[h] = pass.lse;
    out.head_outputs[h] = pass.O;
    if (keep_weights) out.weights[h] = pass.a;
  }
  if (layer.b_O.size() > 0) mu.rowwise() += layer.b_O.transpose();
  out.mu = std::move(mu);
}

// dW += dY^T X and db += colsum(dY) for Y = X W^T + 1 b^T (b only where the layer has biases).
template <class S>
void affine_rows_backward(matrix<S>& dW, std::vector<vector<S>>& db, std::size_t k, const matrix<S>& dY,
                          const Eigen::Ref<const matrix<S>>& X) {
  dW.noalias() += dY.transpose() * X;
  if (!db.empty()) db[k] += dY.colwise().sum().transpose();
}

// From da = dL/da (N, N) of query head h, plus any gradients that reach the rotated keys k~_s
// (dK_more, (N, d_k)) or the unrotated queries q'_t (dQp_more) by other paths (empty: none): adds
// the gradients of W_Q[h], b_Q[h], W_K[g], b_K[g] to dW and dQ' W_Q + dK' W_K to dU (N, p).
template <class S>
void layer_weights_backward(matrix<S>& dU, layer<S>& dW, const matrix<S>& da, const Eigen::Ref<const matrix<S>>& U,
                            const layer<S>& layer, std::size_t h, const layer_head_pass<S>& pass,
                            const matrix<S>& dK_more = {}, const matrix<S>& dQp_more = {}) {
  const std::size_t g = layer.group_of(h);
  const vector<S> row_dot = pass.a.cwiseProduct(da).rowwise().sum();  // (N): sum_r a_tr da_tr
  const matrix<S> dl = pass.a.cwiseProduct(da.colwise() - row_dot);   // (N, N)
  matrix<S> dQ = (dl * pass.K) / pass.tau;                            // (N, d_k)
  matrix<S> dK = (dl.transpose() * pass.Q) / pass.tau;                // (N, d_k)
  if (dK_more.size() > 0) dK += dK_more;
  rotate_rows(dQ, layer.rope_theta, -1);  // dQ'
  rotate_rows(dK, layer.rope_theta, -1);  // dK'
  if (dQp_more.size() > 0) dQ += dQp_more;
  affine_rows_backward<S>(dW.W_Q[h], dW.b_Q, h, dQ, U);
  affine_rows_backward<S>(dW.W_K[g], dW.b_K, g, dK, U);
  dU.noalias() += dQ * layer.W_Q[h] + dK * layer.W_K[g];  // (N, p)
}

template <class S>
layer_gradients<S> layer_backward_unchecked(const Eigen::Ref<const matrix<S>>& dMu,
                                            const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                                            const attention_params& params) {
  layer_gradients<S> g{matrix<S>::Zero(U.rows(), U.cols()), zero_like(layer)};
  layer_head_pass<S> pass;
  for (std::size_t h = 0; h < layer.W_Q.size(); ++h) {
    const std::size_t kv = layer.group_of(h);
    layer_head_forward<S>(pass, U, layer, h, params);
    const matrix<S> dO = dMu * layer.W_O[h];               // (N, d_v)
    g.dW.W_O[h].noalias() += dMu.transpose() * pass.O;  // (p, d_v)
    const matrix<S> dVv = pass.a.transpose() * dO;      // (N, d_v)
    const matrix<S> da = dO * pass.Vv.transpose();      // (N, N)
    affine_rows_backward<S>(g.dW.W_V[kv], g.dW.b_V, kv, dVv, U);
    g.dU.noalias() += dVv * layer.W_V[kv];  // (N, p)
    layer_weights_backward<S>(g.dU, g.dW, da, U, layer, h, pass);
  }
  if (g.dW.b_O.size() > 0) g.dW.b_O = dMu.colwise().sum().transpose();
  return g;
}

}  // namespace detail

// mu (N, p) and the per-head log-sum-exp (and weights when asked) of one layer on U (N, p).
template <class S>
attention_output<S> attention_forward(const_ref<S> U, const layer<S>& layer, const attention_params& params = {},
                                      bool keep_weights = false) {
  detail::validate_layer_attention<S>(U, layer, params);
  attention_output<S> out;
  detail::layer_forward_unchecked<S>(out, U, layer, params, keep_weights);
  return out;
}

// dL/dU and dL/d(every weight and bias of the layer) from dMu = dL/dmu (N, p).
template <class S>
layer_gradients<S> attention_backward(const_ref<S> dMu, const_ref<S> U, const layer<S>& layer,
                                      const attention_params& params = {}) {
  detail::validate_layer_attention<S>(U, layer, params);
  detail::validate_upstream<S>(dMu, U, "dMu");
  return detail::layer_backward_unchecked<S>(dMu, U, layer, params);
}

}  // namespace suptok
