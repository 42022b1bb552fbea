// suptok/simd/barrier_backward.hpp: gradients of the log-barrier penalty, xsimd fast path
// (float, double). Same gradients as barrier_penalty_backward of barrier/penalty.hpp.
//
// Each line differentiates the forward line of simd/barrier_forward.hpp quoted beside it:
//   b_t = f(det J_t)                 ->  dJ_t = weight * db/dJ: -J_t^{-T} on the log branch
//                                        (simd/block_inverse.hpp), else barrier/block.hpp's
//   J_t -= V M_t                     ->  dV -= dJ_t M_t^T,  dM = -V^T dJ_t
//     (one head, J'_t = I - M_t V: dV -= M_t^T dJ'_t, dM = -dJ'_t V^T, folded into two products per
//      token, see simd_barrier_token_backward)
//   M_t = C_t A                      ->  dC = dM A^T,  dA += C_t dM
//   M_t += a_tt I + a_tt d h^T       ->  e_t := da_tt = tr dM + d . dM h,  dd = a_tt dM h,
//        (inclusive; d = x_t - m1,        dh = a_tt dM^T d,  dA += dh u_t^T,  du_t += A^T dh + dd,
//         h = A u_t)                      dm1 -= dd
//   C_t = m2 - m1 m1^T               ->  dm2 = dC,  dm1 -= (dC + dC^T) m1
//   [m2, m1] = sum_s a_ts X_s        ->  da_ts = <R_t, X_s>,  R_t := [w_ij (i <= j), dm1] with
//                                        w_ii = dC_ii, w_ij = dC_ij + dC_ji (packed like X_s);
//                                        E_s := sum_t a_ts R_t,  dx_s = Sym(E_s) x_s + E_s[m1 part]
//                                        (Sym_ij = w_ij, Sym_ii = 2 w_ii: (dm2 + dm2^T) x_s)
//   a = softmax(l)                   ->  dl_ts = a_ts (da_ts - D_t),  D_t = <R_t, [m2_t, m1_t]> + a_tt e_t
//                                        (+ a_tt e_t at s = t, inclusive)
//   l = Q K^T / tau, Q, K = U W^T    ->  dQ, dK, dW_Q, dW_K, dU as attention/backward.hpp
//   A = W_K^T W_Q / tau, V = W_O W_V ->  dW_Q += W_K dA / tau, dW_K += W_Q dA^T / tau,
//                                        dW_O += dV W_V^T, dW_V += W_O^T dV
// The centre c of the keys is a constant: C_t does not depend on it. The three (N, N)-sized
// products (da = R X^T, E = a^T R, and dl's dQ, dK) are the fused key-tile kernel of
// simd/attention_backward.hpp with X as the values and R as the upstream output gradient: no
// (N, N) matrix is formed. Workspace O(N p^2) per head (barrier_workspace_bytes).
// Threads: OpenMP over tokens and over key tiles (as simd/attention_backward.hpp).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "attention_backward.hpp"
#include "barrier_forward.hpp"
#include "block_inverse.hpp"

namespace suptok {
namespace detail {

// Overwrites the blocks ps.J with dJ_t = weight * db_t/dJ_t for the counted tokens, 0 for the others.
template <class S>
void simd_barrier_block_gradients(simd_barrier_pass<S>& ps, const S& weight, const barrier_params& barrier, mask m,
                                  const std::string& argument) {
  const index p = ps.p, first = first_nontrivial(m);
  for (index t = first; t < ps.N; ++t)  // the exact policy's error, thrown outside the threads
    if (barrier.policy == extension::exact && !on_log_branch(ps.ld[std::size_t(t)], barrier))
      barrier_block_backward_unchecked<S>(ps.J.middleRows(t * p, p), ps.ld[std::size_t(t)], barrier, argument,
                                          token_name{t});
  ps.J.topRows(std::min(first, ps.N) * p).setZero();
#pragma omp parallel if (simd_kernels::worth_threads(simd_token_flops(ps.N, p)))
  {
    simd_kernels::block_inverse_scratch<S> scratch;
#pragma omp for schedule(static)
    for (index t = first; t < ps.N; ++t) {
      const signed_log_det<S>& ld = ps.ld[std::size_t(t)];
      if (on_log_branch(ld, barrier) && scale_inverse_transpose<S>(ps.J.data() + t * p * p, p, -weight, scratch))
        continue;  // db/dJ = -J^{-T}
      ps.J.middleRows(t * p, p) =  // the policy's block gradient (rare tokens)
          weight * barrier_block_backward_unchecked<S>(ps.J.middleRows(t * p, p), ld, barrier, argument, token_name{t});
    }
  }
}

// Per-token backward of head h: R_t into g.dO, D_t into g.D, the inclusive a_tt e_t into ae, the
// direct terms of du_t into dU, and dA, dV (p, p). Tokens with centred moments (simd_refine_moments)
// keep R_t = 0 and D_t = a_tt e_t for the key tiles; their R_t, with only the inclusive part of dm1
// in its m1 slots, goes to row rc[t] of Rc for simd_barrier_centred_backward.
// One head (blocks J'_t = I - C_t B - a_tt (V + d g^T), B = A V, g = V^T h; dM := -dJ' V^T):
//   dC = -dJ' B^T,  G = sum_t C_t dJ'_t  ->  dA = -G V^T,  dV = -A^T G - sum_t a_tt (dJ' + h (dJ'^T d)^T)
//   inclusive: e_t = tr dM + d . dM h = -(<dJ', V> + (dJ'^T d) . g),  dM h = -dJ' g,
//              dh = a_tt dM^T d = -a_tt V dJ'^T d
// two (p, p) products per token instead of four (and no M_t).
template <class S>
void simd_barrier_token_backward(simd_head_grad<S>& g, vector<S>& ae, matrix<S>& Rc, std::vector<index>& rc,
                                 matrix<S>& dU, matrix<S>& dA, matrix<S>& dV, const matrix<S>& dJ,
                                 const simd_barrier_pass<S>& ps, std::size_t h, const Eigen::Ref<const matrix<S>>& U,
                                 mask m) {
  const index N = ps.N, p = ps.p, W = ps.W, p_pad = ps.p_pad;
  const simd_head<S>& w = ps.ws[h];
  const std::vector<char>& centred = ps.centred[h];
  const matrix<S>& A = ps.A[h];
  const matrix<S>& V = ps.V[h];
  rc.assign(std::size_t(N), -1);
  index n_centred = 0;
  for (index t = 0; t < N; ++t)
    if (centred[std::size_t(t)]) rc[std::size_t(t)] = n_centred++;
  Rc.resize(n_centred, W);
  g.dO.resize(N, W);  // every row written below
  g.D.resize(N);
  ae.setZero(N);
  dA.setZero(p, p);
  dV.setZero(p, p);
#pragma omp parallel if (simd_kernels::worth_threads(3 * simd_token_flops(N, p)))
  {
    simd_token<S> k;
    matrix<S> dM(p, p), dC(p, p_pad), dA_t = matrix<S>::Zero(p, p), dV_t = matrix<S>::Zero(p, p);
    matrix<S> dJ_pad = matrix<S>::Zero(p, p_pad), G = matrix<S>::Zero(p, p_pad), CdJ(p, p_pad);  // one head
    vector<S> dm1(p), dMh(p), dh(p), dJd(p);
#pragma omp for schedule(static)
    for (index t = 0; t < N; ++t) {
      const auto dJ_t = dJ.middleRows(t * p, p);
      const bool two_pass = centred[std::size_t(t)] != 0;
      simd_token_moment(k, ps, w, two_pass, h, U, t, m, moment_fill::full);
      S e = S(0);  // inclusive: da_tt
      if (ps.one_head) {
        simd_kernels::gemm_tile<S>(dC.data(), p_pad, dJ_t.data(), p, 1, ps.Bt_pad.data(), p_pad, p, p, p_pad,
                                   false);  // dJ' B^T (p, p) (p, p_pad)
        dC = -dC;
        dJ_pad.leftCols(p) = dJ_t;
        simd_kernels::gemm_tile<S>(CdJ.data(), p_pad, k.C.data(), p, 1, dJ_pad.data(), p_pad, p, p, p_pad,
                                   false);  // C_t dJ'_t, then added to G: summed into G one product
        G += CdJ;                           // at a time, its p terms would each round at G's scale
        if (m == mask::inclusive) {
          dJd.noalias() = dJ_t.transpose() * k.d;
          dMh.noalias() = -(dJ_t * k.g);
          e = -((dJ_t.array() * V.array()).sum() + dJd.dot(k.g));
          dh.noalias() = -k.a_tt * (V * dJd);
          dV_t -= k.a_tt * dJ_t;
          dV_t.noalias() -= k.a_tt * k.hv * dJd.transpose();
        }
      } else {
        dV_t.noalias() -= dJ_t * k.M.leftCols(p).transpose();  // J_t -= V M_t
        dM.noalias() = -(V.transpose() * dJ_t);
        dC.leftCols(p).noalias() = dM * A.transpose();          // M_t = C_t A
        dA_t.noalias() += k.C * dM;
        if (m == mask::inclusive) {                             // M_t += a_tt I + a_tt d h^T
          dMh.noalias() = dM * k.hv;
          e = dM.trace() + k.d.dot(dMh);
          dh.noalias() = k.a_tt * (dM.transpose() * k.d);
        }
      }
      const auto dC_t = dC.leftCols(p);
      const Eigen::Map<const vector<S>> m1(w.O.data() + t * W + p * (p + 1) / 2, p);
      dm1.setZero();
      if (!two_pass) {                              // C = m2 - m1 m1^T
        dm1.noalias() -= dC_t * m1;
        dm1.noalias() -= dC_t.transpose() * m1;
      }
      if (m == mask::inclusive) {                   // e, dM h and dh of either form
        ae(t) = k.a_tt * e;
        dA_t.noalias() += dh * U.row(t);
        dU.row(t).noalias() += (A.transpose() * dh + k.a_tt * dMh).transpose();
        dm1 -= k.a_tt * dMh;
      }
      S* const r0 = two_pass ? Rc.data() + rc[std::size_t(t)] * W : g.dO.data() + t * W;
      S* r = r0;                                    // R_t = [w_ij (i <= j), dm1]
      for (index i = 0; i < p; ++i) {
        *r++ = dC_t(i, i);
        for (index j = i + 1; j < p; ++j) *r++ = dC_t(i, j) + dC_t(j, i);
      }
      for (index i = 0; i < p; ++i) *r++ = dm1(i);
      std::fill(r, r0 + W, S(0));                    // the padding slots
      if (two_pass) std::fill_n(g.dO.data() + t * W, W, S(0));
      g.D(t) = (two_pass ? S(0) : simd_kernels::dot(r0, w.O.data() + t * W, W)) + ae(t);
    }
    if (ps.one_head) {  // dA = -G V^T, dV -= A^T G
      dA_t.noalias() -= G.leftCols(p) * V.transpose();
      dV_t.noalias() -= A.transpose() * G.leftCols(p);
    }
#pragma omp critical
    {
      dA += dA_t;
      dV += dV_t;
    }
  }
}

// The fused key-tile kernel of simd/attention_backward.hpp on head h (g.Vt = X^T already): E = a^T R into g.dV,
// g.dK = dl^T Q / tau and dl K into the per-thread g.dQ, summed into g.dQ[0].
template <class S>
void simd_barrier_key_tiles(simd_head_grad<S>& g, const simd_barrier_pass<S>& ps, const simd_head<S>& w, mask m) {
  g.K.setZero(w.n_pad, w.dk_pad);
  g.K.topLeftCorner(w.N, w.d_k) = w.Kt.leftCols(w.N).transpose();  // (N, d_k)
  g.dK.setZero(w.n_pad, w.dk_pad);
  g.dV.resize(w.n_pad, ps.W);  // every key tile's rows written by its product
  g.dQ.resize(std::size_t(simd_kernels::max_threads()));
  for (matrix<S>& dQ : g.dQ) dQ.setZero(w.N, w.dk_pad);
  simd_backward_key_tiles(g, w, m);
}

// The key-tile terms of the tokens with centred moments, from their R_t (rows rc[t] of Rc, dm1 slots
// holding only the inclusive part g_t): with y_s = x_s - m1_t and Sym = dC_t + dC_t^T,
//   dl_ts = a_ts (y_s^T dC_t y_s - <dC_t, C_t> + g_t . y_s)    (+ the a_tt e_t terms of the tiles)
//   dx_s += a_ts (Sym y_s + g_t),  dQ_t += sum_s dl_ts k_s / tau,  dK_s += dl_ts Q_t / tau
// the same gradient as the key tiles' <R_t, X_s> - D_t, without its cancellation. dQ, dK: (N, d_k).
template <class S>
void simd_barrier_centred_backward(matrix<S>& dU, matrix<S>& dQ, matrix<S>& dK, const matrix<S>& Rc,
                                   const std::vector<index>& rc, const simd_barrier_pass<S>& ps,
                                   const simd_head<S>& w, mask m) {
  if (Rc.rows() == 0) return;
  const index N = ps.N, p = ps.p, W = ps.W, packed = p * (p + 1) / 2;
#pragma omp parallel if (simd_kernels::worth_threads(double(Rc.rows()) * double(N) * double(p) * double(p)))
  {
    matrix<S> dX = matrix<S>::Zero(N, p), dK_t = matrix<S>::Zero(N, w.d_k), Y, Z, Sym(p, p);
    vector<S> a, dl;
#pragma omp for schedule(dynamic, 4)
    for (index t = 0; t < N; ++t) {
      if (rc[std::size_t(t)] < 0) continue;
      const index n = past_end(t, m);
      const S* r = Rc.data() + rc[std::size_t(t)] * W;
      const S* o = w.O.data() + t * W;  // [C_t packed, m1_t]
      for (index i = 0, k = 0; i < p; ++i) {
        Sym(i, i) = S(2) * r[k++];
        for (index j = i + 1; j < p; ++j) Sym(i, j) = Sym(j, i) = r[k++];
      }
      const Eigen::Map<const vector<S>> g_t(r + packed, p);
      const S dC_dot_C = Eigen::Map<const vector<S>>(r, packed).dot(Eigen::Map<const vector<S>>(o, packed));
      simd_centred_past(a, Y, ps, w, t, n, o + packed);
      Z.noalias() = Y * Sym;                                                    // (n, p)
      dl = a.array() * (S(0.5) * (Z.array() * Y.array()).rowwise().sum() - dC_dot_C + (Y * g_t).array());
      Z.rowwise() += g_t.transpose();
      dX.topRows(n) += (Z.array().colwise() * a.array()).matrix();
      dQ.row(t).noalias() += (w.Kt.topLeftCorner(w.d_k, n) * dl).transpose() / w.tau;
      dK_t.topRows(n).noalias() += dl * w.Qs.row(t).head(w.d_k);
    }
#pragma omp critical
    {
      dU += dX;
      dK += dK_t;
    }
  }
}

// The gradient of weight * sum_{counted t} b_t of one validated sequence into dU (N, p) and dW
// (accumulated over calls).
template <class S>
void simd_barrier_backward_sequence(S& sum, matrix<S>& dU, heads<S>& dW, simd_barrier_pass<S>& ps,
                                    const Eigen::Ref<const matrix<S>>& U, const heads<S>& heads, const S& weight,
                                    const barrier_params& barrier, const attention_params& attention,
                                    const std::string& argument) {
  const mask m = attention.causal_mask;
  simd_barrier_forward_sequence<S>(ps, U, heads, barrier, attention, true, argument);
  const index N = ps.N, p = ps.p, W = ps.W;
  sum = counted_sum<S>(ps.b, m);
  dU.setZero(N, p);
  simd_barrier_block_gradients<S>(ps, weight, barrier, m, argument);  // ps.J: dJ (N p, p)
  const matrix<S>& dJ = ps.J;
  simd_head_grad<S>& g = ps.grad;
  g.Vt.resize(W, ps.X.rows() + simd_skew<S>);  // X^T (W, n_pad), the values of every head's key tiles
  g.Vt.leftCols(ps.X.rows()) = ps.X.transpose();
  g.Vt.rightCols(simd_skew<S>).setZero();
  ps.X = matrix<S>();                            // released before R and E exist (peak memory)
  vector<S> ae;  // (N) inclusive: a_tt e_t
  matrix<S> dA, dV, Rc;
  std::vector<index> rc;
  for (std::size_t h = 0; h < heads.size(); ++h) {
    const simd_head<S>& w = ps.ws[h];
    simd_barrier_token_backward(g, ae, Rc, rc, dU, dA, dV, dJ, ps, h, U, m);
    simd_barrier_key_tiles(g, ps, w, m);
    matrix<S> dQ = g.dQ[0].leftCols(w.d_k) / w.tau;  // (N, d_k)
    matrix<S> dK = g.dK.topLeftCorner(N, w.d_k);      // (N, d_k)
    if (m == mask::inclusive)                         // dl_tt += a_tt e_t
      for (index t = 0; t < N; ++t) {
        dQ.row(t) += (ae(t) / w.tau) * w.Kt.col(t).transpose();
        dK.row(t) += ae(t) * w.Qs.row(t).head(w.d_k);
      }
    simd_barrier_centred_backward(dU, dQ, dK, Rc, rc, ps, w, m);
    dW[h].W_Q.noalias() += dQ.transpose() * U;  // (d_k, p)
    dW[h].W_K.noalias() += dK.transpose() * U;  // (d_k, p)
    dU.noalias() += dQ * heads[h].W_Q + dK * heads[h].W_K;
    // dx_s = Sym(E_s) x_s + E_s[m1 part]
#pragma omp parallel for schedule(static) if (simd_kernels::worth_threads(double(N) * double(W)))
    for (index s = 0; s < N; ++s) {
      const S* E = g.dV.data() + s * W;  // row i of the packed E_s: E_ii, then E_ij for j > i
      const Eigen::Map<const vector<S>> x(ps.Xc.data() + s * p, p);
      Eigen::Map<vector<S>> du(dU.data() + s * p, p);
      for (index i = 0; i < p; E += p - i, ++i) {
        const index n = p - 1 - i;
        const Eigen::Map<const vector<S>> e(E + 1, n);
        du(i) += S(2) * E[0] * x(i) + e.dot(x.tail(n));  // the upper triangle's row i
        du.tail(n) += x(i) * e;                          // and its column i
      }
      du += Eigen::Map<const vector<S>>(E, p);
    }
    // A = W_K^T W_Q / tau, V = W_O W_V
    dW[h].W_Q.noalias() += (heads[h].W_K * dA) / w.tau;
    dW[h].W_K.noalias() += (heads[h].W_Q * dA.transpose()) / w.tau;
    dW[h].W_O.noalias() += dV * heads[h].W_V.transpose();
    dW[h].W_V.noalias() += heads[h].W_O.transpose() * dV;
  }
}

// simd_barrier_backward_sequence, or the reference path where simd_barrier_prefers_reference.
template <class S>
void simd_barrier_gradients(S& sum, matrix<S>& dU, heads<S>& dW, simd_barrier_pass<S>& ps,
                            const Eigen::Ref<const matrix<S>>& U, const heads<S>& heads, const S& weight,
                            const barrier_params& barrier, const attention_params& attention,
                            const std::string& argument) {
  if (simd_barrier_prefers_reference<S>(U.rows(), U.cols(), heads.size()))
    sum = sequence_barrier_accumulate<S>(dU, dW, U, heads, weight, barrier, attention, argument);
  else
    simd_barrier_backward_sequence<S>(sum, dU, dW, ps, U, heads, weight, barrier, attention, argument);
}

}  // namespace detail

// The penalty of one sequence and its gradients with respect to U and the heads; `workspace` keeps
// the buffers across calls (barrier_workspace of simd/barrier_forward.hpp: the backward's are
// about barrier_workspace_bytes(simd{}, N, heads, true) bytes).
template <class S>
barrier_gradients<S> barrier_penalty_backward(simd, const_ref<S> U, const heads<S>& heads,
                                              const barrier_params& barrier, const attention_params& attention,
                                              barrier_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_barrier(barrier);
  detail::validate_attention<S>(U, heads, attention, "U", "attention");
  const index n = detail::counted_tokens(U.rows(), attention.causal_mask);
  barrier_gradients<S> r{S(0), {matrix<S>::Zero(U.rows(), U.cols()), detail::zero_like(heads)}};
  if (n == 0) return r;
  S sum = S(0);
  detail::simd_barrier_gradients<S>(sum, r.grad.dU, r.grad.dW, workspace.buffers, U, heads, S(1) / S(n), barrier,
                                    attention, "U");
  r.penalty = sum / S(n);
  return r;
}

template <class S>
barrier_gradients<S> barrier_penalty_backward(simd, const_ref<S> U, const heads<S>& heads,
                                              const barrier_params& barrier, const attention_params& attention = {}) {
  barrier_workspace<S> workspace;
  return barrier_penalty_backward<S>(simd{}, U, heads, barrier, attention, workspace);
}

// The batch penalty and its gradients: dU per sequence, dW summed over the batch.
template <class S>
barrier_gradients<S, attention_batch_gradients<S>> barrier_penalty_batch_backward(
    simd, std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads, const barrier_params& barrier,
    const attention_params& attention, barrier_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_barrier(barrier);
  detail::validate_batch<S>(Us, heads, attention, "attention");
  index n = 0;
  for (const matrix<S>& U : Us) n += detail::counted_tokens(U.rows(), attention.causal_mask);
  barrier_gradients<S, attention_batch_gradients<S>> r{S(0),
                                                       {std::vector<matrix<S>>(Us.size()), detail::zero_like(heads)}};
  const S weight = n == 0 ? S(0) : S(1) / S(n);
  S total = S(0);
  for (std::size_t b = 0; b < Us.size(); ++b) {
    r.grad.dU[b].setZero(Us[b].rows(), Us[b].cols());
    if (detail::counted_tokens(Us[b].rows(), attention.causal_mask) == 0) continue;
    S sum = S(0);
    detail::simd_barrier_gradients<S>(sum, r.grad.dU[b], r.grad.dW, workspace.buffers, Us[b], heads, weight, barrier,
                                      attention, "Us[" + std::to_string(b) + "]");
    total += sum;
  }
  if (n > 0) r.penalty = total / S(n);
  return r;
}

template <class S>
barrier_gradients<S, attention_batch_gradients<S>> barrier_penalty_batch_backward(
    simd, std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads, const barrier_params& barrier,
    const attention_params& attention = {}) {
  barrier_workspace<S> workspace;
  return barrier_penalty_batch_backward<S>(simd{}, Us, heads, barrier, attention, workspace);
}

}  // namespace suptok
