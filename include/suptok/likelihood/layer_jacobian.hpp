// suptok/likelihood/layer_jacobian.hpp: the Jacobian blocks J_t = d e_t / d u_t of one attention
// layer (attention/layer.hpp), general form of docs/math.md sections 2.1b and 2.2, reference path.
//
// Query head h (group g), query t, past P(t) = [0, end):
//   g_ts = d l_ts / d u_t (query path) = W_Q[h]^T R_t^T k~_s / tau                    (p)
//   M_t  = Cov_a(u_s, g_ts) = sum_s a_ts (u_s - ubar_t)(g_ts - gbar_t)^T              (p, p)
//        [inclusive: + a_tt I + a_tt (u_t - ubar_t) c_t^T,  c_t = W_K[g]^T q'_t / tau  (the key path of l_tt)]
//   J_t  = I - sum_h W_O[h] W_V[g] M^h_t                                               (p, p)
// Both factors of the covariance are centred: in real arithmetic centring one is enough, but the
// rounding of sum_s a_ts (u_s - ubar_t) would otherwise be multiplied by gbar_t, which is large
// when the tokens sit far from the origin. Biases: b_K and b_V cancel in every centred term; b_Q
// enters through the weights and c_t; b_O does not enter J_t. Positions are 0-based; an empty
// past gives M = 0. Cost per query head: O(N^2 (d_k + p) p) for the moments plus O(N p^2 d_v).
// J_t depends on the tokens 0..t only: the blocks of a prefix are those of the whole sequence.
#pragma once

#include <vector>

#include "../attention/layer_attention.hpp"

namespace suptok {

namespace detail {

// R_t W: every column of W (d_k, p) rotated by the angles of position t.
template <class S>
matrix<S> rotate_columns(matrix<S> W, const vector<S>& angle) {
  if (angle.size() == 0) return W;
  for (index c = 0; c < W.cols(); ++c) rotate<S>(W.col(c), angle);
  return W;
}

// M^h_t (p, p) of query head h at query t, from the head's pass (layer_head_forward).
template <class S>
matrix<S> layer_query_moment(index t, const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer, std::size_t h,
                             const layer_head_pass<S>& pass, mask m) {
  const index p = U.cols(), end = past_end(t, m);
  matrix<S> M = matrix<S>::Zero(p, p);
  if (end == 0) return M;
  const auto a_t = pass.a.row(t).head(end);                                            // (end)
  const matrix<S> RW = rotate_columns<S>(layer.W_Q[h], rope_angles<S>(t, layer.W_Q[h].rows(), layer.rope_theta));
  const matrix<S> G = pass.K.topRows(end) * RW / pass.tau;                             // (end, p) rows g_ts
  const matrix<S> D = U.topRows(end).rowwise() - a_t * U.topRows(end);                 // (end, p) u_s - ubar
  const matrix<S> Gc = G.rowwise() - a_t * G;                                          // (end, p) g_ts - gbar
  M.noalias() = D.transpose() * a_t.transpose().asDiagonal() * Gc;                    // (p, p)
  if (m == mask::inclusive) {
    const S a_tt = pass.a(t, t);
    const vector<S> c = layer.W_K[layer.group_of(h)].transpose() * pass.Qp.row(t).transpose() / pass.tau;  // (p)
    M.noalias() += a_tt * D.row(t).transpose() * c.transpose();
    M.diagonal().array() += a_tt;
  }
  return M;
}

// Every query head's pass (weights, rotated queries and keys, values) on one sequence.
template <class S>
std::vector<layer_head_pass<S>> layer_passes(const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                                             const attention_params& params) {
  std::vector<layer_head_pass<S>> passes(layer.W_Q.size());
  for (std::size_t h = 0; h < passes.size(); ++h) layer_head_forward<S>(passes[h], U, layer, h, params);
  return passes;
}

// Calls f(t, J_t) for t = 0..N-1 with J_t (p, p), one block alive at a time: memory O(H N^2 + p^2).
template <class S, class F>
void for_each_jacobian_block(const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                             const attention_params& params, F&& f) {
  const index N = U.rows(), p = U.cols();
  const std::vector<layer_head_pass<S>> passes = layer_passes<S>(U, layer, params);
  matrix<S> J(p, p);
  for (index t = 0; t < N; ++t) {
    J.setIdentity();
    for (std::size_t h = 0; h < passes.size(); ++h) {
      const matrix<S> VM =
          layer.W_V[layer.group_of(h)] * layer_query_moment<S>(t, U, layer, h, passes[h], params.causal_mask);
      J.noalias() -= layer.W_O[h] * VM;  // (p, d_v) (d_v, p): 4 p^2 d_v instead of the 2 p^3 of (W_O W_V) M
    }
    f(t, J);
  }
}

}  // namespace detail

// The N blocks J_t (p, p) of one layer on U (N, p), general form.
template <class S>
std::vector<matrix<S>> jacobian_blocks(const_ref<S> U, const layer<S>& layer, const attention_params& params = {}) {
  detail::validate_layer_attention<S>(U, layer, params);
  std::vector<matrix<S>> J;
  J.reserve(static_cast<std::size_t>(U.rows()));
  detail::for_each_jacobian_block<S>(U, layer, params, [&](index, const matrix<S>& J_t) { J.push_back(J_t); });
  return J;
}

// e = U - mu (N, p): the residuals of the latent-noise model of one layer.
template <class S>
matrix<S> residuals(const_ref<S> U, const layer<S>& layer, const attention_params& params = {}) {
  detail::validate_layer_attention<S>(U, layer, params);
  attention_output<S> out;
  detail::layer_forward_unchecked<S>(out, U, layer, params, false);
  return U - out.mu;
}

}  // namespace suptok
