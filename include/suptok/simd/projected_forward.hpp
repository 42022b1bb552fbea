// suptok/simd/projected_forward.hpp: the barrier of an attention layer in the projected form
// (docs/math.md section 2.3), fast path (float, double).
//
// Same values as barrier_per_token(U, layer, ...) of barrier/penalty.hpp, through
// det J_t = det(I_n - K_t), n = sum_h d_v (likelihood/projected.hpp). Per query head h of group g,
// with P(t) the past of t:
//   y_s = v_s - cv,  x_s = k~_s - ck   values and rotated keys of group g minus constants near their
//                                      sequence means (shifts that change neither X^h_t nor the softmax)
//   Z_s = [vec(y_s x_s^T), y_s, x_s, 1, y_s.^2, x_s.^2]        packed row, width d_v d_k + 2 (d_v + d_k) + 1
//   O_t = [m2, sy, sx, z, syy, sxx]_t = sum_{s in P(t)} a_ts Z_s   the packed moment GEMM of
//                                      simd/barrier_moments.hpp (lse pass, then P Z)
//   X^h_t = m2 / z - ybar xbar^T,  ybar = sy / z,  xbar = sx / z                            (d_v, d_k)
//   XR^h_t = X^h_t R_t                 every row rotated by the angles of position t (rotary layers)
// Cancellation: entry (i, j) of X^h_t carries the GEMM's rounding, about eps sum_s a_ts |y_si x_sj|
// <= eps sqrt(syy_i sxx_j) / z, where the centred reference carries eps sqrt(Cy_ii Cx_jj) with
// Cy_ii = syy_i / z - ybar_i^2. Tokens with max_i (syy_i / z) / Cy_ii * max_j (sxx_j / z) / Cx_jj
// >= moment_refine_ratio^2 (some entry loses more than 3 bits), or a non-positive Cy_ii or Cx_jj,
// are recomputed centred: X = Yc^T diag(a) Xc - e_y e_x^T, Yc = rows y_s - ybar, e_y = Yc^T a.
// Per token t (threads over tokens), with W = [W_O[0] ... W_O[H-1]] (p, n) and P_h = W_Q[h] W / tau_h
// (d_k, n), the rows of head h in I - K_t are
//   I rows - XR^h_t P_h   [inclusive: - a_tt W_V[g] W - a_tt (y_t - ybar_t)(q'_t^T W_K[g] W / tau_h)]
// followed by one pivoted LU in place (simd/recursive_lu.hpp): sign and log|det J_t|, then b_t by
// the barrier policy.
// Memory: XR of every query head (H N d_v d_k), one group's packed rows and one head's moments
// (N (d_v d_k + 2 d_v + 2 d_k + 1)), one (n, n) block per thread; no (p, p) block, no (N, N) matrix.
// Layers for which the general form is cheaper (choose_form: heads together wider than the model)
// are computed by the reference path's general form.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "../barrier/analysis.hpp"
#include "barrier_forward.hpp"
#include "recursive_lu.hpp"

namespace suptok {
namespace detail {

// Column offsets in a packed row Z_s (before its padding to the register block).
struct projected_columns {
  index d_v, d_k;
  index sy() const { return d_v * d_k; }
  index sx() const { return sy() + d_v; }
  index z() const { return sx() + d_k; }
  index syy() const { return z() + 1; }
  index sxx() const { return syy() + d_v; }
  index width() const { return sxx() + d_k; }
};

// What the token loop needs of query head h.
template <class S>
struct projected_head_state {
  index offset = 0, d_v = 0, d_k = 0;  // rows [offset, offset + d_v) of K_t
  matrix<S> XR;   // (N, d_v d_k)  row t: XR^h_t, row-major
  projected_head_products<S> products;  // P = W_Q[h] W / tau [inclusive: KO, VO]
  vector<S> a_tt; // (N)           inclusive: the weight of key t for query t, else empty
  matrix<S> dv;   // (N, d_v)      inclusive: y_t - ybar_t
  matrix<S> Qp;   // (N, d_k)      inclusive: unrotated queries q'_t
};

// One sequence's forward state.
template <class S>
struct simd_projected_pass {
  index N = 0, n = 0;
  matrix<S> W;                      // (p, n) [W_O[0] ... W_O[H-1]]
  std::vector<projected_head_state<S>> heads;
  matrix<S> Y, X;                   // (N, d_v), (N, d_k): the current group's centred values and keys
  matrix<S> Z;                      // (n_pad, width padded) the current group's packed rows
  simd_head<S> w;                   // the current head's logit operands, lse and moments
  simd_moment_buffers<S> buffers;
  std::vector<signed_log_det<S>> ld;
  index refined = 0;                // (token, head) pairs recomputed centred
};

// Centred values and rotated keys of group g and their packed rows Z. Uc = U - (column means of U):
// y_s = W_V[g] (u_s - ubar) (b_V cancels), and without rotation x_s = W_K[g] (u_s - ubar) (b_K
// cancels), so tokens far from the origin cost no accuracy here; rotated keys are rotated first
// (R_s (W_K u_s + b_K)), then centred.
template <class S>
void simd_projected_group(simd_projected_pass<S>& ps, const Eigen::Ref<const matrix<S>>& U, const matrix<S>& Uc,
                          const layer<S>& layer, std::size_t g) {
  ps.Y.noalias() = Uc * layer.W_V[g].transpose();  // (N, d_v)
  if (layer.rope_theta == 0) {
    ps.X.noalias() = Uc * layer.W_K[g].transpose();  // (N, d_k)
  } else {
    ps.X = affine_rows<S>(U, layer.W_K[g], layer.b_K, g);
    rotate_rows(ps.X, layer.rope_theta);
    ps.X.rowwise() -= ps.X.colwise().mean();
  }
  const projected_columns c{ps.Y.cols(), ps.X.cols()};
  const index N = ps.N, width = simd_kernels::round_up(c.width(), simd_kernels::block_width<S>);
  simd_kernels::resize_huge(ps.Z, simd_kernels::round_up(N, simd_tile), width);  // kept across groups
  ps.Z.bottomRows(ps.Z.rows() - N).setZero();
#pragma omp parallel for schedule(static) if (simd_kernels::worth_threads(double(N) * double(width)))
  for (index s = 0; s < N; ++s) {
    S* z = ps.Z.data() + s * width;
    std::fill(z + c.width(), z + width, S(0));  // the padding columns
    for (index i = 0; i < c.d_v; ++i)
      for (index j = 0; j < c.d_k; ++j) z[i * c.d_k + j] = ps.Y(s, i) * ps.X(s, j);
    for (index i = 0; i < c.d_v; ++i) z[c.sy() + i] = ps.Y(s, i), z[c.syy() + i] = ps.Y(s, i) * ps.Y(s, i);
    for (index j = 0; j < c.d_k; ++j) z[c.sx() + j] = ps.X(s, j), z[c.sxx() + j] = ps.X(s, j) * ps.X(s, j);
    z[c.z()] = S(1);
  }
}

// Whether the one-pass X^h_t of moment row o loses more than 3 bits to cancellation (see the top).
template <class S>
bool projected_moment_cancels(const S* o, const projected_columns& c) {
  const S z = o[c.z()];
  const auto amplification = [&](index sum, index squares, index d) {
    S worst = S(0);
    for (index i = 0; i < d; ++i) {
      const S second = o[squares + i] / z, mean = o[sum + i] / z, centred = second - mean * mean;
      if (!(centred > S(0))) return std::numeric_limits<S>::infinity();
      worst = std::max(worst, second / centred);
    }
    return worst;
  };
  return !(amplification(c.sy(), c.syy(), c.d_v) * amplification(c.sx(), c.sxx(), c.d_k) <
           S(moment_refine_ratio * moment_refine_ratio));
}

// X^h_t (d_v, d_k) recomputed centred over the past [0, end) of t, and ybar_t corrected by e_y.
template <class S>
void projected_refine(Eigen::Map<matrix<S>> X, vector<S>& ybar, const simd_projected_pass<S>& ps, index t, index end,
                      const vector<S>& xbar) {
  const simd_head<S>& w = ps.w;
  vector<S> a = w.Kt.topLeftCorner(w.d_k, end).transpose() * w.Qs.row(t).head(w.d_k).transpose();  // l_ts (end)
  softmax_in_place(a, w.lse(t));
  const matrix<S> Yc = ps.Y.topRows(end).rowwise() - ybar.transpose();  // (end, d_v)
  const matrix<S> Xc = ps.X.topRows(end).rowwise() - xbar.transpose();  // (end, d_k)
  const vector<S> e_y = Yc.transpose() * a, e_x = Xc.transpose() * a;
  X.noalias() = Yc.transpose() * (Xc.array().colwise() * a.array()).matrix();
  X.noalias() -= e_y * e_x.transpose();
  ybar += e_y;
}

// XR^h_t of every token of query head h (and its inclusive terms) from the moments in ps.w.O.
template <class S>
void simd_projected_rows(projected_head_state<S>& st, simd_projected_pass<S>& ps, const layer<S>& layer, mask m) {
  const projected_columns c{st.d_v, st.d_k};
  const index N = ps.N, ldo = ps.Z.cols();
  const bool inclusive = m == mask::inclusive;
  simd_kernels::resize_huge(st.XR, N, c.d_v * c.d_k);  // H N d_v d_k in all: 200 MB for GPT-2 at N = 1024
  if (inclusive) {
    st.a_tt.setZero(N);
    st.dv.setZero(N, c.d_v);
  }
  index refined = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : refined) \
    if (simd_kernels::worth_threads(double(N) * double(ldo)))
  for (index t = 0; t < N; ++t) {
    const S* o = ps.w.O.data() + t * ldo;
    const S z = o[c.z()];
    Eigen::Map<matrix<S>> X(st.XR.data() + t * c.d_v * c.d_k, c.d_v, c.d_k);
    if (z == S(0)) {  // empty past: X^h_t = 0 (a NaN z, from overflowing moments, goes on to a NaN block)
      X.setZero();
      continue;
    }
    vector<S> ybar = Eigen::Map<const vector<S>>(o + c.sy(), c.d_v) / z;
    const vector<S> xbar = Eigen::Map<const vector<S>>(o + c.sx(), c.d_k) / z;
    if (projected_moment_cancels(o, c)) {
      projected_refine(X, ybar, ps, t, past_end(t, m), xbar);
      ++refined;
    } else {
      X = Eigen::Map<const matrix<S>>(o, c.d_v, c.d_k) / z;
      X.noalias() -= ybar * xbar.transpose();
    }
    const vector<S> angle = rope_angles<S>(t, c.d_k, layer.rope_theta);
    if (angle.size() > 0)
      for (index i = 0; i < c.d_v; ++i) rotate<S>(X.row(i).transpose(), angle, -1);  // row i <- (R_t^T x_i)^T
    if (!inclusive) continue;
    st.a_tt(t) = own_weight(S(ps.w.Qs.row(t).head(c.d_k).dot(ps.w.Kt.col(t))), ps.w.lse(t)) / z;
    st.dv.row(t) = ps.Y.row(t) - ybar.transpose();
  }
  ps.refined += refined;
}

// Moments and XR of every query head of the layer into ps.heads.
template <class S>
void simd_projected_moments(simd_projected_pass<S>& ps, const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                            const attention_params& attention) {
  const std::size_t H = layer.W_Q.size();
  const mask m = attention.causal_mask;
  ps.W = concatenated_outputs(layer);
  ps.heads.assign(H, {});
  for (std::size_t h = 1; h < H; ++h) ps.heads[h].offset = ps.heads[h - 1].offset + layer.W_O[h - 1].cols();
  ps.N = U.rows();
  ps.n = ps.W.cols();
  ps.refined = 0;
  const matrix<S> Uc = U.rowwise() - U.colwise().mean();
  for (std::size_t h = 0; h < H; ++h) {
    const std::size_t g = layer.group_of(h);
    if (h == 0 || layer.group_of(h - 1) != g) simd_projected_group(ps, U, Uc, layer, g);
    const S tau = layer_temperature(layer, h, attention);
    projected_head_state<S>& st = ps.heads[h];
    st.d_v = layer.W_O[h].cols();
    st.d_k = layer.W_Q[h].rows();
    st.products = projected_head_products_of(layer, h, ps.W, tau, m);
    const matrix<S> Qp = affine_rows<S>(U, layer.W_Q[h], layer.b_Q, h);  // (N, d_k)
    matrix<S> Q = Qp;
    rotate_rows(Q, layer.rope_theta);
    simd_set_logit_operands(ps.w, Q, ps.X, tau);
    simd_attention_moments(ps.w, ps.Z, m, ps.buffers);
    simd_projected_rows(st, ps, layer, m);
    if (m != mask::inclusive) continue;
    st.Qp = Qp;
  }
  ps.w.O.resize(0, 0);
  ps.Z.resize(0, 0);
}

// B <- I - K_t (n, n) of token t: rows of head h are I - XR^h_t P_h [inclusive: - a_tt VO - a_tt dv_t (q'_t KO)].
template <class S>
void build_projected_block(matrix<S>& B, const simd_projected_pass<S>& ps, index t, mask m) {
  B.setIdentity(ps.n, ps.n);
  for (const projected_head_state<S>& st : ps.heads) {
    auto rows = B.middleRows(st.offset, st.d_v);  // (d_v, n)
    subtract_product<S>(rows, Eigen::Map<const matrix<S>>(st.XR.data() + t * st.d_v * st.d_k, st.d_v, st.d_k),
                        st.products.P);
    if (m != mask::inclusive || st.a_tt(t) == S(0)) continue;
    rows -= st.a_tt(t) * st.products.VO;
    const Eigen::Matrix<S, 1, Eigen::Dynamic> r = st.Qp.row(t) * st.products.KO;  // (n)
    rows.noalias() -= (st.a_tt(t) * st.dv.row(t).transpose()) * r;
  }
}

// sign and log|det(I - K_t)| of every token: the blocks built and factored one per thread.
template <class S>
void simd_projected_log_dets(simd_projected_pass<S>& ps, mask m) {
  const index N = ps.N, n = ps.n;
  ps.ld.assign(std::size_t(N), {});
#pragma omp parallel if (N > 1 && simd_kernels::worth_threads(double(n) * double(n) * double(n)))
  {
    matrix<S> B(n, n);
    std::vector<index> pivot;
#pragma omp for schedule(dynamic, 1)
    for (index t = 0; t < N; ++t) {
      build_projected_block(B, ps, t, m);
      ps.ld[std::size_t(t)] = recursive_lu_log_det<S>(B, pivot);
    }
  }
}

// b_t of every token; the general form (reference path) where it is the cheaper one.
template <class S>
std::vector<S> simd_layer_barrier(const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                                  const barrier_params& barrier, const attention_params& attention) {
  if (choose_form(U.rows(), layer) == jacobian_form::general)
    return sequence_barrier_forward<S>(U, layer, barrier, attention, "U").b;
  simd_projected_pass<S> ps;
  simd_projected_moments(ps, U, layer, attention);
  simd_projected_log_dets(ps, attention.causal_mask);
  std::vector<S> b(std::size_t(ps.N));
  for (index t = 0; t < ps.N; ++t) {  // outside the threads: the policy may throw
    require_finite_log_det(ps.ld[std::size_t(t)], "U", t);
    b[std::size_t(t)] = token_barrier(ps.ld[std::size_t(t)], barrier, "U", t);
  }
  return b;
}

}  // namespace detail

// b_t for every token t = 0..N-1 of U (N, p) under a layer (grouped-query heads, biases, rotary
// embeddings), as barrier_per_token(U, layer, ...) of barrier/penalty.hpp.
template <class S>
std::vector<S> barrier_per_token(simd, const_ref<S> U, const layer<S>& layer, const barrier_params& barrier,
                                 const attention_params& attention = {}) {
  detail::simd_require_scalar<S>();
  detail::validate_barrier(barrier);
  detail::validate_layer_attention<S>(U, layer, attention, "U", "attention");
  return detail::simd_layer_barrier<S>(U, layer, barrier, attention);
}

// The penalty of one sequence under a layer: mean of b_t over its non-trivial tokens.
template <class S>
S barrier_penalty(simd, const_ref<S> U, const layer<S>& layer, const barrier_params& barrier,
                  const attention_params& attention = {}) {
  const index n = detail::counted_tokens(U.rows(), attention.causal_mask);
  const std::vector<S> b = barrier_per_token<S>(simd{}, U, layer, barrier, attention);
  return n == 0 ? S(0) : detail::counted_sum<S>(b, attention.causal_mask) / S(n);
}

}  // namespace suptok
