// suptok/cuda/barrier_forward.cuh: the barrier b_t = f(det J_t) of every token on NVIDIA GPUs,
// packed form (docs/math.md sections 2.1, 2.2 and 3; nvcc only), and the entry points of both
// forms (the projected one: cuda/projected_forward.cuh). Shapes and checks: cuda/barrier_plan.hpp;
// the workspace: cuda/barrier_layout.hpp.
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
#include <cstddef>
#include <type_traits>

#include "barrier_common.cuh"
#include "projected_forward.cuh"

namespace suptok {
namespace detail {

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

// The workspace's buffers (cuda/barrier_layout.hpp) as typed pointers; the backward's are null-sized
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

// One validated call of the packed form: the operands and the workspace's buffers.
template <class S>
struct cuda_barrier_run : cuda_barrier_operands<S> {
  index w, pp;
  cuda_barrier_buffers<S> buf;

  cuda_barrier_run(const cuda& backend, const batched_view<const S>& U_, const cuda_heads<S>& heads_,
                   const attention_core_params& attention, void* workspace, barrier_pass pass)
      : cuda_barrier_operands<S>(backend, U_, heads_, attention), w(barrier_packed_width(this->p)),
        pp(this->p * this->p),
        buf(workspace, barrier_layout(this->B, this->N, this->p, this->H, this->d_k, this->m, sizeof(S), pass)) {}
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
  const index B = r.B, N = r.N, p = r.p, pp = r.pp;
  const cuda_barrier_buffers<S>& b = r.buf;
  const S* A_h = b.A + h * pp;
  const int threads = cuda_barrier_threads;
  attention_weights(r, h, b.Q, b.K, b.P);
  causal_moments(r, b.P, b.X, r.w, b.M);  // rows of an empty past: their C_t is set to 0 below
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
  lu_log_dets(r, r.buf.J, r.buf.J_ptr, r.buf.pivots, r.buf.info, r.p, out, barrier);
}

// Steps 1 to 4.
template <class S>
void barrier_forward_pass(const cuda_barrier_run<S>& r, const cuda_token_barrier<S>& out,
                          const barrier_params& barrier) {
  barrier_jacobians(r);
  barrier_log_dets(r, out, barrier);
}

}  // namespace detail

// Bytes of workspace barrier_per_token(cuda, ..., form) needs for B sequences of N tokens under
// `heads` (cuda/barrier_layout.hpp lists the buffers), or with `backward` barrier_backward(cuda,
// ..., form). Only the extents of the heads' views are read.
template <class S>
std::size_t barrier_workspace_bytes(cuda, index B, index N, const cuda_heads<S>& heads,
                                    const attention_core_params& attention = {}, bool backward = false,
                                    jacobian_form form = jacobian_form::general) {
  detail::validate_workspace_query(B, N, heads, form);
  return detail::cuda_barrier_bytes(B, N, heads, attention.causal_mask,
                                    backward ? detail::barrier_pass::backward : detail::barrier_pass::forward,
                                    detail::resolve_cuda_form(form, N, heads.W_Q.cols, heads));
}

// b_t, log|det J_t| and the sign of det J_t for every token of the B sequences of U (B, N, p)
// under the heads (cuda/barrier_plan.hpp), on the GPU in S = float or double, in the packed form
// (jacobian_form::general: cuda/barrier_forward.cuh above, p <= 1024), the projected form
// (cuda/projected_forward.cuh: heads narrower than the model), or the cheaper of the two for the
// call (automatic: choose_form). Both forms give the same values up to rounding. Enqueued on
// backend.stream; cuBLAS through backend.blas; nothing is allocated and nothing synchronised.
// Throws suptok::error naming the argument (before anything is enqueued) and suptok::cuda_error
// naming the CUDA or cuBLAS call that failed.
template <class S>
void barrier_per_token(cuda backend, const cuda_token_barrier<S>& out, const batched_view<const S>& U,
                       const cuda_heads<S>& heads, const barrier_params& barrier,
                       const attention_core_params& attention, void* workspace, std::size_t workspace_bytes,
                       jacobian_form form = jacobian_form::general) {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "the CUDA barrier computes in float or double");
  detail::require(backend.blas != nullptr, "backend.blas", "a cuBLAS handle is needed (cublasCreate)");
  const jacobian_form resolved =
      detail::validate_cuda_barrier(out, U, heads, attention, barrier, workspace, workspace_bytes, form);
  const detail::blas_scope scope(backend.blas, backend.stream);
  if (resolved == jacobian_form::projected)
    detail::projected_forward_pass(
        detail::cuda_projected_run<S>(backend, U, heads, attention, workspace, detail::barrier_pass::forward), out,
        barrier);
  else
    detail::barrier_forward_pass(detail::cuda_barrier_run<S>(backend, U, heads, attention, workspace,
                                                              detail::barrier_pass::forward),
                                 out, barrier);
}

}  // namespace suptok
