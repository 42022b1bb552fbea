// suptok/likelihood/projected.hpp: the projected form of the Jacobian determinant for heads
// narrower than the model width (docs/math.md section 2.3), reference path.
//
// J_t = I_p - W Y_t with W = [W_O[0] ... W_O[H-1]] (p, n), n = sum_h d_v^h, and Y_t (n, p)
// stacking the query heads' rows
//   Y^h_t = X^h_t R_t W_Q[h] / tau  [inclusive: + a_tt W_V[g] + a_tt (v_t - vbar_t) c_t^T]    (d_v, p)
//   X^h_t = Cov_a(v_s, k~_s) = sum_s a_ts (v_s - vbar_t)(k~_s - kbar_t)^T                     (d_v, d_k)
//   c_t   = W_K[g]^T q'_t / tau                                                               (p)
// Sylvester's identity det(I_p - W Y) = det(I_n - Y W) gives det J_t = det(I_n - K_t) with
//   K_t block (h, h') = Y^h_t W_O[h'] = X^h_t R_t P_hh'
//                       [inclusive: + a_tt VO_gh' + a_tt (v_t - vbar_t)(q'_t^T KO_gh')]       (d_v, d_v')
//   P_hh' = W_Q[h] W_O[h'] / tau,  KO_gh' = W_K[g] W_O[h'] / tau,  VO_gh' = W_V[g] W_O[h']   (once per layer)
// Per (t, s) pair a head costs d_v d_k instead of p^2, and no (p, p) matrix is formed. The exact
// cost is then the LU of I - K_t, 2/3 n^3 per token. Y_t is formed only when asked (margins need
// it: J_t x = x - W (Y_t x) and J_t^{-1} x = x + W (I - K_t)^{-1} Y_t x, Woodbury).
#pragma once

#include <string>
#include <vector>

#include "form.hpp"
#include "layer_jacobian.hpp"

namespace suptok {

// The form with fewer operations for N tokens under the layer (choose_form of likelihood/form.hpp).
template <class S>
jacobian_form choose_form(index N, const layer<S>& layer) {
  std::vector<head_widths> widths;
  for (std::size_t h = 0; h < layer.W_Q.size(); ++h) widths.push_back({layer.W_Q[h].rows(), layer.W_O[h].cols()});
  return choose_form(N, layer.p(), widths);
}

// `form`, with automatic resolved by choose_form.
template <class S>
jacobian_form resolve_form(jacobian_form form, index N, const layer<S>& layer) {
  return form == jacobian_form::automatic ? choose_form(N, layer) : form;
}

namespace detail {

// (p, n) = [W_O[0] ... W_O[H-1]]
template <class S>
matrix<S> concatenated_outputs(const layer<S>& layer) {
  index n = 0;
  for (const matrix<S>& W_O : layer.W_O) n += W_O.cols();
  matrix<S> W(layer.p(), n);
  for (std::size_t h = 0, c0 = 0; h < layer.W_O.size(); c0 += std::size_t(layer.W_O[h].cols()), ++h)
    W.middleCols(index(c0), layer.W_O[h].cols()) = layer.W_O[h];
  return W;
}

// The per-head products of the projected form, concatenated over the heads h' of K_t's columns
// (W = [W_O[0] ... W_O[H-1]] (p, n)): rows of head h in K_t are XR P [inclusive: + a_tt VO + a_tt Dv_t (q'_t^T KO)].
template <class S>
struct projected_head_products {
  matrix<S> P;   // (d_k, n)  W_Q[h] W / tau
  matrix<S> KO;  // (d_k, n)  W_K[g] W / tau, inclusive (else empty)
  matrix<S> VO;  // (d_v, n)  W_V[g] W, inclusive (else empty)
};

template <class S>
projected_head_products<S> projected_head_products_of(const layer<S>& layer, std::size_t h, const matrix<S>& W,
                                                      const S& tau, mask m) {
  const std::size_t g = layer.group_of(h);
  projected_head_products<S> hp{layer.W_Q[h] * W / tau, {}, {}};
  if (m != mask::inclusive) return hp;
  hp.KO.noalias() = layer.W_K[g] * W / tau;
  hp.VO.noalias() = layer.W_V[g] * W;
  return hp;
}

// The products of every head and the row offset of each head in K_t.
template <class S>
struct projected_products {
  std::vector<projected_head_products<S>> heads;
  std::vector<index> offset;  // H + 1 row offsets; offset[H] = n
  matrix<S> W;                // (p, n) = [W_O[0] ... W_O[H-1]]
};

template <class S>
projected_products<S> projected_products_of(const layer<S>& layer, const attention_params& params) {
  projected_products<S> pp;
  pp.offset.assign(1, 0);
  for (const matrix<S>& W_O : layer.W_O) pp.offset.push_back(pp.offset.back() + W_O.cols());
  pp.W = concatenated_outputs(layer);
  for (std::size_t h = 0; h < layer.W_Q.size(); ++h)
    pp.heads.push_back(
        projected_head_products_of(layer, h, pp.W, layer_temperature(layer, h, params), params.causal_mask));
  return pp;
}

// X^h_t R_t (d_v, d_k) of head h at query t and the centred rows it is made of: Dv_s = v_s - vbar_t
// and Dk_s = k~_s - kbar_t over the past s < end (the inclusive mask's terms use Dv_t).
template <class S>
struct projected_head_moment {
  matrix<S> XR;  // (d_v, d_k)
  matrix<S> Dv;  // (end, d_v)
  matrix<S> Dk;  // (end, d_k)
};

template <class S>
projected_head_moment<S> projected_head_moment_at(index t, const layer<S>& layer, const layer_head_pass<S>& pass,
                                                  mask m) {
  const index end = past_end(t, m), d_v = pass.Vv.cols(), d_k = pass.K.cols();
  projected_head_moment<S> r{matrix<S>::Zero(d_v, d_k), matrix<S>(), matrix<S>()};
  if (end == 0) return r;
  const auto a_t = pass.a.row(t).head(end);                                    // (end)
  r.Dv = pass.Vv.topRows(end).rowwise() - a_t * pass.Vv.topRows(end);         // (end, d_v)
  r.Dk = pass.K.topRows(end).rowwise() - a_t * pass.K.topRows(end);           // (end, d_k)
  r.XR.noalias() = r.Dv.transpose() * a_t.transpose().asDiagonal() * r.Dk;  // X^h_t
  const vector<S> angle = rope_angles<S>(t, d_k, layer.rope_theta);
  if (angle.size() > 0)
    for (index i = 0; i < d_v; ++i) rotate<S>(r.XR.row(i).transpose(), angle, -1);  // row i <- (R_t^T x_i)^T
  return r;
}

// Calls f(t, K_t, Y_t) for t = 0..N-1 with K_t (n, n) and, when with_rows, Y_t (n, p) (else empty).
// Memory: the heads' passes O(H N^2) and one token's blocks.
template <class S, class F>
void for_each_projected_block(const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                              const attention_params& params, const projected_products<S>& pp, bool with_rows,
                              F&& f) {
  const index N = U.rows(), p = U.cols(), n = pp.offset.back();
  const std::size_t H = layer.W_Q.size();
  const mask m = params.causal_mask;
  const std::vector<layer_head_pass<S>> passes = layer_passes<S>(U, layer, params);
  matrix<S> K(n, n), Y(with_rows ? n : 0, with_rows ? p : 0);
  for (index t = 0; t < N; ++t) {
    for (std::size_t h = 0; h < H; ++h) {
      const layer_head_pass<S>& pass = passes[h];
      const std::size_t g = layer.group_of(h);
      const index r0 = pp.offset[h], d_v = pp.offset[h + 1] - r0;
      const projected_head_moment<S> hm = projected_head_moment_at<S>(t, layer, pass, m);
      const bool incl = m == mask::inclusive;
      const S a_tt = incl ? pass.a(t, t) : S(0);
      const projected_head_products<S>& hp = pp.heads[h];
      auto block = K.middleRows(r0, d_v);  // (d_v, n)
      block.noalias() = hm.XR * hp.P;
      if (incl) {
        block += a_tt * hp.VO;
        block.noalias() += (a_tt * hm.Dv.row(t).transpose()) * (pass.Qp.row(t) * hp.KO);
      }
      if (!with_rows) continue;
      auto rows = Y.middleRows(r0, d_v);
      rows.noalias() = hm.XR * layer.W_Q[h] / pass.tau;
      if (incl) {
        rows += a_tt * layer.W_V[g];
        rows.noalias() += (a_tt * hm.Dv.row(t).transpose()) * (pass.Qp.row(t) * layer.W_K[g] / pass.tau);
      }
    }
    f(t, K, Y);
  }
}

}  // namespace detail

// The N blocks K_t (n, n), n = sum_h d_v, of the projected form: det J_t = det(I - K_t).
template <class S>
std::vector<matrix<S>> projected_blocks(const_ref<S> U, const layer<S>& layer, const attention_params& params = {}) {
  detail::validate_layer_attention<S>(U, layer, params);
  std::vector<matrix<S>> K;
  K.reserve(static_cast<std::size_t>(U.rows()));
  detail::for_each_projected_block<S>(U, layer, params, detail::projected_products_of(layer, params), false,
                                      [&](index, const matrix<S>& K_t, const matrix<S>&) { K.push_back(K_t); });
  return K;
}

}  // namespace suptok
