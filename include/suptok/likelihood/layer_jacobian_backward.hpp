// suptok/likelihood/layer_jacobian_backward.hpp: the backward of a layer's Jacobian blocks
// (likelihood/layer_jacobian.hpp), reference path.
//
// Given dJ_t = dL/dJ_t (p, p), t = 0..N-1, returns the gradient of L = sum_t <dJ_t, J_t>_F with
// respect to U (N, p) and every weight and bias of the layer. Per query head h (group g), each
// line differentiates the forward line quoted beside it (D_s = u_s - ubar, G_s = g_ts^T,
// Gc = G - 1 gbar^T, RW = R_t W_Q / tau):
//   J_t -= V M_t,  V = W_O W_V           ->  dV += -dJ_t M_t^T,  dM = -V^T dJ_t
//   M_t = D^T diag(a_t) Gc               ->  da_ts += (D dM)_s . Gc_s,  dD = diag(a_t) Gc dM^T,  dGc = diag(a_t) D dM
//   Gc = G - 1 (a_t^T G)                 ->  dG = dGc - a_t colsum(dGc)^T,  da_ts -= G_s . colsum(dGc)
//   G = K~ RW                            ->  dK~ += dG RW^T,  dW_Q += R_t^T K~^T dG / tau
//   M_t += a_tt D_t c^T + a_tt I         ->  da_tt += D_t . (dM c) + tr dM,  dD_t += a_tt dM c,  dc = a_tt dM^T D_t
//     (inclusive, c = W_K^T q'_t / tau)      dW_K += q'_t dc^T / tau,  dq'_t += W_K dc / tau
//   D_s = u_s - ubar, ubar = a_t^T U     ->  dU += dD,  dubar = -colsum(dD),  da_ts += u_s . dubar,  dU_s += a_ts dubar
//   a, K~, q' (softmax, rotations, affine maps)  ->  detail::layer_weights_backward (attention/layer_attention.hpp)
//   V = W_O W_V                          ->  dW_O += dV W_V^T,  dW_V += W_O^T dV
// b_V and b_O do not enter J_t: their gradients are zero. Memory: one head's (N, N) weights and
// their gradient, the (p, p) blocks of one query at a time; time O(N^2 p (p + d_k)) per head.
#pragma once

#include <string>
#include <vector>

#include "jacobian_backward.hpp"
#include "layer_jacobian.hpp"

namespace suptok {

namespace detail {

// The backward of layer_query_moment at query t: adds to dU, dW (W_Q[h], W_K[g]), da (row t),
// dK (rows of the rotated keys) and dQp (row t of the unrotated queries).
template <class S>
void layer_query_moment_backward(matrix<S>& dU, layer<S>& dW, matrix<S>& da, matrix<S>& dK, matrix<S>& dQp,
                                 const matrix<S>& dM, index t, const Eigen::Ref<const matrix<S>>& U,
                                 const layer<S>& layer, std::size_t h, const layer_head_pass<S>& pass, mask m) {
  const index end = past_end(t, m);
  if (end == 0) return;
  const std::size_t g = layer.group_of(h);
  const auto a_t = pass.a.row(t).head(end);                                                      // (end)
  const vector<S> angle = rope_angles<S>(t, layer.W_Q[h].rows(), layer.rope_theta);
  const matrix<S> RW = rotate_columns<S>(layer.W_Q[h], angle) / pass.tau;                            // (d_k, p)
  const matrix<S> G = pass.K.topRows(end) * RW;                                                  // (end, p)
  const matrix<S> D = U.topRows(end).rowwise() - a_t * U.topRows(end);                           // (end, p)
  const matrix<S> Gc = G.rowwise() - a_t * G;                                                    // (end, p)
  // M = D^T diag(a_t) Gc
  const matrix<S> DdM = D * dM;                                                                  // (end, p)
  da.row(t).head(end) += DdM.cwiseProduct(Gc).rowwise().sum().transpose();
  matrix<S> dD = a_t.transpose().asDiagonal() * (Gc * dM.transpose());                          // (end, p)
  const matrix<S> dGc = a_t.transpose().asDiagonal() * DdM;                                     // (end, p)
  // Gc = G - 1 (a_t^T G)
  const vector<S> dGc_sum = dGc.colwise().sum().transpose();                                     // (p)
  const matrix<S> dG = dGc - a_t.transpose() * dGc_sum.transpose();                              // (end, p)
  da.row(t).head(end) -= (G * dGc_sum).transpose();
  // G = K~ RW
  dK.topRows(end).noalias() += dG * RW.transpose();                                              // (end, d_k)
  matrix<S> dRW = pass.K.topRows(end).transpose() * dG / pass.tau;                               // (d_k, p)
  if (angle.size() > 0)
    for (index c = 0; c < dRW.cols(); ++c) rotate<S>(dRW.col(c), angle, -1);                    // R_t^T dRW
  dW.W_Q[h] += dRW;
  if (m == mask::inclusive) {
    // M += a_tt D_t c^T + a_tt I,  c = W_K^T q'_t / tau
    const S a_tt = pass.a(t, t);
    const vector<S> c = layer.W_K[g].transpose() * pass.Qp.row(t).transpose() / pass.tau;         // (p)
    const vector<S> dMc = dM * c;                                                                // (p)
    da(t, t) += D.row(t).dot(dMc) + dM.trace();
    dD.row(t) += a_tt * dMc.transpose();
    const vector<S> dc = a_tt * (dM.transpose() * D.row(t).transpose());                        // (p)
    dW.W_K[g].noalias() += pass.Qp.row(t).transpose() * dc.transpose() / pass.tau;              // (d_k, p)
    dQp.row(t).noalias() += (layer.W_K[g] * dc / pass.tau).transpose();                             // (d_k)
  }
  // D_s = u_s - ubar,  ubar = a_t^T U
  dU.topRows(end) += dD;
  const vector<S> dubar = -dD.colwise().sum().transpose();                                       // (p)
  da.row(t).head(end) += (U.topRows(end) * dubar).transpose();
  dU.topRows(end).noalias() += a_t.transpose() * dubar.transpose();                             // (end, p)
}

template <class S>
layer_gradients<S> jacobian_blocks_backward_unchecked(const std::vector<matrix<S>>& dJ,
                                                      const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                                                      const attention_params& params) {
  const index N = U.rows(), p = U.cols();
  layer_gradients<S> grad{matrix<S>::Zero(N, p), zero_like(layer)};
  layer_head_pass<S> pass;
  for (std::size_t h = 0; h < layer.W_Q.size(); ++h) {
    const std::size_t g = layer.group_of(h);
    layer_head_forward<S>(pass, U, layer, h, params);
    const matrix<S> V = layer.W_O[h] * layer.W_V[g];  // (p, p)
    matrix<S> dV = matrix<S>::Zero(p, p), da = matrix<S>::Zero(N, N);
    matrix<S> dK = matrix<S>::Zero(N, pass.K.cols()), dQp = matrix<S>::Zero(N, pass.K.cols());
    for (index t = 0; t < N; ++t) {
      const matrix<S>& dJ_t = dJ[static_cast<std::size_t>(t)];
      // J_t -= V M_t
      const matrix<S> M = layer_query_moment<S>(t, U, layer, h, pass, params.causal_mask);  // (p, p)
      dV.noalias() -= dJ_t * M.transpose();
      const matrix<S> dM = -(V.transpose() * dJ_t);  // (p, p)
      layer_query_moment_backward<S>(grad.dU, grad.dW, da, dK, dQp, dM, t, U, layer, h, pass, params.causal_mask);
    }
    layer_weights_backward<S>(grad.dU, grad.dW, da, U, layer, h, pass, dK, dQp);
    // V = W_O W_V
    grad.dW.W_O[h].noalias() += dV * layer.W_V[g].transpose();  // (p, d_v)
    grad.dW.W_V[g].noalias() += layer.W_O[h].transpose() * dV;  // (d_v, p)
  }
  return grad;
}

}  // namespace detail

// Gradient of L = sum_t <dJ[t], J_t>_F with respect to U and every weight and bias of the layer.
template <class S>
layer_gradients<S> jacobian_blocks_backward(const std::vector<matrix<S>>& dJ, const_ref<S> U, const layer<S>& layer,
                                            const attention_params& params = {}) {
  detail::validate_layer_attention<S>(U, layer, params);
  detail::validate_block_gradients<S>(dJ, U.rows(), U.cols(), "dJ");
  return detail::jacobian_blocks_backward_unchecked<S>(dJ, U, layer, params);
}

}  // namespace suptok
