// suptok/cuda/projected_backward.cuh: the gradients of L = sum_t db_t b_t, b_t = f(det J_t), with
// respect to U and every weight on NVIDIA GPUs, projected form (docs/math.md sections 2.3 and 3;
// nvcc only). The entry point is barrier_backward(cuda, ..., jacobian_form::projected)
// (cuda/barrier_backward.cuh); the workspace: cuda/barrier_layout.hpp.
//
// The projected forward (cuda/projected_forward.cuh) runs first and leaves the LU of every
// J'_t = I - K_t. With F_t = c_t J'_t^{-1} (row-major, dJ'_t = F_t^T, so dK_t = -F_t^T) and
// F^h_t = F_t[:, h d_v : (h + 1) d_v] (n, d_v), per head h (the last first, whose terms the forward
// leaves in the buffers; the others' recomputed):
//   J'_t[h] -= X_t PQ_h        ->  dX_t = -F^h_t^T PQ_h^T,  dPQ_h = -sum_t X_t^T F^h_t^T
//   inclusive mask: J'_t[h] -= a_tt (VO_h + dv_t c_t^T),  dv_t = v_t - vbar_t,  c_t = KO_h^T q_t
//                              ->  e_t := da_tt = -<F^h_t^T, VO_h> - dv_t^T F^h_t^T c_t,
//                                  ddv_t = -a_tt F^h_t^T c_t,  dc_t = -a_tt F^h_t dv_t,
//                                  dVO_h = -sum_t a_tt F^h_t^T,  dKO_h = sum_t q_t dc_t^T,
//                                  dq_t += KO_h dc_t
//   X_t = m_vk - vbar kbar^T   ->  R_t = [dX_t, -dX_t kbar - ddv_t, -dX_t^T vbar]  (0 where P(t)
//                                  holds at most one token: X_t and dv_t are 0 there as functions)
//   M_t = sum_s a_ts Z_s       ->  da_ts = R_t . Z_s,  E_s = sum_t a_ts R_t  (as the packed backward)
//   Z_s = [vec(v k^T), v, k]   ->  dv_s = E_vk k_s + E_v + ddv_s,  dk_s = E_vk^T v_s + E_k
//   v_s = W_V uc_s, k_s = W_K uc_s  ->  du_s += W_V^T dv_s + W_K^T dk_s,  dW_V += dv uc^T,  dW_K += dk uc^T
//   softmax and logits         ->  as the packed backward (da_tt += e_t), dQ += dc KO_h^T
//   PQ_h = W_Q^h W / tau       ->  dW_Q^h += dPQ_h W^T / tau,  dW += W_Q^h^T dPQ_h / tau
//   KO_h, VO_h (inclusive)     ->  dW_K^h += dKO_h W^T / tau, dW_V^h += dVO_h W^T, and into dW
// and at the end dW_O^h' = dW[:, h' d_v : (h' + 1) d_v], W = [W_O^0 ... W_O^{H-1}]. The mean
// subtracted from the tokens is a constant here: the covariances do not depend on it.
#pragma once

#include <cstddef>

#include "barrier_backward_common.cuh"
#include "projected_forward.cuh"

namespace suptok::detail {

// Per token of head h: R_t's tail from dX_t (in R_t's first d_v d_k entries), and under the
// inclusive mask e_t, a_tt, ddv_t and dc_t (the file comment), from the moments' tail (vbar, kbar
// in M), F^h_t (F), VO_h, c_t (Cq), v_t (Z) and a_tt (P). One block per token; shared memory:
// dv_t and ddv_t (2 d_v elements).
template <class S>
__global__ void projected_token_backward_kernel(S* R, S* e, S* att, S* ddv, S* dCq, const S* M, const S* Z,
                                                const S* F, const S* VO_h, const S* Cq, const S* P, index N, index n,
                                                index d_v, index d_k, index h, mask m) {
  extern __shared__ unsigned char shared_bytes[];
  S* dv = reinterpret_cast<S*>(shared_bytes);
  S* dd = dv + d_v;
  const index token = blockIdx.x, t = token % N, w = projected_moment_width(d_v, d_k), vk = d_v * d_k;
  const bool inclusive = m == mask::inclusive, single = past_end(t, m) <= 1;
  S* r = R + token * w;
  const S* vbar = M + token * w + vk;
  const S* kbar = vbar + d_v;
  const S* Fh = F + token * n * n + h * d_v;  // row j of F^h_t at Fh + j n
  if (inclusive) {
    const S a_tt = P[token * N + t];
    const S* v = Z + token * w + vk;
    const S* c = Cq + token * n;
    for (index i = threadIdx.x; i < d_v; i += blockDim.x) dv[i] = v[i] - vbar[i];
    __syncthreads();
    S part = 0;  // this thread's share of -e_t
    for (index i = threadIdx.x; i < d_v; i += blockDim.x) {
      S u = 0;  // (F^h_t^T c_t)_i
      for (index j = 0; j < n; ++j) u += Fh[j * n + i] * c[j];
      part += dv[i] * u;
      dd[i] = single ? S(0) : -a_tt * u;
      ddv[token * d_v + i] = dd[i];
    }
    for (index j = threadIdx.x; j < n; j += blockDim.x) {
      S f_dv = 0, f_vo = 0;  // (F^h_t dv_t)_j and sum_i F^h_t[j, i] VO_h[i, j]
      for (index i = 0; i < d_v; ++i) {
        f_dv += Fh[j * n + i] * dv[i];
        f_vo += Fh[j * n + i] * VO_h[i * n + j];
      }
      dCq[token * n + j] = -a_tt * f_dv;
      part += f_vo;
    }
    const S minus_e = block_sum(part);
    if (threadIdx.x == 0) {
      e[token] = -minus_e;
      att[token] = a_tt;
    }
    __syncthreads();  // dd complete
  }
  if (single) {
    for (index k = threadIdx.x; k < w; k += blockDim.x) r[k] = S(0);
    return;
  }
  for (index i = threadIdx.x; i < d_v; i += blockDim.x) {  // dvbar = -dX kbar - ddv
    S sum = 0;
    for (index j = 0; j < d_k; ++j) sum += r[i * d_k + j] * kbar[j];
    r[vk + i] = -sum - (inclusive ? dd[i] : S(0));
  }
  for (index j = threadIdx.x; j < d_k; j += blockDim.x) {  // dkbar = -dX^T vbar
    S sum = 0;
    for (index i = 0; i < d_v; ++i) sum += r[i * d_k + j] * vbar[i];
    r[vk + d_v + j] = -sum;
  }
}

// The gradients of the centred values and keys from E_s (in E) and Z_s: dv_s = E_vk k_s + E_v
// [+ ddv_s], dk_s = E_vk^T v_s + E_k. One block per token.
template <class S>
__global__ void projected_sources_kernel(S* dVs, S* dKs, const S* E, const S* Z, const S* ddv, index d_v, index d_k,
                                         mask m) {
  const index token = blockIdx.x, w = projected_moment_width(d_v, d_k), vk = d_v * d_k;
  const S* Es = E + token * w;
  const S* v = Z + token * w + vk;
  const S* k = v + d_v;
  for (index i = threadIdx.x; i < d_v; i += blockDim.x) {
    S sum = Es[vk + i] + (m == mask::inclusive ? ddv[token * d_v + i] : S(0));
    for (index j = 0; j < d_k; ++j) sum += Es[i * d_k + j] * k[j];
    dVs[token * d_v + i] = sum;
  }
  for (index j = threadIdx.x; j < d_k; j += blockDim.x) {
    S sum = Es[vk + d_v + j];
    for (index i = 0; i < d_v; ++i) sum += Es[i * d_k + j] * v[i];
    dKs[token * d_k + j] = sum;
  }
}

// set_rows_kernel's values: head h' of dW_O (H, p, d_v) from dW (p, n).
template <class S>
struct output_blocks {
  const S* dW;
  index n, d_v;
  __device__ S operator()(index h, index r, index c) const { return dW[r * n + h * d_v + c]; }
};

// The backward of head h (the file comment's per-head lines): adds to grad.dU and to head h of
// grad.dW_Q, grad.dW_K, grad.dW_V, and to dW. r.buf.J holds F_t; the head's forward terms are
// recomputed unless `recompute` is false (the last head of the forward pass).
template <class S>
void projected_head_backward(const cuda_projected_run<S>& r, const cuda_barrier_gradients<S>& grad, index h,
                             bool recompute) {
  const auto& [Wq, Wk, Wv, Wo] = r.heads;
  const cuda_projected_buffers<S>& b = r.buf;
  const index B = r.B, N = r.N, p = r.p, n = r.n, d_k = r.d_k, d_v = r.d_v, w = r.w, tokens = r.tokens;
  const bool inclusive = r.m == mask::inclusive;
  const int threads = cuda_barrier_threads;
  const batched_view<S>& dU = grad.dU;
  const S* Fh = b.J + h * d_v;  // F^h_t: (n, d_v) of row stride n, n^2 apart
  const S* PQ_h = b.PQ + h * d_k * n;
  const S* KO_h = b.KO + h * d_k * n;
  // Head h's block of a weight gradient (H, rows, cols) += alpha left right.
  const auto add_weight = [&](const batched_view<S>& out, index rows, index cols, index inner,
                              const blas_operand<S>& left, const blas_operand<S>& right, S alpha, const char* call) {
    gemm_batched<S>(r.blas, rows, cols, inner, alpha, left, right, S(1), out.row(h, 0), out.row_stride, 0, 1, call);
  };
  // dW (p, n) += alpha left right
  const auto add_to_dW = [&](index inner, const blas_operand<S>& left, const blas_operand<S>& right, S alpha,
                             const char* call) {
    gemm_batched<S>(r.blas, p, n, inner, alpha, left, right, S(1), b.dW, n, 0, 1, call);
  };
  if (recompute) {
    projected_head_terms(r, h);
    if (r.m == mask::inclusive) inclusive_query_rows(r, complement_rows(r, h));
  }
  // dX_t = -F^h_t^T PQ_h^T (into R);  dPQ_h = sum_t -X_t^T F^h_t^T
  gemm_batched<S>(r.blas, d_v, d_k, n, S(-1), {Fh, n, n * n, true}, {PQ_h, n, 0, true}, S(0), b.R, d_k, w, tokens,
                  "cublasXgemmStridedBatched(F^T PQ^T)");
  gemm_batched<S>(r.blas, d_k, n, d_v, S(-1), {b.M, d_k, w, true}, {Fh, n, n * n, true}, S(0), b.Y, n, d_k * n, tokens,
                  "cublasXgemmStridedBatched(X^T F^T)");
  sum_blocks<S>(r.blas, b.Y, d_k * n, tokens, b.ones, b.dPQ, "cublasXgemv(sum of X^T F^T)");
  projected_token_backward_kernel<S><<<unsigned(tokens), threads, 2 * std::size_t(d_v) * sizeof(S), r.stream>>>(
      b.R, b.e, b.att, b.ddv, b.dCq, b.M, b.Z, b.J, b.VO + h * d_v * n, b.Cq, b.P, N, n, d_v, d_k, h, r.m);
  check_launch("projected_token_backward_kernel launch");
  // da_ts = R_t . Z_s, then dl_ts in place;  E = a^T R (into M);  the centred values' and keys' gradients
  causal_moment_gradients(r, b.R, b.Z, w, b.dP);
  softmax_backward_kernel<S><<<blocks_for(tokens * 32, threads), threads, 0, r.stream>>>(b.dP, b.P, b.e, tokens, N,
                                                                                        r.m);
  check_launch("softmax_backward_kernel launch");
  moment_sources(r, b.P, b.R, w, b.M);
  projected_sources_kernel<S><<<unsigned(tokens), threads, 0, r.stream>>>(b.dVs, b.dKs, b.M, b.Z, b.ddv, d_v, d_k,
                                                                          r.m);
  check_launch("projected_sources_kernel launch");
  gemm_batched<S>(r.blas, N, p, d_v, S(1), {b.dVs, d_v, N * d_v}, {Wv.row(h, 0), Wv.row_stride, 0}, S(1), dU.data,
                  dU.row_stride, dU.batch_stride, B, "cublasXgemmStridedBatched(dv W_V)");
  gemm_batched<S>(r.blas, N, p, d_k, S(1), {b.dKs, d_k, N * d_k}, {Wk.row(h, 0), Wk.row_stride, 0}, S(1), dU.data,
                  dU.row_stride, dU.batch_stride, B, "cublasXgemmStridedBatched(dk W_K)");
  add_weight(grad.dW_V, d_v, p, tokens, {b.dVs, d_v, 0, true}, {b.Uc, p}, S(1), "cublasXgemm(dv^T Uc)");
  add_weight(grad.dW_K, d_k, p, tokens, {b.dKs, d_k, 0, true}, {b.Uc, p}, S(1), "cublasXgemm(dk^T Uc)");
  // dQ = dl K / tau [+ dc KO_h^T],  dK = dl^T Q / tau,  dU += dQ W_Q + dK W_K
  logits_backward(r, b.dP, b.Q, b.K, b.dQ, b.dK);
  if (inclusive)
    gemm_batched<S>(r.blas, tokens, d_k, n, S(1), {b.dCq, n}, {KO_h, n, 0, true}, S(1), b.dQ, d_k, 0, 1,
                    "cublasXgemm(dc KO^T)");
  add_projection_gradients(r, h, b.dQ, b.dK, dU);
  add_weight(grad.dW_Q, d_k, p, tokens, {b.dQ, d_k, 0, true}, {b.Un, p}, S(1), "cublasXgemm(dQ^T U)");
  add_weight(grad.dW_K, d_k, p, tokens, {b.dK, d_k, 0, true}, {b.Un, p}, S(1), "cublasXgemm(dK^T U)");
  // The products with W: PQ_h, and under the inclusive mask KO_h and VO_h
  add_weight(grad.dW_Q, d_k, p, n, {b.dPQ, n}, {b.W, n, 0, true}, r.inv_tau, "cublasXgemm(dPQ W^T)");
  add_to_dW(d_k, {Wq.row(h, 0), Wq.row_stride, 0, true}, {b.dPQ, n}, r.inv_tau, "cublasXgemm(W_Q^T dPQ)");
  if (!inclusive) return;
  gemm_batched<S>(r.blas, d_k, n, tokens, S(1), {b.Q, d_k, 0, true}, {b.dCq, n}, S(0), b.dKO, n, 0, 1,
                  "cublasXgemm(Q^T dc)");
  // row j of dVO_h^T: -sum_t a_tt F^h_t[j, :], one product per row j
  gemm_batched<S>(r.blas, 1, d_v, tokens, S(-1), {b.att, tokens}, {Fh, n * n, n}, S(0), b.dVOt, d_v, d_v, n,
                  "cublasXgemmStridedBatched(a_tt F)");
  add_weight(grad.dW_K, d_k, p, n, {b.dKO, n}, {b.W, n, 0, true}, r.inv_tau, "cublasXgemm(dKO W^T)");
  add_to_dW(d_k, {Wk.row(h, 0), Wk.row_stride, 0, true}, {b.dKO, n}, r.inv_tau, "cublasXgemm(W_K^T dKO)");
  add_weight(grad.dW_V, d_v, p, n, {b.dVOt, d_v, 0, true}, {b.W, n, 0, true}, S(1), "cublasXgemm(dVO W^T)");
  add_to_dW(d_v, {Wv.row(h, 0), Wv.row_stride, 0, true}, {b.dVOt, d_v, 0, true}, S(1), "cublasXgemm(W_V^T dVO)");
}

// The forward into `out`, then the gradients into `grad` (every element overwritten).
template <class S>
void projected_backward_pass(const cuda_projected_run<S>& r, const cuda_barrier_gradients<S>& grad,
                             const batched_view<const S>& db, const cuda_token_barrier<S>& out,
                             const barrier_params& barrier) {
  const cuda_projected_buffers<S>& b = r.buf;
  const int threads = cuda_barrier_threads;
  projected_forward_pass(r, out, barrier);
  backward_start(r, r.n, b.J, b.J_ptr, b.pivots, b.info, b.Inv, b.Inv_ptr, b.ones, b.Un, grad, db, out, barrier);
  const auto set = [&](const batched_view<S>& to, auto value, const char* call) {
    set_rows_kernel<<<blocks_for(to.batch * to.rows * to.cols, threads * 8), threads, 0, r.stream>>>(to, value);
    check_launch(call);
  };
  set(grad.dW_Q, zeros<S>{}, "set_rows_kernel launch (zeroing dW_Q)");
  set(grad.dW_K, zeros<S>{}, "set_rows_kernel launch (zeroing dW_K)");
  set(grad.dW_V, zeros<S>{}, "set_rows_kernel launch (zeroing dW_V)");
  set(batched_view<S>{b.dW, 1, r.p, r.n, r.p * r.n, r.n}, zeros<S>{}, "set_rows_kernel launch (zeroing dW)");
  gather_outputs(r, b.W);
  for (index h = r.H - 1; h >= 0; --h) projected_head_backward(r, grad, h, h != r.H - 1);
  set(grad.dW_O, output_blocks<S>{b.dW, r.n, r.d_v}, "set_rows_kernel launch (dW_O)");
}

}  // namespace suptok::detail
