// suptok/likelihood/projected_backward.hpp: the backward of the projected form's blocks K_t
// (likelihood/projected.hpp), reference path.
//
// Given dK_t = dL/dK_t (n, n), t = 0..N-1, returns the gradient of L = sum_t <dK_t, K_t>_F with
// respect to U (N, p) and every weight and bias of the layer. Per query head h (group g, rows of h in
// K_t) and query t, each line differentiates the forward line quoted beside it (Dv_s = v_s - vbar,
// Dk_s = k~_s - kbar, dB = the rows of head h in dK_t (d_v, n), r'_t = KO_h^T q'_t, products
// concatenated over the heads of K_t's columns, W = [W_O[0] ... W_O[H-1]] (p, n)):
//   rows of h in K_t = XR P_h           ->  dXR = dB P_h^T,  dP_h += XR^T dB     (projected_rows_backward)
//     [inclusive: + a_tt VO_h              dVO_h += a_tt dB,  da_tt += <dB, VO_h> + Dv_t^T dB r'_t,
//      + a_tt Dv_t r'_t^T]                 dDv_t += a_tt dB r'_t,  dr' = a_tt dB^T Dv_t,
//                                          dq'_t += KO_h dr',  dKO_h += q'_t dr'^T
//   XR = X R_t                          ->  dX = dXR R_t^T                        (projected_head_backward)
//   X = Dv^T diag(a_t) Dk               ->  dDv = diag(a_t) Dk dX^T,  dDk = diag(a_t) Dv dX,
//                                           da_ts += (Dv dX)_s . Dk_s
//   Dv = Vv - 1 (a_t^T Vv)  (Dk alike)  ->  dVv = dDv - a_t colsum(dDv)^T,  da_ts -= Vv_s . colsum(dDv)
//   a, k~, q' (softmax, rotations, affine maps)  ->  detail::layer_weights_backward (attention/layer_attention.hpp)
//   Vv = U W_V[g]^T + 1 b_V^T           ->  dW_V += dVv^T U,  dU += dVv W_V  (colsum(dVv) = 0: b_V gets 0)
//   P_h = W_Q[h] W / tau                ->  dW_Q[h] += dP_h W^T / tau,  dW += W_Q[h]^T dP_h / tau
//   KO_h = W_K[g] W / tau,  VO_h = W_V[g] W   (alike)
// The fast path (simd/projected_backward.hpp) shares everything after dK_t: it reduces each token's
// dK_t to the head rows as soon as it has it and keeps no (n, n) block.
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

// dL/dK_t's rows of query head h reduced, token by token, to what the head's moments need.
template <class S>
struct projected_row_gradients {
  matrix<S> dXR;    // (N, d_v d_k)  row t: dL/d(X^h_t R_t), row-major
  vector<S> da_tt;  // (N)       inclusive: dL/da_tt through the inclusive terms (else empty)
  matrix<S> dDv;    // (N, d_v)  inclusive: dL/dDv_t through a_tt Dv_t r'^T
  matrix<S> dQp;    // (N, d_k)  inclusive: dL/dq'_t through r' = KO^T q'_t

  projected_row_gradients(index N, index d_v, index d_k, mask m) : dXR(matrix<S>::Zero(N, d_v * d_k)) {
    if (m != mask::inclusive) return;
    da_tt.setZero(N);
    dDv.setZero(N, d_v);
    dQp.setZero(N, d_k);
  }
};

// dL/d of the products of one head (projected_head_products' shapes), summed over the tokens.
template <class S>
struct projected_product_gradients {
  matrix<S> dP, dKO, dVO;

  projected_product_gradients(const projected_head_products<S>& hp)
      : dP(matrix<S>::Zero(hp.P.rows(), hp.P.cols())),
        dKO(matrix<S>::Zero(hp.KO.rows(), hp.KO.cols())),
        dVO(matrix<S>::Zero(hp.VO.rows(), hp.VO.cols())) {}
  projected_product_gradients& operator+=(const projected_product_gradients& o) {
    dP += o.dP;
    dKO += o.dKO;
    dVO += o.dVO;
    return *this;
  }
};

// Token t's share of head h: dB = dL/d(rows of head h in K_t) (d_v, n), XR = X^h_t R_t (d_v, d_k);
// inclusive: a_tt, Dv_t = v_t - vbar_t (d_v) and q'_t (d_k) (ignored under the strict mask).
//   rows = XR P                  ->  dXR = dB P^T,  dP += XR^T dB
//   [+ a_tt VO                   ->  dVO += a_tt dB,  da_tt = <dB, VO> + Dv_t . dB r'
//    + a_tt Dv_t r'^T,               dDv_t = a_tt dB r',  dr' = a_tt dB^T Dv_t,
//    r' = KO^T q'_t]                 dq'_t = KO dr',  dKO += q'_t dr'^T
template <class S>
void projected_rows_backward(projected_row_gradients<S>& g, projected_product_gradients<S>& dp, index t,
                             const Eigen::Ref<const matrix<S>>& dB, const Eigen::Ref<const matrix<S>>& XR,
                             const projected_head_products<S>& hp, const S& a_tt,
                             const Eigen::Ref<const vector<S>>& Dv_t, const Eigen::Ref<const vector<S>>& Qp_t) {
  const index d_v = XR.rows(), d_k = XR.cols();
  Eigen::Map<matrix<S>>(g.dXR.data() + t * d_v * d_k, d_v, d_k).noalias() = dB * hp.P.transpose();
  dp.dP.noalias() += XR.transpose() * dB;
  if (g.da_tt.size() == 0) return;  // strict mask
  const vector<S> r = hp.KO.transpose() * Qp_t;  // (n)
  const vector<S> dBr = dB * r;                   // (d_v)
  dp.dVO += a_tt * dB;
  g.da_tt(t) = (dB.array() * hp.VO.array()).sum() + Dv_t.dot(dBr);
  g.dDv.row(t) = a_tt * dBr.transpose();
  const vector<S> dr = a_tt * (dB.transpose() * Dv_t);  // (n)
  g.dQp.row(t) = (hp.KO * dr).transpose();
  dp.dKO.noalias() += Qp_t * dr.transpose();
}

// Adds to grad what head h's reduced gradients give (W as in projected_head_products): per token,
// back through X^h_t R_t and the centred covariance; then the softmax, rotations and affine maps
// (layer_weights_backward), the values and the products P, KO, VO. Per token t with a past, the
// moment hm = projected_head_moment_at(t) is formed once and token_rows(t, hm) is called with it
// first: it may fill token t's entries of rg and add to dp (the reference path reduces dK_t there;
// the fast path has filled rg and dp already and passes a no-op).
template <class S, class TokenRows>
void projected_head_backward(layer_gradients<S>& grad, const projected_row_gradients<S>& rg,
                             const projected_product_gradients<S>& dp, const Eigen::Ref<const matrix<S>>& U,
                             const layer<S>& layer, std::size_t h, const layer_head_pass<S>& pass, const matrix<S>& W,
                             mask m, TokenRows&& token_rows) {
  const index N = U.rows(), d_k = pass.K.cols(), d_v = pass.Vv.cols();
  const std::size_t g = layer.group_of(h);
  const bool inclusive = m == mask::inclusive;
  projected_head_gradients<S> hg{matrix<S>::Zero(N, N), matrix<S>::Zero(N, d_k), matrix<S>::Zero(N, d_k),
                                 matrix<S>::Zero(N, d_v)};
  for (index t = 0; t < N; ++t) {
    const index end = past_end(t, m);
    if (end == 0) continue;  // K_t = 0 whatever the weights
    const projected_head_moment<S> hm = projected_head_moment_at<S>(t, layer, pass, m);
    token_rows(t, hm);
    matrix<S> dX = Eigen::Map<const matrix<S>>(rg.dXR.data() + t * d_v * d_k, d_v, d_k);
    const vector<S> angle = rope_angles<S>(t, d_k, layer.rope_theta);
    if (angle.size() > 0)  // XR = X R_t: rows of dX = rows of dXR rotated by R_t
      for (index i = 0; i < d_v; ++i) rotate<S>(dX.row(i).transpose(), angle, 1);
    matrix<S> dDv_extra;
    if (inclusive) {
      dDv_extra.setZero(end, d_v);
      dDv_extra.row(t) = rg.dDv.row(t);
      hg.da(t, t) += rg.da_tt(t);
      hg.dQp.row(t) = rg.dQp.row(t);
    }
    centred_covariance_backward<S>(hg, t, dX, hm.Dv, hm.Dk, pass, dDv_extra);
  }
  layer_weights_backward<S>(grad.dU, grad.dW, hg.da, U, layer, h, pass, hg.dK, hg.dQp);
  grad.dW.W_V[g].noalias() += hg.dVv.transpose() * U;  // b_V: colsum(dVv) = 0 up to rounding, left at 0
  grad.dU.noalias() += hg.dVv * layer.W_V[g];
  // P = W_Q[h] W / tau, KO = W_K[g] W / tau, VO = W_V[g] W
  grad.dW.W_Q[h].noalias() += dp.dP * W.transpose() / pass.tau;
  matrix<S> dW = layer.W_Q[h].transpose() * dp.dP / pass.tau;  // (p, n)
  if (inclusive) {
    grad.dW.W_K[g].noalias() += dp.dKO * W.transpose() / pass.tau;
    grad.dW.W_V[g].noalias() += dp.dVO * W.transpose();
    dW.noalias() += layer.W_K[g].transpose() * dp.dKO / pass.tau;
    dW.noalias() += layer.W_V[g].transpose() * dp.dVO;
  }
  for (std::size_t k = 0, c0 = 0; k < layer.W_O.size(); c0 += std::size_t(layer.W_O[k].cols()), ++k)
    grad.dW.W_O[k] += dW.middleCols(index(c0), layer.W_O[k].cols());
}

template <class S>
layer_gradients<S> projected_blocks_backward_unchecked(const std::vector<matrix<S>>& dK,
                                                       const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                                                       const attention_params& params) {
  const index N = U.rows();
  const mask m = params.causal_mask;
  const bool inclusive = m == mask::inclusive;
  const projected_products<S> pp = projected_products_of(layer, params);
  const std::vector<layer_head_pass<S>> passes = layer_passes<S>(U, layer, params);
  layer_gradients<S> grad{matrix<S>::Zero(N, U.cols()), zero_like(layer)};
  for (std::size_t h = 0; h < layer.W_Q.size(); ++h) {
    const layer_head_pass<S>& pass = passes[h];
    const index r0 = pp.offset[h], d_v = pp.offset[h + 1] - r0;
    projected_row_gradients<S> rg(N, d_v, pass.K.cols(), m);
    projected_product_gradients<S> dp(pp.heads[h]);
    const auto token_rows = [&](index t, const projected_head_moment<S>& hm) {
      projected_rows_backward<S>(rg, dp, t, dK[std::size_t(t)].middleRows(r0, d_v), hm.XR, pp.heads[h],
                                 inclusive ? pass.a(t, t) : S(0),
                                 inclusive ? vector<S>(hm.Dv.row(t).transpose()) : vector<S>(),
                                 pass.Qp.row(t).transpose());
    };
    projected_head_backward<S>(grad, rg, dp, U, layer, h, pass, pp.W, m, token_rows);
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
