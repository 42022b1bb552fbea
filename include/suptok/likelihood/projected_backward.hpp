// suptok/likelihood/projected_backward.hpp: the backward of the projected form's blocks K_t
// (likelihood/projected.hpp), reference path.
//
// Given dK_t = dL/dK_t (n, n), t = 0..N-1, returns the gradient of L = sum_t <dK_t, K_t>_F with
// respect to U (N, p) and every weight and bias of the layer. Per query head h (group g, rows r of
// K_t) and query t, each line differentiates the forward line quoted beside it (Dv_s = v_s - vbar,
// Dk_s = k~_s - kbar, dB = the block (h, h') of dK_t, r'_t = KO_hh'^T q'_t):
//   K_t(h, h') = XR P_hh'               ->  dXR += dB P_hh'^T,  dP_hh' += XR^T dB
//     [inclusive: + a_tt VO_hh'            dVO_hh' += a_tt dB,  da_tt += <dB, VO_hh'> + Dv_t^T dB r'_t,
//      + a_tt Dv_t r'_t^T]                 dDv_t += a_tt dB r'_t,  dr' = a_tt dB^T Dv_t,
//                                          dq'_t += KO_hh' dr',  dKO_hh' += q'_t dr'^T
//   XR = X R_t                          ->  dX = dXR R_t^T
//   X = Dv^T diag(a_t) Dk               ->  dDv = diag(a_t) Dk dX^T,  dDk = diag(a_t) Dv dX,
//                                           da_ts += (Dv dX)_s . Dk_s
//   Dv = Vv - 1 (a_t^T Vv)  (Dk alike)  ->  dVv = dDv - a_t colsum(dDv)^T,  da_ts -= Vv_s . colsum(dDv)
//   a, k~, q' (softmax, rotations, affine maps)  ->  detail::layer_weights_backward (attention/layer_attention.hpp)
//   Vv = U W_V[g]^T + 1 b_V^T           ->  dW_V += dVv^T U,  dU += dVv W_V  (colsum(dVv) = 0: b_V gets 0)
//   P_hh' = W_Q[h] W_O[h'] / tau        ->  dW_Q[h] += dP W_O[h']^T / tau,  dW_O[h'] += W_Q[h]^T dP / tau
//   KO_hh' = W_K[g] W_O[h'] / tau,  VO_hh' = W_V[g] W_O[h']   (alike)
// b_O does not enter K_t. Memory: every query head's pass and its gradients (N, N), O(H N^2), plus
// the (d_k, d_v') products; time O(N^2 H d_v d_k + N n^2 max(d_k, d_v)).
#pragma once

#include <vector>

#include "layer_jacobian_backward.hpp"
#include "projected.hpp"

namespace suptok {

namespace detail {

// The gradients that reach one query head from the blocks of every query: its weights a (N, N),
// rotated keys k~ (N, d_k), unrotated queries q' (N, d_k) and values Vv (N, d_v).
template <class S>
struct projected_head_gradients {
  matrix<S> da, dK, dQp, dVv;
};

// The gradients of the per-layer products P, KO, VO (same shapes as projected_products).
template <class S>
struct projected_product_gradients {
  std::vector<std::vector<matrix<S>>> dP, dKO, dVO;
};

// dL/dX of a centred weighted covariance X = Dv^T diag(a) Dk (Dv = Vv - 1 a^T Vv, Dk alike) taken back
// to the uncentred rows Vv, K and to the weights a (all on the past rows [0, end)); dDv_extra is added
// to dL/dDv first.
template <class S>
void centred_covariance_backward(projected_head_gradients<S>& g, index t, const matrix<S>& dX, const matrix<S>& Dv,
                                 const matrix<S>& Dk, const layer_head_pass<S>& pass, const matrix<S>& dDv_extra) {
  const index end = Dv.rows();
  const auto a_t = pass.a.row(t).head(end);                                 // (end)
  const matrix<S> DvdX = Dv * dX;                                          // (end, d_k)
  g.da.row(t).head(end) += DvdX.cwiseProduct(Dk).rowwise().sum().transpose();
  matrix<S> dDv = a_t.transpose().asDiagonal() * (Dk * dX.transpose());   // (end, d_v)
  const matrix<S> dDk = a_t.transpose().asDiagonal() * DvdX;               // (end, d_k)
  if (dDv_extra.size() > 0) dDv += dDv_extra;
  // D = Y - 1 (a_t^T Y) for Y = Vv and Y = K~
  const auto uncentre = [&](const matrix<S>& dD, const Eigen::Ref<const matrix<S>>& Y, matrix<S>& dY) {
    const vector<S> col = dD.colwise().sum().transpose();
    dY.topRows(end) += dD - a_t.transpose() * col.transpose();
    g.da.row(t).head(end) -= (Y.topRows(end) * col).transpose();
  };
  uncentre(dDv, pass.Vv, g.dVv);
  uncentre(dDk, pass.K, g.dK);
}

template <class S>
layer_gradients<S> projected_blocks_backward_unchecked(const std::vector<matrix<S>>& dK,
                                                       const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                                                       const attention_params& params) {
  const index N = U.rows(), p = U.cols();
  const std::size_t H = layer.W_Q.size();
  const mask m = params.causal_mask;
  const bool inclusive = m == mask::inclusive;
  const projected_products<S> pp = projected_products_of(layer, params, p);
  const std::vector<layer_head_pass<S>> passes = layer_passes<S>(U, layer, params);
  std::vector<projected_head_gradients<S>> hg(H);
  projected_product_gradients<S> dpp;
  for (std::size_t h = 0; h < H; ++h) {
    const index d_k = passes[h].K.cols(), d_v = passes[h].Vv.cols();
    hg[h] = {matrix<S>::Zero(N, N), matrix<S>::Zero(N, d_k), matrix<S>::Zero(N, d_k), matrix<S>::Zero(N, d_v)};
    dpp.dP.emplace_back();
    dpp.dKO.emplace_back();
    dpp.dVO.emplace_back();
    for (std::size_t k = 0; k < H; ++k) {
      dpp.dP[h].push_back(matrix<S>::Zero(d_k, layer.W_O[k].cols()));
      if (!inclusive) continue;
      dpp.dKO[h].push_back(matrix<S>::Zero(d_k, layer.W_O[k].cols()));
      dpp.dVO[h].push_back(matrix<S>::Zero(d_v, layer.W_O[k].cols()));
    }
  }
  for (index t = 0; t < N; ++t) {
    const index end = past_end(t, m);
    if (end == 0) continue;  // K_t = 0 whatever the weights
    const matrix<S>& dK_t = dK[static_cast<std::size_t>(t)];
    for (std::size_t h = 0; h < H; ++h) {
      const layer_head_pass<S>& pass = passes[h];
      const index r0 = pp.offset[h], d_v = pp.offset[h + 1] - r0, d_k = pass.K.cols();
      const projected_head_moment<S> hm = projected_head_moment_at<S>(t, layer, pass, m);
      const S a_tt = inclusive ? pass.a(t, t) : S(0);
      matrix<S> dXR = matrix<S>::Zero(d_v, d_k), dDv_extra;
      if (inclusive) dDv_extra = matrix<S>::Zero(end, d_v);
      for (std::size_t k = 0; k < H; ++k) {
        const auto dB = dK_t.block(r0, pp.offset[k], d_v, pp.offset[k + 1] - pp.offset[k]);  // (d_v, d_v')
        dXR.noalias() += dB * pp.P[h][k].transpose();
        dpp.dP[h][k].noalias() += hm.XR.transpose() * dB;
        if (!inclusive) continue;
        const vector<S> r = pp.KO[h][k].transpose() * pass.Qp.row(t).transpose();  // (d_v')
        const vector<S> dBr = dB * r;                                                // (d_v)
        dpp.dVO[h][k] += a_tt * dB;
        hg[h].da(t, t) += dB.cwiseProduct(pp.VO[h][k]).sum() + hm.Dv.row(t).dot(dBr);
        dDv_extra.row(t) += a_tt * dBr.transpose();
        const vector<S> dr = a_tt * (dB.transpose() * hm.Dv.row(t).transpose());                        // (d_v')
        hg[h].dQp.row(t) += (pp.KO[h][k] * dr).transpose();
        dpp.dKO[h][k].noalias() += pass.Qp.row(t).transpose() * dr.transpose();
      }
      // XR = X R_t: rows of dX = rows of dXR rotated by R_t
      const vector<S> angle = rope_angles<S>(t, d_k, layer.rope_theta);
      if (angle.size() > 0)
        for (index i = 0; i < d_v; ++i) rotate<S>(dXR.row(i).transpose(), angle, 1);
      centred_covariance_backward<S>(hg[h], t, dXR, hm.Dv, hm.Dk, pass, dDv_extra);
    }
  }
  layer_gradients<S> grad{matrix<S>::Zero(N, p), zero_like(layer)};
  for (std::size_t h = 0; h < H; ++h) {
    const std::size_t g = layer.group_of(h);
    const layer_head_pass<S>& pass = passes[h];
    layer_weights_backward<S>(grad.dU, grad.dW, hg[h].da, U, layer, h, pass, hg[h].dK, hg[h].dQp);
    grad.dW.W_V[g].noalias() += hg[h].dVv.transpose() * U;  // b_V: colsum(dVv) = 0 up to rounding, left at 0
    grad.dU.noalias() += hg[h].dVv * layer.W_V[g];
    for (std::size_t k = 0; k < H; ++k) {
      grad.dW.W_Q[h].noalias() += dpp.dP[h][k] * layer.W_O[k].transpose() / pass.tau;
      grad.dW.W_O[k].noalias() += layer.W_Q[h].transpose() * dpp.dP[h][k] / pass.tau;
      if (!inclusive) continue;
      grad.dW.W_K[g].noalias() += dpp.dKO[h][k] * layer.W_O[k].transpose() / pass.tau;
      grad.dW.W_O[k].noalias() += layer.W_K[g].transpose() * dpp.dKO[h][k] / pass.tau;
      grad.dW.W_V[g].noalias() += dpp.dVO[h][k] * layer.W_O[k].transpose();
      grad.dW.W_O[k].noalias() += layer.W_V[g].transpose() * dpp.dVO[h][k];
    }
  }
  return grad;
}

}  // namespace detail

// Gradient of L = sum_t <dK[t], K_t>_F (dK[t] (n, n), n = sum_h d_v) with respect to U and every
// weight and bias of the layer, K_t the projected form's blocks (projected_blocks).
template <class S>
layer_gradients<S> projected_blocks_backward(const std::vector<matrix<S>>& dK, const_ref<S> U, const layer<S>& layer,
                                             const attention_params& params = {}) {
  detail::validate_layer_attention<S>(U, layer, params);
  index n = 0;
  for (const matrix<S>& W_O : layer.W_O) n += W_O.cols();
  detail::validate_block_gradients<S>(dK, U.rows(), n, "dK");
  return detail::projected_blocks_backward_unchecked<S>(dK, U, layer, params);
}

}  // namespace suptok
