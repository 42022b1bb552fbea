// suptok/cuda/barrier_backward.cuh: the gradients of L = sum_t db_t b_t, b_t = f(det J_t), with
// respect to U and every weight, on NVIDIA GPUs, packed form (docs/math.md sections 2.1, 2.2 and 3;
// nvcc only). Shapes and checks: cuda/barrier_plan.hpp; the workspace: cuda/barrier_layout.hpp.
//
// The forward of cuda/barrier_forward.cuh runs first (its sign, log|det| and b_t are written to
// `out`), leaving the LU of every J_t. Then, with F_t := dJ_t^T (row-major, so that the batched
// products need no transposes) and c_t = db_t f'(z) z, z = det J_t:
//   b_t = f(det J_t)          ->  dJ_t = c_t J_t^{-T}:  F_t = c_t J_t^{-1} (cublasXgetriBatched)
// and per head h, from the last (whose terms the forward leaves in the buffers) to the first, the
// forward's Q, K, a_ts, M_t, C_t and T_t recomputed:
//   J_t -= V_h T_t            ->  dV_h = -sum_t dJ_t T_t^T = -(sum_t T_t F_t)^T,
//                                 D_t := dT_t^T = -F_t V_h
//   T_t = C_t A_h             ->  dA_h^T = sum_t D_t C_t,  dC_t^T = A_h D_t
//   T_t += a_tt (I + d g^T)   ->  e_t := da_tt = tr D_t + (D_t d) . g,  dg = a_tt D_t d,
//     (inclusive; d = uc_t - m1,  dd = a_tt D_t^T g:  du_t += A_h^T dg + dd,  dm1 -= dd,
//      g = A_h u_t)               dA_h^T += u_t dg^T
//   C_t = m2 - m1 m1^T        ->  R_t = [w_ij (i <= j), dm1],  w_ii = dC_ii,  w_ij = dC_ij + dC_ji,
//                                 dm1 -= (dC + dC^T) m1  (R_t = 0 where P(t) holds at most one token:
//                                 C_t is 0 there as a function, as the forward sets it)
//   M_t = sum_s a_ts X_s      ->  da_ts = R_t . X_s (cuBLAS, rows in blocks against the keys they
//                                 see),  E_s = sum_t a_ts R_t (cuBLAS),
//                                 du_s += Sym(E_s) uc_s + E_s[m1 part],  Sym_ii = 2 E_ii, Sym_ij = E_ij
//   a = softmax(l)            ->  dl_ts = a_ts (da_ts - D_t),  D_t = sum_s a_ts da_ts  (a warp per
//                                 row; da_tt includes e_t under the inclusive mask)
//   l = Q K^T / tau           ->  dQ = dl K / tau,  dK = dl^T Q / tau,  dU += dQ W_Q + dK W_K,
//                                 dW_Q = dQ^T U + W_K dA_h / tau,  dW_K = dK^T U + W_Q dA_h^T / tau
//   V_h = W_O W_V             ->  dW_O = dV_h W_V^T,  dW_V = W_O^T dV_h
// The mean subtracted from the tokens is a constant here: C_t and d do not depend on it.
// Tokens with db_t = 0 or c_t = 0 (the clamp policy below eps) contribute nothing; a c_t that does
// not exist gives NaN gradients (docs/cuda.md): the exact policy at det J_t <= 0 (the CPU paths
// throw), a non-finite J_t, and an exactly singular J_t under the extended policy (a zero pivot:
// J_t^{-1} does not exist, the CPU paths take the cofactors from an SVD).
#pragma once

#include "barrier_backward_common.cuh"
#include "barrier_forward.cuh"
#include "projected_backward.cuh"

namespace suptok {
namespace detail {

// Per token of head h: R_t (w), e_t and dg_t (inclusive), and dd added to du_t, from dC_t^T (in dCt),
// D_t = dT_t^T (in D), the moments M_t, g_t (G), uc_t (Uc) and a_tt (P). One block per token;
// shared memory: m1, d, g and dd (4 p elements).
template <class S>
__global__ void token_backward_kernel(S* R, S* e, S* DG, batched_view<S> dU, const S* dCt, const S* D, const S* M,
                                      const S* G, const S* Uc, const S* P, index N, index p, mask m) {
  extern __shared__ unsigned char shared_bytes[];
  S* m1 = reinterpret_cast<S*>(shared_bytes);
  S *d = m1 + p, *g = d + p, *dd = g + p;
  const index token = blockIdx.x, b = token / N, t = token % N, w = barrier_packed_width(p), pp = p * p;
  const bool inclusive = m == mask::inclusive;
  S* r = R + token * w;
  if (past_end(t, m) <= 1) {  // C_t = 0 and T_t = a_tt I with a_tt = 1 or absent: constant in U
    for (index k = threadIdx.x; k < w; k += blockDim.x) r[k] = S(0);
    for (index k = threadIdx.x; inclusive && k < p; k += blockDim.x) DG[token * p + k] = S(0);
    if (threadIdx.x == 0 && inclusive) e[token] = S(0);
    return;
  }
  const S* c = dCt + token * pp;
  const S* Dt = D + token * pp;
  for (index k = threadIdx.x; k < p; k += blockDim.x) {
    m1[k] = M[token * w + w - p + k];
    if (inclusive) {
      d[k] = Uc[token * p + k] - m1[k];
      g[k] = G[token * p + k];
    }
  }
  __syncthreads();
  if (inclusive) {
    const S a_tt = P[token * N + t];
    S trace_part = 0;
    for (index i = threadIdx.x; i < p; i += blockDim.x) {
      S Dd = 0, DTg = 0;  // (D_t d)_i and (D_t^T g)_i
      for (index j = 0; j < p; ++j) {
        Dd += Dt[i * p + j] * d[j];
        DTg += Dt[j * p + i] * g[j];
      }
      trace_part += Dt[i * p + i] + Dd * g[i];
      DG[token * p + i] = a_tt * Dd;
      dd[i] = a_tt * DTg;
      dU.row(b, t)[i] += dd[i];
    }
    const S e_t = block_sum(trace_part);
    if (threadIdx.x == 0) e[token] = e_t;
    __syncthreads();  // dd complete
  }
  for (index i = 0, at = 0; i < p; at += p - i, ++i)  // w_ii = dC_ii, w_ij = dC_ij + dC_ji
    for (index j = i + threadIdx.x; j < p; j += blockDim.x)
      r[at + j - i] = i == j ? c[i * p + i] : c[i * p + j] + c[j * p + i];
  for (index i = threadIdx.x; i < p; i += blockDim.x) {  // dm1 = -(dC + dC^T) m1 [- dd]
    S sum = 0;
    for (index j = 0; j < p; ++j) sum += (c[i * p + j] + c[j * p + i]) * m1[j];
    r[w - p + i] = -sum - (inclusive ? dd[i] : S(0));
  }
}

// du_s += Sym(E_s) uc_s + E_s[m1 part] for the packed E_s (w) of every token. One block per token,
// uc_s in shared memory (p elements).
template <class S>
__global__ void packed_backward_kernel(batched_view<S> dU, const S* E, const S* Uc, index N, index p) {
  extern __shared__ unsigned char shared_bytes[];
  S* x = reinterpret_cast<S*>(shared_bytes);
  const index token = blockIdx.x, b = token / N, t = token % N, w = barrier_packed_width(p);
  const S* Es = E + token * w;
  for (index k = threadIdx.x; k < p; k += blockDim.x) x[k] = Uc[token * p + k];
  __syncthreads();
  for (index i = threadIdx.x; i < p; i += blockDim.x) {
    S sum = Es[w - p + i];
    for (index j = 0; j < p; ++j) {
      const index lo = i < j ? i : j, hi = i < j ? j : i;
      sum += (i == j ? S(2) : S(1)) * Es[lo * p - lo * (lo - 1) / 2 + (hi - lo)] * x[j];
    }
    dU.row(b, t)[i] += sum;
  }
}

// The backward of head h (the file comment's per-head lines), adding to grad.dU and writing head h
// of the weight gradients. r.buf.J holds F_t; the head's forward terms are recomputed unless
// `recompute` is false (the last head of the forward pass: its terms are still in the buffers).
template <class S>
void barrier_head_backward(const cuda_barrier_run<S>& r, const cuda_barrier_gradients<S>& grad, index h,
                           bool recompute) {
  const auto& [Wq, Wk, Wv, Wo] = r.heads;
  const cuda_barrier_buffers<S>& b = r.buf;
  const index B = r.B, N = r.N, p = r.p, d_k = r.d_k, d_v = r.d_v, w = r.w, pp = r.pp, tokens = r.tokens;
  const S* A_h = b.A + h * pp;
  const int threads = cuda_barrier_threads;
  const batched_view<S>& dU = grad.dU;
  if (recompute) barrier_head_terms(r, h);
  // dV_h^T = -sum_t T_t F_t;  D_t = -F_t V_h (into T);  dA_h^T = sum_t D_t C_t;  dC_t^T = A_h D_t (into C)
  gemm_batched<S>(r.blas, p, p, p, S(1), {b.T, p, pp}, {b.J, p, pp}, S(0), b.Z, p, pp, tokens,
                  "cublasXgemmStridedBatched(T F)");
  sum_blocks<S>(r.blas, b.Z, pp, tokens, b.ones, b.SV, "cublasXgemv(sum of T F)");
  gemm_batched<S>(r.blas, p, p, p, S(-1), {b.J, p, pp}, {b.V + h * pp, p, 0}, S(0), b.T, p, pp, tokens,
                  "cublasXgemmStridedBatched(F V)");
  gemm_batched<S>(r.blas, p, p, p, S(1), {b.T, p, pp}, {b.C, p, pp}, S(0), b.Z, p, pp, tokens,
                  "cublasXgemmStridedBatched(D C)");
  sum_blocks<S>(r.blas, b.Z, pp, tokens, b.ones, b.SA, "cublasXgemv(sum of D C)");
  gemm_batched<S>(r.blas, p, p, p, S(1), {A_h, p, 0}, {b.T, p, pp}, S(0), b.C, p, pp, tokens,
                  "cublasXgemmStridedBatched(A D)");
  token_backward_kernel<S><<<unsigned(tokens), threads, 4 * std::size_t(p) * sizeof(S), r.stream>>>(
      b.R, b.e, b.DG, dU, b.C, b.T, b.M, b.G, b.Uc, b.P, N, p, r.m);
  check_launch("token_backward_kernel launch");
  if (r.m == mask::inclusive) {  // dA_h^T += U^T DG,  dU += DG A_h
    gemm_batched<S>(r.blas, p, p, tokens, S(1), {b.Un, p, 0, true}, {b.DG, p, 0}, S(1), b.SA, p, 0, 1,
                    "cublasXgemmStridedBatched(U^T DG)");
    gemm_batched<S>(r.blas, N, p, p, S(1), {b.DG, p, N * p}, {A_h, p, 0}, S(1), dU.data, dU.row_stride,
                    dU.batch_stride, B, "cublasXgemmStridedBatched(DG A)");
  }
  // da_ts = R_t . X_s, then dl_ts in place; E = a^T R (into M)
  causal_moment_gradients(r, b.R, b.X, w, b.dP);
  softmax_backward_kernel<S><<<blocks_for(tokens * 32, threads), threads, 0, r.stream>>>(b.dP, b.P, b.e, tokens, N,
                                                                                        r.m);
  check_launch("softmax_backward_kernel launch");
  moment_sources(r, b.P, b.R, w, b.M);
  packed_backward_kernel<S><<<unsigned(tokens), threads, std::size_t(p) * sizeof(S), r.stream>>>(dU, b.M, b.Uc, N, p);
  check_launch("packed_backward_kernel launch");
  // dQ = dl K / tau, dK = dl^T Q / tau, dU += dQ W_Q + dK W_K
  logits_backward(r, b.dP, b.Q, b.K, b.dQ, b.dK);
  add_projection_gradients(r, h, b.dQ, b.dK, dU);
  // The weights of head h: dA_h = SA^T, dV_h = -SV^T
  const auto weight_gradient = [&](const batched_view<S>& out, index rows, index cols, index inner,
                                   const blas_operand<S>& left, const blas_operand<S>& right, S alpha, S beta,
                                   const char* call) {
    gemm_batched<S>(r.blas, rows, cols, inner, alpha, left, right, beta, out.row(h, 0), out.row_stride, 0, 1, call);
  };
  weight_gradient(grad.dW_Q, d_k, p, tokens, {b.dQ, d_k, 0, true}, {b.Un, p}, S(1), S(0), "cublasXgemm(dQ^T U)");
  weight_gradient(grad.dW_Q, d_k, p, p, {Wk.row(h, 0), Wk.row_stride}, {b.SA, p, 0, true}, r.inv_tau, S(1),
                  "cublasXgemm(W_K dA)");
  weight_gradient(grad.dW_K, d_k, p, tokens, {b.dK, d_k, 0, true}, {b.Un, p}, S(1), S(0), "cublasXgemm(dK^T U)");
  weight_gradient(grad.dW_K, d_k, p, p, {Wq.row(h, 0), Wq.row_stride}, {b.SA, p}, r.inv_tau, S(1),
                  "cublasXgemm(W_Q dA^T)");
  weight_gradient(grad.dW_O, p, d_v, p, {b.SV, p, 0, true}, {Wv.row(h, 0), Wv.row_stride, 0, true}, S(-1), S(0),
                  "cublasXgemm(dV W_V^T)");
  weight_gradient(grad.dW_V, d_v, p, p, {Wo.row(h, 0), Wo.row_stride, 0, true}, {b.SV, p, 0, true}, S(-1), S(0),
                  "cublasXgemm(W_O^T dV)");
}

}  // namespace detail

// The barrier of every token (as barrier_per_token(cuda, ...), written to `out`) and the gradients
// of L = sum_t db_t b_t with respect to U and the heads, written to `grad` (db (B, N, 1) in device
// memory; for the mean penalty of the CPU paths, db_t = 1 / n for the n tokens t >=
// first_nontrivial(mask) of all sequences and 0 for the others), in the packed form (general, the
// default), the projected form (cuda/projected_backward.cuh) or the cheaper of the two
// (automatic). The workspace holds barrier_workspace_bytes(cuda, B, N, heads, attention, true,
// form) bytes. Enqueued on backend.stream; nothing allocated or synchronised. Throws
// suptok::error naming the argument (before anything is enqueued) and suptok::cuda_error naming
// the CUDA or cuBLAS call that failed.
template <class S>
void barrier_backward(cuda backend, const cuda_barrier_gradients<S>& grad, const cuda_token_barrier<S>& out,
                      const batched_view<const S>& db, const batched_view<const S>& U, const cuda_heads<S>& heads,
                      const barrier_params& barrier, const attention_core_params& attention, void* workspace,
                      std::size_t workspace_bytes, jacobian_form form = jacobian_form::general) {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "the CUDA barrier computes in float or double");
  detail::require(backend.blas != nullptr, "backend.blas", "a cuBLAS handle is needed (cublasCreate)");
  const jacobian_form resolved = detail::validate_cuda_barrier_backward(grad, out, db, U, heads, attention, barrier,
                                                                        workspace, workspace_bytes, form);
  const detail::blas_scope scope(backend.blas, backend.stream);
  if (resolved == jacobian_form::projected) {
    detail::projected_backward_pass(
        detail::cuda_projected_run<S>(backend, U, heads, attention, workspace, detail::barrier_pass::backward), grad,
        db, out, barrier);
    return;
  }
  const detail::cuda_barrier_run<S> r(backend, U, heads, attention, workspace, detail::barrier_pass::backward);
  const detail::cuda_barrier_buffers<S>& b = r.buf;
  detail::barrier_forward_pass(r, out, barrier);
  detail::backward_start(r, r.p, b.J, b.J_ptr, b.pivots, b.info, b.Z, b.Z_ptr, b.ones, b.Un, grad, db, out, barrier);
  for (index h = r.H - 1; h >= 0; --h) detail::barrier_head_backward(r, grad, h, h != r.H - 1);
}

}  // namespace suptok
