// suptok/cuda/barrier_forward.cuh: the barrier b_t = f(det J_t) of every token on NVIDIA GPUs,
// packed form (docs/math.md sections 2.1, 2.2 and 3; nvcc only). Shapes, checks and the workspace:
// cuda/barrier_plan.hpp.
//
// Per call, in the scalar S (float or double), on the caller's stream:
//   1. A_h = W_K^T W_Q / tau and V_h = W_O W_V for every head (one batched product each);
//   2. Uc = U - mean (per sequence; C_t does not change under a shift, and its cancellation
//      m2 - m1 m1^T is then relative to the spread of the tokens, not to their offset) and the
//      packed rows X_s = [uc_i uc_j (i <= j), uc_i] of every token;
//   3. J_t = I, then per head h:
//        Q = U W_Q^T, K = U W_K^T, P = Q K^T / tau            (cuBLAS, batched over sequences)
//        a_ts = softmax over s in P(t) of P_ts, 0 elsewhere   (a warp per row)
//        M_t = sum_s a_ts X_s                                 (cuBLAS, rows in blocks of 256
//                                                              against the keys they can see)
//        C_t = m2_t - m1_t m1_t^T                             (0 when P(t) has at most one token)
//        T_t = C_t A_h  [+ a_tt (I + (uc_t - m1_t) (A_h u_t)^T) under the inclusive mask]
//        J_t -= V_h T_t                                       (cuBLAS, batched over tokens)
//   4. a pivoted LU of every J_t (cublasXgetrfBatched), then per token sign, log|det| and b_t by
//      the same barrier_from_log_det_unchecked as the host paths.
// A non-finite J_t (inputs that overflow S) gives sign 0, log_abs NaN and b NaN: device data is
// not inspected on the host (the CPU paths throw instead; docs/cuda.md).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "../barrier/policy.hpp"
#include "../likelihood/logdet.hpp"
#include "barrier_plan.hpp"
#include "blas.hpp"
#include "warp.cuh"

namespace suptok {
namespace detail {

inline constexpr int cuda_barrier_threads = 256;

inline unsigned blocks_for(index work, int threads) { return unsigned((work + threads - 1) / threads); }

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

// X_s = [uc_i uc_j for i <= j (row by row), uc_i], w = p (p + 1) / 2 + p: one block per token.
template <class S>
__global__ void pack_kernel(S* X, const S* Uc, index p) {
  extern __shared__ unsigned char shared_bytes[];
  S* u = reinterpret_cast<S*>(shared_bytes);
  const index token = blockIdx.x, w = barrier_packed_width(p);
  for (index c = threadIdx.x; c < p; c += blockDim.x) u[c] = Uc[token * p + c];
  __syncthreads();
  S* x = X + token * w;
  for (index i = 0, at = 0; i < p; at += p - i, ++i)
    for (index j = i + threadIdx.x; j < p; j += blockDim.x) x[at + j - i] = u[i] * u[j];
  for (index c = threadIdx.x; c < p; c += blockDim.x) x[w - p + c] = u[c];
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

// C_t (p x p) = m2_t - m1_t m1_t^T from the packed moments M_t = [m2 (i <= j), m1]; 0 where P(t)
// holds at most one token (a covariance of one point, which the subtraction would leave at a
// rounding error). One block per token, a thread per entry.
template <class S>
__global__ void covariance_kernel(S* C, const S* M, index N, index p, mask m) {
  const index token = blockIdx.x, t = token % N, w = barrier_packed_width(p);
  const S* mt = M + token * w;
  const S* m1 = mt + w - p;
  S* c = C + token * p * p;
  const bool single = past_end(t, m) <= 1;
  for (index e = threadIdx.x; e < p * p; e += blockDim.x) {
    const index i = e / p, j = e % p, lo = i < j ? i : j, hi = i < j ? j : i;
    c[e] = single ? S(0) : mt[lo * p - lo * (lo - 1) / 2 + (hi - lo)] - m1[i] * m1[j];
  }
}

// Inclusive mask: T_t += a_tt (I + d_t g_t^T), d_t = uc_t - m1_t = u_t - ubar_t, g_t = A_h u_t
// (docs/math.md section 2.2). One block per token.
template <class S>
__global__ void inclusive_terms_kernel(S* T, const S* P, const S* Uc, const S* M, const S* G, index N, index p) {
  const index token = blockIdx.x, t = token % N, w = barrier_packed_width(p);
  const S a_tt = P[token * N + t];
  const S* m1 = M + token * w + w - p;
  const S* uc = Uc + token * p;
  const S* g = G + token * p;
  S* tt = T + token * p * p;
  for (index e = threadIdx.x; e < p * p; e += blockDim.x) {
    const index i = e / p, j = e % p;
    tt[e] += a_tt * ((i == j ? S(1) : S(0)) + (uc[i] - m1[i]) * g[j]);
  }
}

template <class S>
__global__ void block_pointers_kernel(S** pointers, S* J, index count, index p) {
  const index i = index(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) pointers[i] = J + i * p * p;
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

inline void check_launch(const char* kernel) { cuda_check(cudaGetLastError(), kernel); }

// The workspace's buffers (cuda/barrier_plan.hpp) as typed pointers; the backward's are null-sized
// in a forward layout.
template <class S>
struct cuda_barrier_buffers {
  S *A, *V, *mean, *Uc, *X, *Q, *K, *P, *M, *G, *C, *T, *J;
  S** J_ptr;
  int *pivots, *info;
  S *Z, *dP, *R, *e, *ones, *DG, *dQ, *dK, *Un, *SV, *SA;
  S** Z_ptr;

  cuda_barrier_buffers(void* workspace, const cuda_barrier_layout& l) {
    char* base = static_cast<char*>(workspace);
    const auto at = [&](std::size_t offset) { return reinterpret_cast<S*>(base + offset); };
    A = at(l.A), V = at(l.V), mean = at(l.mean), Uc = at(l.Uc), X = at(l.X), Q = at(l.Q), K = at(l.K);
    P = at(l.P), M = at(l.M), G = at(l.G), C = at(l.C), T = at(l.T), J = at(l.J);
    J_ptr = reinterpret_cast<S**>(base + l.J_ptr);
    pivots = reinterpret_cast<int*>(base + l.pivots);
    info = reinterpret_cast<int*>(base + l.info);
    Z = at(l.Z), dP = at(l.dP), R = at(l.R), e = at(l.e), ones = at(l.ones), DG = at(l.DG);
    dQ = at(l.dQ), dK = at(l.dK), Un = at(l.Un), SV = at(l.SV), SA = at(l.SA);
    Z_ptr = reinterpret_cast<S**>(base + l.Z_ptr);
  }
};

// One validated call's operands, sizes, buffers, cuBLAS handle and stream.
template <class S>
struct cuda_barrier_run {
  cublasHandle_t blas;
  cudaStream_t stream;
  batched_view<const S> U;
  cuda_heads<S> heads;
  mask m;
  index B, N, p, H, d_k, d_v, tokens, w, pp;
  S inv_tau;
  cuda_barrier_buffers<S> buf;

  cuda_barrier_run(const cuda& backend, const batched_view<const S>& U_, const cuda_heads<S>& heads_,
                    const attention_core_params& attention, void* workspace, barrier_pass pass)
      : blas(backend.blas), stream(backend.stream), U(U_), heads(heads_), m(attention.causal_mask), B(U.batch),
        N(U.rows), p(U.cols), H(heads.W_Q.batch), d_k(heads.W_Q.rows), d_v(heads.W_V.rows), tokens(B * N),
        w(barrier_packed_width(p)), pp(p * p),
        inv_tau(S(1) / (attention.temperature == 0 ? std::sqrt(S(d_k)) : S(attention.temperature))),
        buf(workspace, barrier_layout(B, N, p, H, d_k, m, sizeof(S), pass)) {}

  blas_operand<S> U_rows() const { return {U.data, U.row_stride, U.batch_stride}; }
};

// Steps 1 and 2 of the file comment: A_h, V_h, the centred tokens and their packed rows.
template <class S>
void barrier_prepare(const cuda_barrier_run<S>& r) {
  const auto& [Wq, Wk, Wv, Wo] = r.heads;
  const index p = r.p, pp = r.pp;
  const int threads = cuda_barrier_threads;
  gemm_batched<S>(r.blas, p, p, r.d_k, r.inv_tau, {Wk.data, Wk.row_stride, Wk.batch_stride, true},
                  {Wq.data, Wq.row_stride, Wq.batch_stride}, S(0), r.buf.A, p, pp, r.H, "cublasXgemmStridedBatched(A)");
  gemm_batched<S>(r.blas, p, p, r.d_v, S(1), {Wo.data, Wo.row_stride, Wo.batch_stride},
                  {Wv.data, Wv.row_stride, Wv.batch_stride}, S(0), r.buf.V, p, pp, r.H, "cublasXgemmStridedBatched(V)");
  centre_kernel<S><<<unsigned(r.B), threads, 0, r.stream>>>(r.buf.Uc, r.buf.mean, r.U);
  check_launch("centre_kernel launch");
  pack_kernel<S><<<unsigned(r.tokens), threads, std::size_t(p) * sizeof(S), r.stream>>>(r.buf.X, r.buf.Uc, p);
  check_launch("pack_kernel launch");
}

// Step 3 for head h up to T^h_t: Q, K, the weights a_ts in P, the moments M, C_t and T_t (and g_t
// in G under the inclusive mask).
template <class S>
void barrier_head_terms(const cuda_barrier_run<S>& r, index h) {
  const auto& Wq = r.heads.W_Q;
  const auto& Wk = r.heads.W_K;
  const index B = r.B, N = r.N, p = r.p, d_k = r.d_k, w = r.w, pp = r.pp;
  const cuda_barrier_buffers<S>& b = r.buf;
  const S* A_h = b.A + h * pp;
  const int threads = cuda_barrier_threads;
  gemm_batched<S>(r.blas, N, d_k, p, S(1), r.U_rows(), {Wq.row(h, 0), Wq.row_stride, 0, true}, S(0), b.Q, d_k,
                  N * d_k, B, "cublasXgemmStridedBatched(Q)");
  gemm_batched<S>(r.blas, N, d_k, p, S(1), r.U_rows(), {Wk.row(h, 0), Wk.row_stride, 0, true}, S(0), b.K, d_k,
                  N * d_k, B, "cublasXgemmStridedBatched(K)");
  gemm_batched<S>(r.blas, N, N, d_k, r.inv_tau, {b.Q, d_k, N * d_k}, {b.K, d_k, N * d_k, true}, S(0), b.P, N, N * N,
                  B, "cublasXgemmStridedBatched(logits)");
  causal_softmax_kernel<S><<<blocks_for(r.tokens * 32, threads), threads, 0, r.stream>>>(b.P, r.tokens, N, r.m);
  check_launch("causal_softmax_kernel launch");
  for (index r0 = 0; r0 < N; r0 += cuda_moment_row_block) {
    const index r1 = std::min(N, r0 + cuda_moment_row_block), keys = past_end(r1 - 1, r.m);
    if (keys == 0) continue;  // rows of an empty past: their C_t is set to 0 below
    gemm_batched<S>(r.blas, r1 - r0, w, keys, S(1), {b.P + r0 * N, N, N * N}, {b.X, w, N * w}, S(0), b.M + r0 * w, w,
                    N * w, B, "cublasXgemmStridedBatched(moments)");
  }
  covariance_kernel<S><<<unsigned(r.tokens), threads, 0, r.stream>>>(b.C, b.M, N, p, r.m);
  check_launch("covariance_kernel launch");
  gemm_batched<S>(r.blas, p, p, p, S(1), {b.C, p, pp}, {A_h, p, 0}, S(0), b.T, p, pp, r.tokens,
                  "cublasXgemmStridedBatched(C A)");
  if (r.m == mask::inclusive) {
    gemm_batched<S>(r.blas, N, p, p, S(1), r.U_rows(), {A_h, p, 0, true}, S(0), b.G, p, N * p, B,
                    "cublasXgemmStridedBatched(A u)");
    inclusive_terms_kernel<S><<<unsigned(r.tokens), threads, 0, r.stream>>>(b.T, b.P, b.Uc, b.M, b.G, N, p);
    check_launch("inclusive_terms_kernel launch");
  }
}

// Steps 1 to 3: J_t = I - sum_h V_h T^h_t in r.buf.J (the last head's terms left in the buffers).
template <class S>
void barrier_jacobians(const cuda_barrier_run<S>& r) {
  const cuda_barrier_buffers<S>& b = r.buf;
  const index p = r.p, pp = r.pp, tokens = r.tokens;
  const int threads = cuda_barrier_threads;
  barrier_prepare(r);
  identity_kernel<S><<<blocks_for(tokens * pp, threads * 8), threads, 0, r.stream>>>(b.J, tokens, p);
  check_launch("identity_kernel launch");
  for (index h = 0; h < r.H; ++h) {
    barrier_head_terms(r, h);
    gemm_batched<S>(r.blas, p, p, p, S(-1), {b.V + h * pp, p, 0}, {b.T, p, pp}, S(1), b.J, p, pp, tokens,
                    "cublasXgemmStridedBatched(J)");
  }
}

// Step 4: the LU of every J_t in place (pivots in r.buf.pivots); sign, log|det| and b_t into out.
template <class S>
void barrier_log_dets(const cuda_barrier_run<S>& r, const cuda_token_barrier<S>& out, const barrier_params& barrier) {
  const cuda_barrier_buffers<S>& b = r.buf;
  const int threads = cuda_barrier_threads;
  block_pointers_kernel<S><<<blocks_for(r.tokens, threads), threads, 0, r.stream>>>(b.J_ptr, b.J, r.tokens, r.p);
  check_launch("block_pointers_kernel launch");
  lu_batched<S>(r.blas, r.p, b.J_ptr, b.pivots, b.info, r.tokens);
  token_barrier_kernel<S><<<blocks_for(r.tokens, threads), threads, 0, r.stream>>>(out, b.J, b.pivots, r.N, r.p,
                                                                                  barrier);
  check_launch("token_barrier_kernel launch");
}

// Steps 1 to 4.
template <class S>
void barrier_forward_pass(const cuda_barrier_run<S>& r, const cuda_token_barrier<S>& out,
                          const barrier_params& barrier) {
  barrier_jacobians(r);
  barrier_log_dets(r, out, barrier);
}

}  // namespace detail

// Bytes of workspace barrier_per_token(cuda, ...) (backward: barrier_backward(cuda, ...)) needs for
// B sequences of N tokens under `heads` (cuda/barrier_plan.hpp lists the buffers). Only the extents
// of the heads' views are read.
template <class S>
std::size_t barrier_workspace_bytes(cuda, index B, index N, const cuda_heads<S>& heads,
                                    const attention_core_params& attention = {}, bool backward = false) {
  detail::require(B > 0, "B", "must be positive, got ", B);
  detail::require(N > 0, "N", "must be positive, got ", N);
  detail::require(heads.W_Q.batch > 0 && heads.W_Q.cols > 0, "heads.W_Q", "expected at least one head of p >= 1");
  return detail::barrier_layout(B, N, heads.W_Q.cols, heads.W_Q.batch, heads.W_Q.rows, attention.causal_mask,
                                sizeof(S), backward ? detail::barrier_pass::backward : detail::barrier_pass::forward)
      .bytes;
}

// b_t, log|det J_t| and the sign of det J_t for every token of the B sequences of U (B, N, p)
// under the heads (cuda/barrier_plan.hpp), on the GPU in S = float or double. Enqueued on
// backend.stream; cuBLAS through backend.blas; nothing is allocated and nothing synchronised.
// Throws suptok::error naming the argument (before anything is enqueued) and suptok::cuda_error
// naming the CUDA or cuBLAS call that failed.
template <class S>
void barrier_per_token(cuda backend, const cuda_token_barrier<S>& out, const batched_view<const S>& U,
                       const cuda_heads<S>& heads, const barrier_params& barrier,
                       const attention_core_params& attention, void* workspace, std::size_t workspace_bytes) {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "the CUDA barrier computes in float or double");
  detail::require(backend.blas != nullptr, "backend.blas", "a cuBLAS handle is needed (cublasCreate)");
  detail::validate_cuda_barrier(out, U, heads, attention, barrier, workspace, workspace_bytes);
  const detail::blas_scope scope(backend.blas, backend.stream);
  detail::barrier_forward_pass(detail::cuda_barrier_run<S>(backend, U, heads, attention, workspace,
                                                            detail::barrier_pass::forward),
                               out, barrier);
}

}  // namespace suptok
