// suptok/likelihood/jacobian.hpp: the diagonal Jacobian blocks J_t = d e_t / d u_t of the
// residual map e_t = u_t - mu_t (docs/math.md sections 2.1, 2.1b, 2.2), reference path.
//
// General form, for logits l_ts(u_t, u_s) with query gradient g_ts := d l_ts / d u_t:
//   J_t = I - sum_h V_h M^h_t,        V_h = W_O^h W_V^h                      (p, p)
//   M^h_t = sum_{s in P(t)} a_ts (u_s - ubar_t) (g_ts - gbar_t)^T  [+ a_tt I, inclusive mask]
// Both factors are centred. Since sum_s a_ts (u_s - ubar_t) = 0, centring one would do in real
// arithmetic, but the rounding left in that sum would be multiplied by gbar_t = A^T ubar_t, which is
// large for tokens clustered far from the origin. Dot-product logits give
//   g_ts = A_h^T u_s + [s == t, inclusive] A_h u_t,   A_h = W_K^T W_Q / tau   (p, p)
// which yields C_t A (strict, docs/math.md 2.1) and a_tt I + C_t A + a_tt (u_t - ubar_t)(A u_t)^T
// (inclusive, docs/math.md 2.2). An empty past gives M = 0 (strict: J_0 = J_1 = I since C = 0 there).
// Positions are 0-based. Cost per head: O(N^2 p^2) for the moments plus O(N p^3).
#pragma once

#include <vector>

#include "../attention/forward.hpp"

namespace suptok {

namespace detail {

// The head's p x p matrices A_h = W_K^T W_Q / tau and V_h = W_O W_V.
template <class S>
matrix<S> logit_matrix(const head<S>& w, const S& tau) {
  return (w.W_K.transpose() * w.W_Q) / tau;  // (p, p)
}
template <class S>
matrix<S> value_matrix(const head<S>& w) {
  return w.W_O * w.W_V;  // (p, p)
}

// M^h_t of one head at query t, from the head's weights a (N, N) and UA = U A (N, p), whose row s
// is (A^T u_s)^T.
template <class S>
matrix<S> query_moment(index t, const Eigen::Ref<const matrix<S>>& U, const matrix<S>& a, const matrix<S>& UA,
                       const matrix<S>& A, mask m) {
  const index p = U.cols();
  const index end = past_end(t, m);
  matrix<S> M = matrix<S>::Zero(p, p);
  if (end == 0) return M;
  const auto a_t = a.row(t).head(end);                                           // (end)
  const vector<S> ubar = (a_t * U.topRows(end)).transpose();                     // (p)
  const matrix<S> D = U.topRows(end).rowwise() - ubar.transpose();               // (end, p)
  const matrix<S> G = UA.topRows(end).rowwise() - a_t * UA.topRows(end);         // (end, p) g_ts - gbar
  M.noalias() = D.transpose() * a_t.transpose().asDiagonal() * G;                // (p, p)
  if (m == mask::inclusive) {
    const S a_tt = a(t, t);
    M.noalias() += a_tt * D.row(t).transpose() * (A * U.row(t).transpose()).transpose();
    M.diagonal().array() += a_tt;
  }
  return M;
}

}  // namespace detail

// The N blocks J_t (p, p), t = 0..N-1, of one sequence U (N, p).
template <class S>
std::vector<matrix<S>> jacobian_blocks(const_ref<S> U, const heads<S>& heads, const attention_params& params = {}) {
  detail::validate_attention<S>(U, heads, params);
  const index N = U.rows(), p = U.cols();
  std::vector<matrix<S>> J(static_cast<std::size_t>(N), matrix<S>::Identity(p, p));
  detail::head_pass<S> pass;
  for (const head<S>& w : heads) {
    detail::head_forward<S>(pass, U, w, params);
    const matrix<S> A = detail::logit_matrix(w, pass.tau);  // (p, p)
    const matrix<S> V = detail::value_matrix(w);            // (p, p)
    const matrix<S> UA = U * A;                              // (N, p)
    for (index t = 0; t < N; ++t)
      J[static_cast<std::size_t>(t)].noalias() -= V * detail::query_moment<S>(t, U, pass.a, UA, A, params.causal_mask);
  }
  return J;
}

}  // namespace suptok
