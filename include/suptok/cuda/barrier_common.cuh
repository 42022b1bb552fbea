// suptok/cuda/barrier_common.cuh: what the packed (cuda/barrier_forward.cuh) and projected
// (cuda/projected_forward.cuh) forms of the CUDA barrier share: the centred tokens, the attention
// weights, the causal moment products, and the LU with sign, log|det| and b_t per token (nvcc only).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "../barrier/policy.hpp"
#include "../likelihood/logdet.hpp"
#include "barrier_plan.hpp"
#include "blas.hpp"
#include "warp.cuh"

namespace suptok::detail {

inline constexpr int cuda_barrier_threads = 256;

inline unsigned blocks_for(index work, int threads) { return unsigned((work + threads - 1) / threads); }

inline void check_launch(const char* kernel) { cuda_check(cudaGetLastError(), kernel); }

// mean[b] = (1/N) sum_t U[b, t] and Uc[b, t] = U[b, t] - mean[b]: one block per sequence, a
// thread per column.
template <class S>
__global__ void centre_kernel(S* Uc, S* mean, batched_view<const S> U) {
  const index b = blockIdx.x, N = U.rows, p = U.cols;
  for (index c = threadIdx.x; c < p; c += blockDim.x) {
    S sum = 0;
    for (index t = 0; t < N; ++t) sum += U.row(b, t)[c];
    const S m = sum / S(N);
    mean[b * p + c] = m;
    for (index t = 0; t < N; ++t) Uc[(b * N + t) * p + c] = U.row(b, t)[c] - m;
  }
}

// J_t = I for `count` p x p blocks.
template <class S>
__global__ void identity_kernel(S* J, index count, index p) {
  const index n = count * p * p;
  for (index e = index(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += index(gridDim.x) * blockDim.x) {
    const index within = e % (p * p);
    J[e] = within / p == within % p ? S(1) : S(0);
  }
}

// Row t of every sequence's logits P (B, N, N) becomes a_ts: the softmax over s in P(t) of P_ts,
// 0 for s outside it (the whole row for an empty past). One warp per row.
template <class S>
__global__ void causal_softmax_kernel(S* P, index rows, index N, mask m) {
  const index row = (index(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (row >= rows) return;
  const int lane = int(threadIdx.x) % 32;
  const index t = row % N, end = past_end(t, m);
  S* r = P + row * N;
  S top = -INFINITY;
  for (index s = lane; s < end; s += 32) top = fmax(top, r[s]);
  top = warp_max(top);
  S sum = 0;
  for (index s = lane; s < end; s += 32) sum += exp(r[s] - top);
  sum = warp_sum(sum);
  for (index s = lane; s < N; s += 32) r[s] = s < end ? exp(r[s] - top) / sum : S(0);
}

// pointers[i] = base + i * stride for i < count: the per-token arrays of cuBLAS's batched LU calls.
template <class S>
__global__ void block_pointers_kernel(S** pointers, S* base, index count, index stride) {
  const index i = index(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) pointers[i] = base + i * stride;
}

// From the LU of J_t (getrf: the factors in place, 1-based pivots): sign, log|det| and b_t. One
// thread per token.
template <class S>
__global__ void token_barrier_kernel(cuda_token_barrier<S> out, const S* LU, const int* pivots, index N, index p,
                                     barrier_params barrier) {
  const index token = index(blockIdx.x) * blockDim.x + threadIdx.x;
  if (token >= out.b.batch * N) return;
  const S* lu = LU + token * p * p;
  const int* piv = pivots + token * p;
  int sign = 1;
  S log_abs = 0;
  bool finite = true;
  for (index i = 0; i < p; ++i) {
    const S d = lu[i * p + i];
    finite = finite && isfinite(d);
    if (d < 0) sign = -sign;
    if (d == 0) sign = 0;
    if (piv[i] != int(i) + 1) sign = -sign;
    log_abs += log(fabs(d));
  }
  const index b = token / N, t = token % N;
  if (!finite) {
    out.sign.row(b, t)[0] = 0;
    out.log_abs.row(b, t)[0] = S(NAN);
    out.b.row(b, t)[0] = S(NAN);
    return;
  }
  const signed_log_det<S> ld{sign, sign == 0 ? S(-INFINITY) : log_abs};
  out.sign.row(b, t)[0] = sign;
  out.log_abs.row(b, t)[0] = ld.log_abs;
  out.b.row(b, t)[0] = barrier_from_log_det_unchecked(ld, barrier);
}

// One validated call's operands, sizes, cuBLAS handle and stream (both forms).
template <class S>
struct cuda_barrier_operands {
  cublasHandle_t blas;
  cudaStream_t stream;
  batched_view<const S> U;
  cuda_heads<S> heads;
  mask m;
  index B, N, p, H, d_k, d_v, tokens;
  S inv_tau;

  cuda_barrier_operands(const cuda& backend, const batched_view<const S>& U_, const cuda_heads<S>& heads_,
                        const attention_core_params& attention)
      : blas(backend.blas), stream(backend.stream), U(U_), heads(heads_), m(attention.causal_mask), B(U.batch),
        N(U.rows), p(U.cols), H(heads.W_Q.batch), d_k(heads.W_Q.rows), d_v(heads.W_V.rows), tokens(B * N),
        inv_tau(S(1) / (attention.temperature == 0 ? std::sqrt(S(d_k)) : S(attention.temperature))) {}

  blas_operand<S> U_rows() const { return {U.data, U.row_stride, U.batch_stride}; }
};

// Q = U W_Q[h]^T, K = U W_K[h]^T (B, N, d_k) and P = softmax over the past of Q K^T / tau (B, N, N):
// head h's attention weights a_ts.
template <class S>
void attention_weights(const cuda_barrier_operands<S>& r, index h, S* Q, S* K, S* P) {
  const auto& Wq = r.heads.W_Q;
  const auto& Wk = r.heads.W_K;
  const index N = r.N, d_k = r.d_k;
  gemm_batched<S>(r.blas, N, d_k, r.p, S(1), r.U_rows(), {Wq.row(h, 0), Wq.row_stride, 0, true}, S(0), Q, d_k, N * d_k,
                  r.B, "cublasXgemmStridedBatched(Q)");
  gemm_batched<S>(r.blas, N, d_k, r.p, S(1), r.U_rows(), {Wk.row(h, 0), Wk.row_stride, 0, true}, S(0), K, d_k, N * d_k,
                  r.B, "cublasXgemmStridedBatched(K)");
  gemm_batched<S>(r.blas, N, N, d_k, r.inv_tau, {Q, d_k, N * d_k}, {K, d_k, N * d_k, true}, S(0), P, N, N * N, r.B,
                  "cublasXgemmStridedBatched(logits)");
  const int threads = cuda_barrier_threads;
  causal_softmax_kernel<S><<<blocks_for(r.tokens * 32, threads), threads, 0, r.stream>>>(P, r.tokens, N, r.m);
  check_launch("causal_softmax_kernel launch");
}

// Calls f(r0, r1, keys) for the row blocks [r0, r1) of cuda_moment_row_block tokens of a sequence
// of N; keys: the tokens the block's last row can see.
template <class F>
void for_each_causal_block(index N, mask m, F&& f) {
  for (index r0 = 0; r0 < N; r0 += cuda_moment_row_block) {
    const index r1 = std::min(N, r0 + cuda_moment_row_block);
    f(r0, r1, past_end(r1 - 1, m));
  }
}

// M = P X (B, N, w) for the weights P (B, N, N) and per-token rows X (B, N, w), by row blocks
// (for_each_causal_block). Rows of an empty past are not written (their callers set what depends
// on them).
template <class S>
void causal_moments(const cuda_barrier_operands<S>& r, const S* P, const S* X, index w, S* M) {
  const index N = r.N;
  for_each_causal_block(N, r.m, [&](index r0, index r1, index keys) {
    if (keys == 0) return;
    gemm_batched<S>(r.blas, r1 - r0, w, keys, S(1), {P + r0 * N, N, N * N}, {X, w, N * w}, S(0), M + r0 * w, w, N * w,
                    r.B, "cublasXgemmStridedBatched(moments)");
  });
}

// The LU of the tokens' n x n matrices J (in place; pivots, info and the pointers J_ptr in the
// workspace), then sign, log|det| and b_t into out.
template <class S>
void lu_log_dets(const cuda_barrier_operands<S>& r, S* J, S** J_ptr, int* pivots, int* info, index n,
                 const cuda_token_barrier<S>& out, const barrier_params& barrier) {
  const int threads = cuda_barrier_threads;
  block_pointers_kernel<S><<<blocks_for(r.tokens, threads), threads, 0, r.stream>>>(J_ptr, J, r.tokens, n * n);
  check_launch("block_pointers_kernel launch");
  lu_batched<S>(r.blas, n, J_ptr, pivots, info, r.tokens);
  token_barrier_kernel<S><<<blocks_for(r.tokens, threads), threads, 0, r.stream>>>(out, J, pivots, r.N, n, barrier);
  check_launch("token_barrier_kernel launch");
}

}  // namespace suptok::detail
