// suptok/cuda/margins.cuh: the stability margins of every token on NVIDIA GPUs (docs/math.md
// section 3; nvcc only): token_margins(cuda, ...) in the packed form below (exact singular values,
// p <= 128) or the projected form (cuda/projected_margins.cuh: iterations, any p). Shapes and
// checks: cuda/barrier_plan.hpp.
//
// Packed form, per call, in S (float or double), on the caller's stream:
//   1. J_t for every token, as barrier_per_token(cuda, ...) forms them (cuda/barrier_forward.cuh);
//   2. the singular values of every J_t by a one-sided Jacobi SVD (Hestenes), one block per token
//      with J_t in shared memory. Its rows (the singular values of J_t^T are those of J_t) are
//      rotated in pairs, a warp per pair, until every pair is orthogonal to within p eps_S
//      (|gamma| <= p eps_S sqrt(alpha beta)):
//        alpha = |r_i|^2, beta = |r_j|^2, gamma = r_i . r_j,  zeta = (beta - alpha) / (2 gamma),
//        t = sign(zeta) / (|zeta| + sqrt(1 + zeta^2)),  c = 1 / sqrt(1 + t^2),  s = c t,
//        r_i <- c r_i - s r_j,  r_j <- s r_i + c r_j      (then r_i . r_j = 0),
//      each sweep in the round-robin order (p_even - 1 rounds of p_even / 2 disjoint pairs). The
//      singular values are then the rows' norms: sigma_min, sigma_max and kappa = sigma_max /
//      sigma_min (+inf where sigma_min = 0);
//   3. the pivoted LU of every J_t (cublasXgetrfBatched) for the sign and log|det J_t|, and
//      signed_margin = sign(det J_t) sigma_min.
// One-sided Jacobi computes the singular values to high relative accuracy (Demmel and Veselic,
// "Jacobi's method is more accurate than QR", SIAM J. Matrix Anal. Appl. 13, 1992), as Eigen's
// two-sided JacobiSVD of the CPU paths does. A J_t that does not converge in 40 sweeps, or is not
// finite, gives NaN margins (sign and log|det| as the forward).
#pragma once

#include "barrier_forward.cuh"
#include "projected_margins.cuh"

namespace suptok {
namespace detail {

inline constexpr int cuda_margin_threads = 256;
inline constexpr int cuda_jacobi_max_sweeps = 40;

// sigma_min, sigma_max and kappa of every J_t (p, p) in J; NaN where the sweeps do not converge or
// J_t is not finite. One block per token; shared memory margin_shared_bytes(p, sizeof(S)).
template <class S>
__global__ void jacobi_svd_kernel(cuda_token_margins<S> out, const S* J, index N, index p) {
  extern __shared__ unsigned char shared_bytes[];
  S* rows = reinterpret_cast<S*>(shared_bytes);
  __shared__ int rotated;
  const index token = blockIdx.x, b = token / N, t = token % N, n = p + p % 2, ld = n + 1;
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, warps = int(blockDim.x) / 32;
  for (index e = threadIdx.x; e < n * ld; e += blockDim.x) {  // row r of J_t in rows[r * ld, + p), zeros around
    const index r = e / ld, c = e % ld;
    rows[e] = r < p && c < p ? J[token * p * p + r * p + c] : S(0);
  }
  const S tolerance = S(p) * std::numeric_limits<S>::epsilon();  // LAPACK's xGESVJ uses sqrt(p) eps
  bool converged = false;
  for (int sweep = 0; sweep < cuda_jacobi_max_sweeps && !converged; ++sweep) {
    if (threadIdx.x == 0) rotated = 0;
    __syncthreads();
    for (index round = 0; round < n - 1; ++round) {
      for (index q = warp; q < n / 2; q += warps) {
        index i, j;
        round_robin_pair(n, round, q, i, j);
        S* ri = rows + i * ld;
        S* rj = rows + j * ld;
        S alpha = 0, beta = 0, gamma = 0;
        for (index k = lane; k < p; k += 32) {
          alpha += ri[k] * ri[k];
          beta += rj[k] * rj[k];
          gamma += ri[k] * rj[k];
        }
        alpha = warp_sum(alpha), beta = warp_sum(beta), gamma = warp_sum(gamma);
        if (!(fabs(gamma) > tolerance * sqrt(alpha) * sqrt(beta))) continue;  // orthogonal, a zero row or NaN
        const S zeta = (beta - alpha) / (2 * gamma);
        const S tan = (zeta >= 0 ? S(1) : S(-1)) / (fabs(zeta) + hypot(S(1), zeta));  // no overflow in zeta^2
        const S cos = 1 / sqrt(1 + tan * tan), sin = cos * tan;
        for (index k = lane; k < p; k += 32) {
          const S x = ri[k], y = rj[k];
          ri[k] = cos * x - sin * y;
          rj[k] = sin * x + cos * y;
        }
        if (lane == 0) rotated = 1;
      }
      __syncthreads();
    }
    converged = rotated == 0;
    __syncthreads();  // every thread has read `rotated` before the next sweep clears it
  }
  if (threadIdx.x != 0) return;
  S smallest = INFINITY, largest = 0;
  bool finite = converged;
  for (index r = 0; r < p; ++r) {
    S norm2 = 0;
    for (index k = 0; k < p; ++k) norm2 += rows[r * ld + k] * rows[r * ld + k];
    const S sigma = sqrt(norm2);
    finite = finite && isfinite(sigma);
    smallest = fmin(smallest, sigma);
    largest = fmax(largest, sigma);
  }
  const S nan = S(NAN);
  out.sigma_min.row(b, t)[0] = finite ? smallest : nan;
  out.sigma_max.row(b, t)[0] = finite ? largest : nan;
  out.kappa.row(b, t)[0] = !finite ? nan : smallest == 0 ? S(INFINITY) : largest / smallest;
}

// signed_margin = sign * sigma_min, one thread per token.
template <class S>
__global__ void signed_margin_kernel(cuda_token_margins<S> out, index tokens, index N) {
  const index token = index(blockIdx.x) * blockDim.x + threadIdx.x;
  if (token >= tokens) return;
  const index b = token / N, t = token % N;
  out.signed_margin.row(b, t)[0] = S(out.sign.row(b, t)[0]) * out.sigma_min.row(b, t)[0];
}

}  // namespace detail

// Bytes of workspace token_margins(cuda, ..., form) needs for B sequences of N tokens under
// `heads` (cuda/barrier_layout.hpp): the packed forward's, or the projected form's with the
// iterations' buffers (about twice its forward's: Y_t beside J'_t). Only the extents of the heads'
// views are read.
template <class S>
std::size_t margins_workspace_bytes(cuda, index B, index N, const cuda_heads<S>& heads,
                                    const attention_core_params& attention = {},
                                    jacobian_form form = jacobian_form::general) {
  detail::validate_workspace_query(B, N, heads, form);
  return detail::cuda_margin_bytes(B, N, heads, attention.causal_mask,
                                   detail::resolve_cuda_margin_form(form, heads.W_Q.cols));
}

// sign and log|det J_t|, sigma_min(J_t), sign(det J_t) sigma_min, sigma_max and kappa for every
// token of the B sequences of U (B, N, p) under the heads (cuda/barrier_plan.hpp), on the GPU in
// S = float or double: in the packed form (jacobian_form::general, p <= 128) by the SVD above, in
// the projected form (any p) by power and inverse iteration with `iteration`'s tolerance and
// max_iterations steps (cuda/projected_margins.cuh), or automatic: packed where p <= 128. The
// workspace: margins_workspace_bytes(cuda, B, N, heads, attention, form). Enqueued on
// backend.stream; cuBLAS through backend.blas; nothing allocated or synchronised. Throws
// suptok::error naming the argument (before anything is enqueued) and suptok::cuda_error naming
// the CUDA or cuBLAS call that failed.
template <class S>
void token_margins(cuda backend, const cuda_token_margins<S>& out, const batched_view<const S>& U,
                   const cuda_heads<S>& heads, const attention_core_params& attention, void* workspace,
                   std::size_t workspace_bytes, jacobian_form form = jacobian_form::general,
                   const iteration_params& iteration = {}) {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "the CUDA margins compute in float or double");
  detail::require(backend.blas != nullptr, "backend.blas", "a cuBLAS handle is needed (cublasCreate)");
  const jacobian_form resolved =
      detail::validate_cuda_margins(out, U, heads, attention, workspace, workspace_bytes, form, iteration);
  const detail::blas_scope scope(backend.blas, backend.stream);
  if (resolved == jacobian_form::projected) {
    detail::projected_margins_pass(
        detail::cuda_projected_run<S>(backend, U, heads, attention, workspace, detail::barrier_pass::margins), out,
        iteration);
    return;
  }
  const detail::cuda_barrier_run<S> r(backend, U, heads, attention, workspace, detail::barrier_pass::forward);
  detail::barrier_jacobians(r);
  const std::size_t shared = detail::margin_shared_bytes(r.p, sizeof(S));
  detail::cuda_check(cudaFuncSetAttribute(detail::jacobi_svd_kernel<S>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(shared)),
                     "cudaFuncSetAttribute(jacobi_svd_kernel)");
  detail::jacobi_svd_kernel<S><<<unsigned(r.tokens), detail::cuda_margin_threads, shared, r.stream>>>(out, r.buf.J,
                                                                                                     r.N, r.p);
  detail::check_launch("jacobi_svd_kernel launch");
  // The LU for the sign and log|det|. b_t is not an output here: the LU's token kernel writes it to
  // signed_margin's place, overwritten by signed_margin_kernel.
  detail::barrier_log_dets(r, {out.signed_margin, out.log_abs, out.sign}, barrier_params{});
  detail::signed_margin_kernel<S><<<detail::blocks_for(r.tokens, detail::cuda_barrier_threads),
                                    detail::cuda_barrier_threads, 0, r.stream>>>(out, r.tokens, r.N);
  detail::check_launch("signed_margin_kernel launch");
}

}  // namespace suptok
