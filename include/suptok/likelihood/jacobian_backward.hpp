// suptok/likelihood/jacobian_backward.hpp: the backward of the Jacobian blocks (docs/math.md 2.1b, 2.2,
// and the gradients paragraph of section 3), reference path.
//
// Given dJ_t = dL/dJ_t (p, p) for t = 0..N-1, returns the gradient of L = sum_t <dJ_t, J_t>_F with
// respect to U (N, p) and every head's W_Q, W_K, W_V, W_O. With the forward of jacobian.hpp,
//   J_t = I - sum_h V_h M^h_t,   M_t = sum_{s in P(t)} a_ts (u_s - ubar_t) g_ts^T [+ a_tt I]
// each line below differentiates the forward line quoted beside it:
//   J_t -= V M_t                       ->  dV += -dJ_t M_t^T,  dM_t = -V^T dJ_t
//   M_t = D^T diag(a_t) G              ->  da_ts += (D dM)_s . G_s,  dD = diag(a_t) G dM^T,
//        (D_s = u_s - ubar, G_s = A^T u_s)   dG = diag(a_t) D dM
//   G = U A                            ->  dU += dG A^T,  dA += U^T dG
//   M_t += a_tt D_t h^T + a_tt I       ->  da_tt += D_t^T dM h + tr dM,  dD_t += a_tt dM h,
//        (inclusive, h = A u_t)              dh = a_tt dM^T D_t
//   h = A u_t                          ->  dA += dh u_t^T,  du_t += A^T dh
//   D_s = u_s - ubar                   ->  du_s += dD_s,  dubar = -sum_s dD_s
//   ubar = sum_s a_ts u_s              ->  da_ts += u_s . dubar,  du_s += a_ts dubar
//   a = softmax(Q K^T / tau)           ->  detail::weights_backward (attention/backward.hpp)
//   A = W_K^T W_Q / tau                ->  dW_Q += W_K dA / tau,  dW_K += W_Q dA^T / tau
//   V = W_O W_V                        ->  dW_O += dV W_V^T,  dW_V += W_O^T dV
// The temperature is a fixed hyper-parameter and gets no gradient. Memory: the (N, N) weights
// and their gradient per head, the (p, p) blocks one query at a time; time O(N^2 p^2) per head.
#pragma once

#include <string>
#include <vector>

#include "../attention/backward.hpp"
#include "jacobian.hpp"

namespace suptok {

namespace detail {

// The backward of query_moment at query t: given dM = dL/dM_t (p, p), adds dL/dU to dU (N, p),
// dL/dA to dA (p, p) and dL/da_t. to row t of da (N, N). Arguments as in query_moment.
template <class S>
void query_moment_backward(matrix<S>& dU, matrix<S>& dA, matrix<S>& da, const matrix<S>& dM, index t,
                           const Eigen::Ref<const matrix<S>>& U, const matrix<S>& a, const matrix<S>& UA,
                           const matrix<S>& A, mask m) {
  const index end = past_end(t, m);
  if (end == 0) return;
  const auto a_t = a.row(t).head(end);                                // (end)
  const vector<S> ubar = (a_t * U.topRows(end)).transpose();          // (p)     ubar = sum_s a_ts u_s
  const matrix<S> D = U.topRows(end).rowwise() - ubar.transpose();    // (end, p) D_s = u_s - ubar
  const auto G = UA.topRows(end);                                     // (end, p) G_s = A^T u_s
  // M = D^T diag(a_t) G
  const matrix<S> DdM = D * dM;                                       // (end, p)
  da.row(t).head(end) += DdM.cwiseProduct(G).rowwise().sum().transpose();
  matrix<S> dD = a_t.transpose().asDiagonal() * (G * dM.transpose()); // (end, p)
  const matrix<S> dG = a_t.transpose().asDiagonal() * DdM;            // (end, p)
  // G = U A
  dU.topRows(end).noalias() += dG * A.transpose();                    // (end, p)
  dA.noalias() += U.topRows(end).transpose() * dG;                    // (p, p)
  if (m == mask::inclusive) {
    // M += a_tt D_t h^T + a_tt I,  h = A u_t
    const S a_tt = a(t, t);
    const vector<S> h = A * U.row(t).transpose();                     // (p)
    const vector<S> dMh = dM * h;                                     // (p)
    da(t, t) += D.row(t).dot(dMh) + dM.trace();
    dD.row(t) += a_tt * dMh.transpose();
    const vector<S> dh = a_tt * (dM.transpose() * D.row(t).transpose());  // (p)
    dA.noalias() += dh * U.row(t);                                    // (p, p)
    dU.row(t).noalias() += (A.transpose() * dh).transpose();
  }
  // D_s = u_s - ubar
  dU.topRows(end) += dD;
  const vector<S> dubar = -dD.colwise().sum().transpose();            // (p)
  // ubar = sum_s a_ts u_s
  da.row(t).head(end) += (U.topRows(end) * dubar).transpose();
  dU.topRows(end).noalias() += a_t.transpose() * dubar.transpose();   // (end, p)
}

template <class S>
void validate_block_gradients(const std::vector<matrix<S>>& dJ, index N, index p, const std::string& argument) {
  require(static_cast<index>(dJ.size()) == N, argument, "expected ", N, " blocks (one per token), got ",
          dJ.size());
  for (std::size_t t = 0; t < dJ.size(); ++t) {
    const std::string name = argument + "[" + std::to_string(t) + "]";
    require_shape(dJ[t], p, p, name);
    require_finite(dJ[t], name);
  }
}

// The backward on validated arguments.
template <class S>
attention_gradients<S> jacobian_blocks_backward_unchecked(const std::vector<matrix<S>>& dJ,
                                                          const Eigen::Ref<const matrix<S>>& U, const heads<S>& heads,
                                                          const attention_params& params) {
  const index N = U.rows(), p = U.cols();
  attention_gradients<S> g{matrix<S>::Zero(N, p), zero_like(heads)};
  head_pass<S> pass;
  for (std::size_t h = 0; h < heads.size(); ++h) {
    const head<S>& w = heads[h];
    head_forward<S>(pass, U, w, params);
    const matrix<S> A = logit_matrix(w, pass.tau);  // (p, p)
    const matrix<S> V = value_matrix(w);            // (p, p)
    const matrix<S> UA = U * A;                     // (N, p)
    matrix<S> dA = matrix<S>::Zero(p, p), dV = matrix<S>::Zero(p, p), da = matrix<S>::Zero(N, N);
    for (index t = 0; t < N; ++t) {
      const matrix<S>& dJ_t = dJ[static_cast<std::size_t>(t)];
      // J_t -= V M_t
      const matrix<S> M = query_moment<S>(t, U, pass.a, UA, A, params.causal_mask);  // (p, p)
      dV.noalias() -= dJ_t * M.transpose();
      const matrix<S> dM = -(V.transpose() * dJ_t);                                 // (p, p)
      query_moment_backward<S>(g.dU, dA, da, dM, t, U, pass.a, UA, A, params.causal_mask);
    }
    weights_backward<S>(g.dU, g.dW[h], da, U, w, pass);
    // A = W_K^T W_Q / tau
    g.dW[h].W_Q.noalias() += (w.W_K * dA) / pass.tau;              // (d_k, p)
    g.dW[h].W_K.noalias() += (w.W_Q * dA.transpose()) / pass.tau;  // (d_k, p)
    // V = W_O W_V
    g.dW[h].W_O.noalias() += dV * w.W_V.transpose();  // (p, d_v)
    g.dW[h].W_V.noalias() += w.W_O.transpose() * dV;  // (d_v, p)
  }
  return g;
}

}  // namespace detail

// Gradient of L = sum_t <dJ[t], J_t>_F with respect to U and every head's W_Q, W_K, W_V, W_O.
// dJ holds N blocks (p, p), finite.
template <class S>
attention_gradients<S> jacobian_blocks_backward(const std::vector<matrix<S>>& dJ, const_ref<S> U, const heads<S>& heads,
                                                const attention_params& params = {}) {
  detail::validate_attention<S>(U, heads, params);
  detail::validate_block_gradients<S>(dJ, U.rows(), U.cols(), "dJ");
  return detail::jacobian_blocks_backward_unchecked<S>(dJ, U, heads, params);
}

}  // namespace suptok
