// suptok/cuda/barrier_backward_common.cuh: what the packed (cuda/barrier_backward.cuh) and projected
// (cuda/projected_backward.cuh) backwards of the CUDA barrier share: fills and copies (the
// projected form's W among them, which its margins use as well), the per-token gradient scale c_t
// and F_t = c_t J_t^{-1}, the softmax backward and the causal products of the moments' backward
// (nvcc only).
#pragma once

#include <algorithm>

#include "barrier_common.cuh"

namespace suptok::detail {

// x[i] = value for i < n.
template <class S>
__global__ void fill_kernel(S* x, index n, S value) {
  for (index i = index(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += index(gridDim.x) * blockDim.x)
    x[i] = value;
}

// to = value(b, r, c) for every element of a (B, N, p) view (any strides).
template <class S, class Value>
__global__ void set_rows_kernel(batched_view<S> to, Value value) {
  const index n = to.batch * to.rows * to.cols;
  for (index e = index(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += index(gridDim.x) * blockDim.x) {
    const index c = e % to.cols, r = (e / to.cols) % to.rows, b = e / (to.cols * to.rows);
    to.row(b, r)[c] = value(b, r, c);
  }
}

// Copies U into a view, or gives 0: set_rows_kernel's values.
template <class S>
struct rows_of {
  batched_view<const S> from;
  __device__ S operator()(index b, index r, index c) const { return from.row(b, r)[c]; }
};
template <class S>
struct zeros {
  __device__ S operator()(index, index, index) const { return S(0); }
};
// W = [W_O^0 ... W_O^{H-1}] as a (1, p, n) view.
template <class S>
struct concatenated_outputs {
  batched_view<const S> W_O;
  __device__ S operator()(index, index r, index c) const { return W_O.row(c / W_O.cols, r)[c % W_O.cols]; }
};

// W (p, n) = [W_O^0 ... W_O^{H-1}], n = H d_v: the projected form's output projections side by side.
template <class S>
void gather_outputs(const cuda_barrier_operands<S>& r, S* W) {
  const index n = r.H * r.d_v;
  const int threads = cuda_barrier_threads;
  set_rows_kernel<<<blocks_for(r.p * n, threads * 8), threads, 0, r.stream>>>(
      batched_view<S>{W, 1, r.p, n, r.p * n, n}, concatenated_outputs<S>{r.heads.W_O});
  check_launch("set_rows_kernel launch (W)");
}

// c_t = db_t f'(z) z (db/dJ_t = c_t J_t^{-T}) from the forward's sign and log|det J_t|: -db_t on
// the -log z branch, 0 under the clamp policy below eps, -db_t z / z0 under the extended policy
// below z0; NaN where it does not exist (cuda/barrier_backward.cuh, docs/cuda.md).
template <class S>
__device__ S inverse_gradient_scale(S db, int sign, S log_abs, const barrier_params& barrier) {
  if (db == S(0)) return S(0);
  const signed_log_det<S> ld{sign, log_abs};
  if (isnan(log_abs)) return S(NAN);  // a non-finite J_t
  if (on_log_branch(ld, barrier)) return -db;
  if (barrier.policy == extension::clamp) return S(0);
  if (barrier.policy == extension::exact || sign == 0) return S(NAN);
  return -db * S(sign) * exp(log_abs) / S(barrier.z0);
}

// F_t = c_t J_t^{-1} (p, p) from the inverses in inv; 0 where c_t = 0 (whatever inv holds there).
// One block per token.
template <class S>
__global__ void block_gradient_kernel(S* F, const S* inv, batched_view<const S> db, cuda_token_barrier<S> out,
                                      index N, index p, barrier_params barrier) {
  const index token = blockIdx.x, b = token / N, t = token % N, pp = p * p;
  const S c = inverse_gradient_scale<S>(db.row(b, t)[0], out.sign.row(b, t)[0], out.log_abs.row(b, t)[0], barrier);
  for (index e = threadIdx.x; e < pp; e += blockDim.x)
    F[token * pp + e] = c == S(0) ? S(0) : c * inv[token * pp + e];
}

// The sum of x over the block, in thread 0 (a warp sum, then one over the warps' sums).
template <class S>
__device__ S block_sum(S x) {
  __shared__ S warp_sums[32];
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, warps = (int(blockDim.x) + 31) / 32;
  x = warp_sum(x);
  if (lane == 0) warp_sums[warp] = x;
  __syncthreads();
  x = 0;
  if (warp == 0) {
    x = lane < warps ? warp_sums[lane] : S(0);
    x = warp_sum(x);
  }
  return x;
}

// Row t of dP: da_ts (plus e_t at s = t, inclusive) becomes dl_ts = a_ts (da_ts - D_t) for s in P(t),
// 0 elsewhere. One warp per row.
template <class S>
__global__ void softmax_backward_kernel(S* dP, const S* P, const S* e, index rows, index N, mask m) {
  const index row = (index(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (row >= rows) return;
  const int lane = int(threadIdx.x) % 32;
  const index t = row % N, end = past_end(t, m);
  S* dl = dP + row * N;
  const S* a = P + row * N;
  const S e_t = m == mask::inclusive ? e[row] : S(0);
  const auto da = [&](index s) { return dl[s] + (s == t ? e_t : S(0)); };
  S D = 0;
  for (index s = lane; s < end; s += 32) D += a[s] * da(s);
  D = warp_sum(D);
  for (index s = lane; s < N; s += 32) dl[s] = s < end ? a[s] * (da(s) - D) : S(0);
}

// dP = R X^T (B, N, N) by row blocks (for_each_causal_block): da_ts = R_t . X_s, the gradient of
// the weights a_ts through M_t = sum_s a_ts X_s (entries past a row's own past are left for
// softmax_backward_kernel to zero; rows of an empty past not written).
template <class S>
void causal_moment_gradients(const cuda_barrier_operands<S>& r, const S* R, const S* X, index w, S* dP) {
  const index N = r.N;
  for_each_causal_block(N, r.m, [&](index r0, index r1, index keys) {
    if (keys == 0) return;
    gemm_batched<S>(r.blas, r1 - r0, keys, w, S(1), {R + r0 * w, w, N * w}, {X, w, N * w, true}, S(0), dP + r0 * N, N,
                    N * N, r.B, "cublasXgemmStridedBatched(R X^T)");
  });
}

// E = P^T R (B, N, w): E_s = sum_t a_ts R_t, the gradient of the rows X_s, rows s by blocks
// against the queries t >= r0 that can see them.
template <class S>
void moment_sources(const cuda_barrier_operands<S>& r, const S* P, const S* R, index w, S* E) {
  const index N = r.N;
  for_each_causal_block(N, r.m, [&](index r0, index r1, index) {
    gemm_batched<S>(r.blas, r1 - r0, w, N - r0, S(1), {P + r0 * N + r0, N, N * N, true}, {R + r0 * w, w, N * w}, S(0),
                    E + r0 * w, w, N * w, r.B, "cublasXgemmStridedBatched(a^T R)");
  });
}

// The logits' backward for head h: dQ = dl K / tau and dK = dl^T Q / tau (B, N, d_k), dl in dP.
template <class S>
void logits_backward(const cuda_barrier_operands<S>& r, const S* dP, const S* Q, const S* K, S* dQ, S* dK) {
  const index N = r.N, d_k = r.d_k;
  gemm_batched<S>(r.blas, N, d_k, N, r.inv_tau, {dP, N, N * N}, {K, d_k, N * d_k}, S(0), dQ, d_k, N * d_k, r.B,
                  "cublasXgemmStridedBatched(dl K)");
  gemm_batched<S>(r.blas, N, d_k, N, r.inv_tau, {dP, N, N * N, true}, {Q, d_k, N * d_k}, S(0), dK, d_k, N * d_k, r.B,
                  "cublasXgemmStridedBatched(dl^T Q)");
}

// dU += dQ W_Q[h] + dK W_K[h] for head h's gradients dQ, dK (B, N, d_k).
template <class S>
void add_projection_gradients(const cuda_barrier_operands<S>& r, index h, const S* dQ, const S* dK,
                              const batched_view<S>& dU) {
  const auto& Wq = r.heads.W_Q;
  const auto& Wk = r.heads.W_K;
  const index N = r.N, d_k = r.d_k;
  gemm_batched<S>(r.blas, N, r.p, d_k, S(1), {dQ, d_k, N * d_k}, {Wq.row(h, 0), Wq.row_stride, 0}, S(1), dU.data,
                  dU.row_stride, dU.batch_stride, r.B, "cublasXgemmStridedBatched(dQ W_Q)");
  gemm_batched<S>(r.blas, N, r.p, d_k, S(1), {dK, d_k, N * d_k}, {Wk.row(h, 0), Wk.row_stride, 0}, S(1), dU.data,
                  dU.row_stride, dU.batch_stride, r.B, "cublasXgemmStridedBatched(dK W_K)");
}

// The start of both backwards, after the forward: F_t = c_t J_t^{-1} (n, n) into J from the
// forward's LU (the inverses into inv, through the pointers inv_ptr), ones = 1 (tokens), Un = U
// contiguous (B, N, p), grad.dU = 0.
template <class S>
void backward_start(const cuda_barrier_operands<S>& r, index n, S* J, S* const* J_ptr, const int* pivots, int* info,
                    S* inv, S** inv_ptr, S* ones, S* Un, const cuda_barrier_gradients<S>& grad,
                    const batched_view<const S>& db, const cuda_token_barrier<S>& out, const barrier_params& barrier) {
  const index tokens = r.tokens;
  const int threads = cuda_barrier_threads;
  block_pointers_kernel<S><<<blocks_for(tokens, threads), threads, 0, r.stream>>>(inv_ptr, inv, tokens, n * n);
  check_launch("block_pointers_kernel launch");
  inverse_batched<S>(r.blas, n, J_ptr, pivots, inv_ptr, info, tokens);
  block_gradient_kernel<S><<<unsigned(tokens), threads, 0, r.stream>>>(J, inv, db, out, r.N, n, barrier);
  check_launch("block_gradient_kernel launch");
  fill_kernel<S><<<blocks_for(tokens, threads), threads, 0, r.stream>>>(ones, tokens, S(1));
  check_launch("fill_kernel launch");
  const batched_view<S> U_copy{Un, r.B, r.N, r.p, r.N * r.p, r.p};
  const unsigned copy_blocks = blocks_for(tokens * r.p, threads * 8);
  set_rows_kernel<<<copy_blocks, threads, 0, r.stream>>>(U_copy, rows_of<S>{r.U});
  check_launch("set_rows_kernel launch (U)");
  set_rows_kernel<<<copy_blocks, threads, 0, r.stream>>>(grad.dU, zeros<S>{});
  check_launch("set_rows_kernel launch (zeroing dU)");
}

}  // namespace suptok::detail
