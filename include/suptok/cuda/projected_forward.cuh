// suptok/cuda/projected_forward.cuh: the barrier b_t = f(det J_t) of every token on NVIDIA GPUs in
// the projected form (docs/math.md section 2.3; nvcc only): det J_t = det(I_n - K_t), n = H d_v,
// without a (p, p) matrix. The entry point is barrier_per_token(cuda, ..., jacobian_form::projected)
// (cuda/barrier_forward.cuh); the workspace: cuda/barrier_layout.hpp.
//
// Per call, in the scalar S (float or double), on the caller's stream, W = [W_O^0 ... W_O^{H-1}]:
//   1. PQ_h = W_Q^h W / tau (d_k, n) [inclusive: KO_h = W_K^h W / tau, VO_h = W_V^h W] for every
//      head (per head one product batched over the column blocks W_O^h');
//   2. Uc = U - mean (per sequence: the covariances below do not change under a shift);
//   3. J'_t = I_n, then per head h:
//        Q = U W_Q^T, K = U W_K^T, a_ts                     (as the packed form: from U, not Uc)
//        v_s = W_V uc_s, k_s = W_K uc_s                     (cuBLAS, into the tail of Z_s)
//        Z_s = [vec(v_s k_s^T), v_s, k_s]                   (a block per token)
//        M_t = sum_s a_ts Z_s = [m_vk, vbar_t, kbar_t]      (cuBLAS, as the packed moments)
//        X_t = m_vk - vbar_t kbar_t^T  (d_v, d_k)           (in place; 0 when P(t) holds at most
//                                                            one token)
//        rows of head h:  J'_t -= X_t PQ_h                  (cuBLAS, batched over tokens)
//        inclusive mask:  J'_t -= a_tt (VO_h + (v_t - vbar_t)(q_t^T KO_h))  (q_t^T KO_h by cuBLAS)
//   4. a pivoted LU of every J'_t (n x n), sign, log|det| and b_t as in the packed form.
// Per (t, s) pair a head costs 2 d_v d_k operations instead of the packed form's p (p + 3); the LU
// (2/3 n^3 per token) and J'_t's memory (n^2 per token) are then the largest costs.
#pragma once

#include <cstddef>

#include "barrier_common.cuh"

namespace suptok::detail {

// Z_s = [vec(v_s k_s^T) row by row, v_s, k_s] from its tail (v_s, k_s), already in place. One
// block per token.
template <class S>
__global__ void projected_pack_kernel(S* Z, index d_v, index d_k) {
  const index token = blockIdx.x, vk = d_v * d_k;
  S* z = Z + token * projected_moment_width(d_v, d_k);
  const S* v = z + vk;
  const S* k = v + d_v;
  for (index e = threadIdx.x; e < vk; e += blockDim.x) z[e] = v[e / d_k] * k[e % d_k];
}

// X_t = m_vk - vbar_t kbar_t^T over the first d_v d_k moments of M_t = [m_vk, vbar_t, kbar_t], in
// place; 0 where P(t) holds at most one token (the covariance of one point). One block per token.
template <class S>
__global__ void cross_covariance_kernel(S* M, index N, index d_v, index d_k, mask m) {
  const index token = blockIdx.x, t = token % N, vk = d_v * d_k;
  S* x = M + token * projected_moment_width(d_v, d_k);
  const S* vbar = x + vk;
  const S* kbar = vbar + d_v;
  const bool single = past_end(t, m) <= 1;
  for (index e = threadIdx.x; e < vk; e += blockDim.x) x[e] = single ? S(0) : x[e] - vbar[e / d_k] * kbar[e % d_k];
}

// Inclusive mask, head h's rows (d_v, cols) of a per-token matrix target (B N, n, cols):
// += sign a_tt (V + (v_t - vbar_t) c_t^T), V (d_v, cols) of row stride ldv, c_t (cols) the row of
// C: for J'_t (sign -1) V = VO_h and c_t = KO_h^T q_t, for Y_t (sign +1) V = W_V^h and
// c_t = W_K^h^T q_t / tau (docs/math.md section 2.3). One block per token.
template <class S>
__global__ void projected_inclusive_kernel(S* target, index cols, S sign, const S* P, const S* Z, const S* M,
                                           const S* V, index ldv, const S* C, index N, index n, index d_v, index d_k,
                                           index h) {
  const index token = blockIdx.x, t = token % N, w = projected_moment_width(d_v, d_k), vk = d_v * d_k;
  const S a = sign * P[token * N + t];
  const S* v = Z + token * w + vk;
  const S* vbar = M + token * w + vk;
  const S* c = C + token * cols;
  S* rows = target + (token * n + h * d_v) * cols;
  for (index e = threadIdx.x; e < d_v * cols; e += blockDim.x) {
    const index i = e / cols, j = e % cols;
    rows[e] += a * (V[i * ldv + j] + (v[i] - vbar[i]) * c[j]);
  }
}

// The projected form's workspace buffers (cuda/barrier_layout.hpp) as typed pointers.
template <class S>
struct cuda_projected_buffers {
  S *PQ, *KO, *VO, *mean, *Uc, *Q, *K, *P, *Z, *M, *Cq, *J;
  S** J_ptr;
  int *pivots, *info;
  S *Inv, *W, *dW, *dP, *R, *e, *ones, *att, *ddv, *dCq, *Y, *dPQ, *dKO, *dVOt, *dQ, *dK, *dVs, *dKs, *Un;
  S** Inv_ptr;
  S *Yt, *Cp, *x, *y, *t, *v;
  S** v_ptr;
  power_state<S>* state;

  cuda_projected_buffers(void* workspace, const cuda_projected_layout& l) {
    char* base = static_cast<char*>(workspace);
    const auto at = [&](std::size_t offset) { return reinterpret_cast<S*>(base + offset); };
    PQ = at(l.PQ), KO = at(l.KO), VO = at(l.VO), mean = at(l.mean), Uc = at(l.Uc), Q = at(l.Q), K = at(l.K);
    P = at(l.P), Z = at(l.Z), M = at(l.M), Cq = at(l.Cq), J = at(l.J);
    J_ptr = reinterpret_cast<S**>(base + l.J_ptr);
    pivots = reinterpret_cast<int*>(base + l.pivots);
    info = reinterpret_cast<int*>(base + l.info);
    Inv = at(l.Inv), W = at(l.W), dW = at(l.dW), dP = at(l.dP), R = at(l.R), e = at(l.e), ones = at(l.ones);
    att = at(l.att), ddv = at(l.ddv), dCq = at(l.dCq), Y = at(l.Y), dPQ = at(l.dPQ), dKO = at(l.dKO);
    dVOt = at(l.dVOt), dQ = at(l.dQ), dK = at(l.dK), dVs = at(l.dVs), dKs = at(l.dKs), Un = at(l.Un);
    Inv_ptr = reinterpret_cast<S**>(base + l.Inv_ptr);
    Yt = at(l.Yt), Cp = at(l.Cp), x = at(l.x), y = at(l.y), t = at(l.t), v = at(l.v);
    v_ptr = reinterpret_cast<S**>(base + l.v_ptr);
    state = reinterpret_cast<power_state<S>*>(base + l.state);
  }
};

// One validated call of the projected form: the operands and the workspace's buffers.
template <class S>
struct cuda_projected_run : cuda_barrier_operands<S> {
  index n, w;
  cuda_projected_buffers<S> buf;

  cuda_projected_run(const cuda& backend, const batched_view<const S>& U_, const cuda_heads<S>& heads_,
                     const attention_core_params& attention, void* workspace, barrier_pass pass)
      : cuda_barrier_operands<S>(backend, U_, heads_, attention), n(this->H * this->d_v),
        w(projected_moment_width(this->d_v, this->d_k)),
        buf(workspace,
            projected_layout(this->B, this->N, this->p, this->H, this->d_k, this->d_v, this->m, sizeof(S), pass)) {}
};

// out_h = scale W^h [W_O^0 ... W_O^{H-1}] ((rows, n) for every head h of W (H, rows, p)): per head
// one product batched over the column blocks h'.
template <class S>
void times_outputs(const cuda_projected_run<S>& r, const batched_view<const S>& W, S scale, S* out,
                   const char* call) {
  const auto& Wo = r.heads.W_O;
  for (index h = 0; h < r.H; ++h)
    gemm_batched<S>(r.blas, W.rows, r.d_v, r.p, scale, {W.row(h, 0), W.row_stride, 0},
                    {Wo.data, Wo.row_stride, Wo.batch_stride}, S(0), out + h * W.rows * r.n, r.n, r.d_v, r.H, call);
}

// Step 3 for head h up to its terms: Q, K, the weights a_ts in P, Z and X_t in M.
template <class S>
void projected_head_terms(const cuda_projected_run<S>& r, index h) {
  const auto& Wk = r.heads.W_K;
  const auto& Wv = r.heads.W_V;
  const index N = r.N, w = r.w, d_k = r.d_k, d_v = r.d_v, vk = d_v * d_k;
  const cuda_projected_buffers<S>& b = r.buf;
  const int threads = cuda_barrier_threads;
  attention_weights(r, h, b.Q, b.K, b.P);
  const blas_operand<S> Uc{b.Uc, r.p, N * r.p};
  gemm_batched<S>(r.blas, N, d_v, r.p, S(1), Uc, {Wv.row(h, 0), Wv.row_stride, 0, true}, S(0), b.Z + vk, w, N * w,
                  r.B, "cublasXgemmStridedBatched(centred values)");
  gemm_batched<S>(r.blas, N, d_k, r.p, S(1), Uc, {Wk.row(h, 0), Wk.row_stride, 0, true}, S(0), b.Z + vk + d_v, w,
                  N * w, r.B, "cublasXgemmStridedBatched(centred keys)");
  projected_pack_kernel<S><<<unsigned(r.tokens), threads, 0, r.stream>>>(b.Z, d_v, d_k);
  check_launch("projected_pack_kernel launch");
  causal_moments(r, b.P, b.Z, w, b.M);
  cross_covariance_kernel<S><<<unsigned(r.tokens), threads, 0, r.stream>>>(b.M, N, d_v, d_k, r.m);
  check_launch("cross_covariance_kernel launch");
}

// A per-token matrix (B N, n, cols) that head h's terms add rows to: rows of head h
//   += sign (X_t q_factor [inclusive: + a_tt (v_factor + (v_t - vbar_t) (q_t^T k_factor))]),
// the q and k factors (d_k, cols) scaled by `scale`, the v factor (d_v, cols), all shared by the
// tokens (stride 0). J'_t = I - K_t and Y_t (K_t = Y_t W) are the two (step 3's J'_t and
// cuda/projected_margins.cuh's Y_t).
template <class S>
struct projected_rows {
  S* target;
  index cols;
  blas_operand<S> q_factor, k_factor, v_factor;
  S scale, sign, beta;  // beta: 1 adds to the target's rows, 0 sets them
  S* c;                 // (B, N, cols): q_t^T k_factor scale (inclusive mask only)
  const char *q_call, *k_call;
};

// J'_t's rows: PQ_h, KO_h and VO_h (cols n, their 1 / tau included), subtracted from I.
template <class S>
projected_rows<S> complement_rows(const cuda_projected_run<S>& r, index h) {
  const cuda_projected_buffers<S>& b = r.buf;
  const index n = r.n;
  return {b.J, n, {b.PQ + h * r.d_k * n, n}, {b.KO + h * r.d_k * n, n}, {b.VO + h * r.d_v * n, n}, S(1), S(-1), S(1),
          b.Cq, "cublasXgemmStridedBatched(X PQ)", "cublasXgemmStridedBatched(q KO)"};
}

// Inclusive mask: c_t = q_t^T k_factor scale (cols) of every token into to.c, from head h's Q.
template <class S>
void inclusive_query_rows(const cuda_projected_run<S>& r, const projected_rows<S>& to) {
  gemm_batched<S>(r.blas, r.N, to.cols, r.d_k, to.scale, {r.buf.Q, r.d_k, r.N * r.d_k}, to.k_factor, S(0), to.c,
                  to.cols, r.N * to.cols, r.B, to.k_call);
}

// Step 3 for head h past its terms: its rows of the target.
template <class S>
void add_head_rows(const cuda_projected_run<S>& r, index h, const projected_rows<S>& to) {
  const index N = r.N, n = r.n, d_k = r.d_k, d_v = r.d_v, cols = to.cols;
  const cuda_projected_buffers<S>& b = r.buf;
  gemm_batched<S>(r.blas, d_v, cols, d_k, to.sign * to.scale, {b.M, d_k, r.w}, to.q_factor, to.beta,
                  to.target + h * d_v * cols, cols, n * cols, r.tokens, to.q_call);
  if (r.m != mask::inclusive) return;
  inclusive_query_rows(r, to);
  projected_inclusive_kernel<S><<<unsigned(r.tokens), cuda_barrier_threads, 0, r.stream>>>(
      to.target, cols, to.sign, b.P, b.Z, b.M, to.v_factor.data, to.v_factor.ld, to.c, N, n, d_v, d_k, h);
  check_launch("projected_inclusive_kernel launch");
}

// Steps 1 and 2, and J'_t = I.
template <class S>
void projected_prepare(const cuda_projected_run<S>& r) {
  const cuda_projected_buffers<S>& b = r.buf;
  const int threads = cuda_barrier_threads;
  times_outputs(r, r.heads.W_Q, r.inv_tau, b.PQ, "cublasXgemmStridedBatched(PQ)");
  if (r.m == mask::inclusive) {
    times_outputs(r, r.heads.W_K, r.inv_tau, b.KO, "cublasXgemmStridedBatched(KO)");
    times_outputs(r, r.heads.W_V, S(1), b.VO, "cublasXgemmStridedBatched(VO)");
  }
  centre_kernel<S><<<unsigned(r.B), threads, 0, r.stream>>>(b.Uc, b.mean, r.U);
  check_launch("centre_kernel launch");
  identity_kernel<S><<<blocks_for(r.tokens * r.n * r.n, threads * 8), threads, 0, r.stream>>>(b.J, r.tokens, r.n);
  check_launch("identity_kernel launch");
}

// Steps 1 to 4.
template <class S>
void projected_forward_pass(const cuda_projected_run<S>& r, const cuda_token_barrier<S>& out,
                            const barrier_params& barrier) {
  const cuda_projected_buffers<S>& b = r.buf;
  projected_prepare(r);
  for (index h = 0; h < r.H; ++h) {
    projected_head_terms(r, h);
    add_head_rows(r, h, complement_rows(r, h));
  }
  lu_log_dets(r, b.J, b.J_ptr, b.pivots, b.info, r.n, out, barrier);
}

}  // namespace suptok::detail
