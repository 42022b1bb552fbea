// suptok/cuda/projected_margins.cuh: the stability margins of every token on NVIDIA GPUs in the
// projected form (docs/math.md sections 2.3 and 3; nvcc only), at widths the packed form's
// shared-memory SVD (cuda/margins.cuh) does not reach. The entry point is token_margins(cuda, ...,
// jacobian_form::projected) (cuda/margins.cuh); the workspace: cuda/barrier_layout.hpp.
//
// Per call, in S (float or double), on the caller's stream, W = [W_O^0 ... W_O^{H-1}] (p, n):
//   1. the projected forward's J'_t = I_n - K_t (cuda/projected_forward.cuh) and, from the same
//      per-head terms, Y_t (n, p) with the rows of head h
//        X_t W_Q^h / tau   [inclusive: + a_tt (W_V^h + (v_t - vbar_t) (q_t^T W_K^h / tau))],
//      so that K_t = Y_t W and J_t = I_p - W Y_t; the LU of J'_t gives sign and log|det J_t|;
//   2. sigma_max by power iteration and sigma_min by inverse iteration, barrier/singular_values.hpp's
//      steps and stopping rule for every token in lockstep, with the operators
//        J x = x - W (Y_t x)                    J^T y = y - Y_t^T (W^T y)
//        J^{-1} x = x + W J'_t^{-1} (Y_t x)     J^{-T} y = y + Y_t^T J'_t^{-T} (W^T y)   (Woodbury)
//      Y_t x and Y_t^T v by cuBLAS's batched matrix-vector products, W v and W^T y by one product
//      for all tokens, J'_t^{-1} and J'_t^{-T} by cuBLAS's batched solve with step 1's LU;
//   3. sigma_min = 1 / |J^{-1} x| (0 where det J_t = 0), signed_margin = sign sigma_min and
//      kappa = sigma_max / sigma_min.
// Nothing waits for the device, so each iteration runs iteration.max_iterations steps: a token
// whose estimate has stopped keeps it, and its rows ride along in the products. A step of the
// inverse iteration reads Y_t twice and the LU twice (2 n p + 2 n^2 elements per token), one of
// the power iteration Y_t twice. A J_t with non-finite entries (NaN log|det|) gets NaN margins.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>

#include "../barrier/singular_values.hpp"
#include "barrier_backward_common.cuh"
#include "projected_forward.cuh"

namespace suptok::detail {

inline constexpr int cuda_iteration_threads = 256;

// The maximum that keeps NaN (fmax drops it), and the sum: block_reduce's operations.
struct nan_max {
  template <class S>
  __device__ S operator()(S a, S b) const {
    return isnan(a) || a > b ? a : b;
  }
};
struct add {
  template <class S>
  __device__ S operator()(S a, S b) const {
    return a + b;
  }
};

// op over the values x of the block's threads (blockDim.x a multiple of 32), in every thread.
template <class S, class Op>
__device__ S block_reduce(S x, Op op) {
  __shared__ S partial[32];
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, warps = int(blockDim.x) / 32;
  for (int offset = 16; offset > 0; offset /= 2) x = op(x, __shfl_xor_sync(full_warp, x, offset));
  __syncthreads();  // every thread has read the previous reduction's partials
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  x = partial[0];
  for (int k = 1; k < warps; ++k) x = op(x, partial[k]);
  return x;
}

// |v| of `size` elements scaled by their largest magnitude (scaled_norm of
// barrier/singular_values.hpp): that magnitude itself where it is 0, infinite or NaN. In every
// thread; thread i reads the elements i, i + blockDim.x, ...
template <class S>
__device__ S block_scaled_norm(const S* v, index size) {
  S largest = 0;
  for (index i = threadIdx.x; i < size; i += blockDim.x) largest = nan_max{}(largest, S(fabs(v[i])));
  largest = block_reduce(largest, nan_max{});
  if (!(largest > S(0)) || !isfinite(largest)) return largest;
  S sum = 0;
  for (index i = threadIdx.x; i < size; i += blockDim.x) {
    const S scaled = v[i] / largest;
    sum += scaled * scaled;
  }
  return largest * sqrt(block_reduce(sum, add{}));
}

// out = a + sign b (size elements), normalised where its norm is positive; returns that norm
// (block_scaled_norm), in every thread of the block.
template <class S>
__device__ S combine_normalised(S* out, const S* a, S sign, const S* b, index size) {
  for (index i = threadIdx.x; i < size; i += blockDim.x) out[i] = a[i] + sign * b[i];
  const S norm = block_scaled_norm(out, size);
  if (norm > S(0))
    for (index i = threadIdx.x; i < size; i += blockDim.x) out[i] /= norm;
  return norm;
}

// x_t = (sin 1, ..., sin p) / |.| (start_vector of barrier/singular_values.hpp) and a fresh state
// for every token, iterating unless the inverse iteration meets det J_t = 0 (sign 0). One block
// per token.
template <class S>
__global__ void iteration_start_kernel(power_state<S>* state, S* x, batched_view<int> sign, index p, bool inverse) {
  const index token = blockIdx.x, N = sign.rows;
  S* xt = x + token * p;
  for (index i = threadIdx.x; i < p; i += blockDim.x) xt[i] = sin(S(i + 1));
  const S norm = block_scaled_norm(xt, p);
  for (index i = threadIdx.x; i < p; i += blockDim.x) xt[i] /= norm;
  if (threadIdx.x == 0)
    state[token] = {S(0), S(0), S(0), S(0), inverse ? int(sign.row(token / N, token % N)[0] != 0) : 1};
}

// After y = W v (v = Y_t x, or J'_t^{-1} Y_t x): y = x + sign y, J x (sign -1) or J^{-1} x (+1),
// the estimate |y| and y / |y|, for the tokens still iterating. One block per token.
template <class S>
__global__ void iteration_estimate_kernel(power_state<S>* state, S* y, const S* x, S sign, index p) {
  const index token = blockIdx.x;
  power_state<S>& st = state[token];
  if (!st.going) return;  // the whole block: st.going changes below, after every thread has read it
  const S norm = combine_normalised(y + token * p, x + token * p, sign, y + token * p, p);
  if (threadIdx.x != 0) return;
  st.previous = st.estimate;
  st.previous_change = st.change;
  st.estimate = norm;
  if (!(norm > S(0))) st.going = 0;  // 0 or NaN: final
}

// After t = Y_t^T v (v = W^T y, or J'_t^{-T} W^T y): x = y + sign t, J^T y or J^{-T} y, normalised,
// then the stopping rule of barrier/singular_values.hpp at step `step`. One block per token.
template <class S>
__global__ void iteration_direction_kernel(power_state<S>* state, S* x, const S* y, const S* t, S sign, int step,
                                           S tolerance, index p) {
  const index token = blockIdx.x;
  power_state<S>& st = state[token];
  if (!st.going) return;
  const S norm = combine_normalised(x + token * p, y + token * p, sign, t + token * p, p);
  if (threadIdx.x != 0) return;
  if (!(norm > S(0))) {
    st.going = 0;
    return;
  }
  if (step < 2) return;
  st.change = fabs(st.estimate - st.previous);
  if (!(st.change > S(4) * std::numeric_limits<S>::epsilon() * st.estimate)) {  // at rounding level
    st.going = 0;
    return;
  }
  const S rate = st.previous_change > S(0) ? st.change / st.previous_change : S(1);
  if (step >= 3 && rate < S(1) && st.change * rate / (S(1) - rate) <= tolerance * st.estimate) st.going = 0;
}

// sigma_max_t = the power iteration's estimate. One thread per token.
template <class S>
__global__ void largest_singular_value_kernel(cuda_token_margins<S> out, const power_state<S>* state, index tokens) {
  const index token = index(blockIdx.x) * blockDim.x + threadIdx.x, N = out.sign.rows;
  if (token < tokens) out.sigma_max.row(token / N, token % N)[0] = state[token].estimate;
}

// From the inverse iteration's |J^{-1} x|: sigma_min (0 where det J_t = 0, +inf where |J^{-1} x|
// underflowed to 0), signed_margin and kappa; every margin NaN for a non-finite J_t (NaN
// log|det|). One thread per token.
template <class S>
__global__ void projected_margins_kernel(cuda_token_margins<S> out, const power_state<S>* state, index tokens) {
  const index token = index(blockIdx.x) * blockDim.x + threadIdx.x, N = out.sign.rows;
  if (token >= tokens) return;
  const index b = token / N, t = token % N;
  const int sign = out.sign.row(b, t)[0];
  const bool finite = !isnan(out.log_abs.row(b, t)[0]);
  const S inverse_norm = state[token].estimate;
  const S sigma_min = !finite ? S(NAN) : sign == 0 ? S(0) : inverse_norm == S(0) ? S(INFINITY) : 1 / inverse_norm;
  const S sigma_max = finite ? out.sigma_max.row(b, t)[0] : S(NAN);
  out.sigma_min.row(b, t)[0] = sigma_min;
  out.sigma_max.row(b, t)[0] = sigma_max;
  out.signed_margin.row(b, t)[0] = S(sign) * sigma_min;
  out.kappa.row(b, t)[0] = sigma_min == S(0) ? S(INFINITY) : sigma_max / sigma_min;
}

// Y_t's rows: W_Q^h, W_K^h (scaled by 1 / tau) and W_V^h (cols p), set (beta 0).
template <class S>
projected_rows<S> query_rows(const cuda_projected_run<S>& r, index h) {
  const cuda_heads<S>& w = r.heads;
  return {r.buf.Yt, r.p, {w.W_Q.row(h, 0), w.W_Q.row_stride}, {w.W_K.row(h, 0), w.W_K.row_stride},
          {w.W_V.row(h, 0), w.W_V.row_stride}, r.inv_tau, S(1), S(0), r.buf.Cp,
          "cublasXgemmStridedBatched(X W_Q)", "cublasXgemmStridedBatched(q W_K)"};
}

// One step of the power iteration on J_t^T J_t (inverse: on (J_t^T J_t)^{-1}) for every token.
template <class S>
void iteration_step(const cuda_projected_run<S>& r, bool inverse, int step, S tolerance) {
  const cuda_projected_buffers<S>& b = r.buf;
  const index n = r.n, p = r.p, tokens = r.tokens;
  const S sign = inverse ? S(1) : S(-1);
  const int threads = cuda_iteration_threads;
  // v = Y_t x [J'_t^{-1} Y_t x], y = x -/+ W v
  gemv_batched<S>(r.blas, n, p, {b.Yt, p, n * p}, b.x, p, b.v, n, tokens, "cublasXgemvStridedBatched(Y x)");
  if (inverse) lu_solve_batched<S>(r.blas, n, b.J_ptr, b.pivots, b.v_ptr, false, tokens, "cublasXgetrsBatched(J')");
  gemm_batched<S>(r.blas, tokens, p, n, S(1), {b.v, n}, {b.W, n, 0, true}, S(0), b.y, p, 0, 1, "cublasXgemm(W v)");
  iteration_estimate_kernel<S><<<unsigned(tokens), threads, 0, r.stream>>>(b.state, b.y, b.x, sign, p);
  check_launch("iteration_estimate_kernel launch");
  // v = W^T y [J'_t^{-T} W^T y], x = y -/+ Y_t^T v
  gemm_batched<S>(r.blas, tokens, n, p, S(1), {b.y, p}, {b.W, n}, S(0), b.v, n, 0, 1, "cublasXgemm(W^T y)");
  if (inverse) lu_solve_batched<S>(r.blas, n, b.J_ptr, b.pivots, b.v_ptr, true, tokens, "cublasXgetrsBatched(J'^T)");
  gemv_batched<S>(r.blas, n, p, {b.Yt, p, n * p, true}, b.v, n, b.t, p, tokens, "cublasXgemvStridedBatched(Y^T v)");
  iteration_direction_kernel<S><<<unsigned(tokens), threads, 0, r.stream>>>(b.state, b.x, b.y, b.t, sign, step,
                                                                          tolerance, p);
  check_launch("iteration_direction_kernel launch");
}

// Steps 1 to 3 into out.
template <class S>
void projected_margins_pass(const cuda_projected_run<S>& r, const cuda_token_margins<S>& out,
                            const iteration_params& iteration) {
  const cuda_projected_buffers<S>& b = r.buf;
  const int threads = cuda_barrier_threads;
  projected_prepare(r);
  for (index h = 0; h < r.H; ++h) {
    projected_head_terms(r, h);
    add_head_rows(r, h, complement_rows(r, h));
    add_head_rows(r, h, query_rows(r, h));
  }
  // b_t is not an output here: the LU's token kernel writes it to signed_margin's place, which
  // projected_margins_kernel overwrites.
  lu_log_dets(r, b.J, b.J_ptr, b.pivots, b.info, r.n, {out.signed_margin, out.log_abs, out.sign}, barrier_params{});
  gather_outputs(r, b.W);
  block_pointers_kernel<S><<<blocks_for(r.tokens, threads), threads, 0, r.stream>>>(b.v_ptr, b.v, r.tokens, r.n);
  check_launch("block_pointers_kernel launch");
  const S tolerance = S(std::max(iteration.tolerance, 8 * double(std::numeric_limits<S>::epsilon())));
  const auto iterate = [&](bool inverse) {
    iteration_start_kernel<S><<<unsigned(r.tokens), cuda_iteration_threads, 0, r.stream>>>(b.state, b.x, out.sign,
                                                                                            r.p, inverse);
    check_launch("iteration_start_kernel launch");
    for (int step = 0; step < iteration.max_iterations; ++step) iteration_step(r, inverse, step, tolerance);
  };
  iterate(false);
  largest_singular_value_kernel<S><<<blocks_for(r.tokens, threads), threads, 0, r.stream>>>(out, b.state, r.tokens);
  check_launch("largest_singular_value_kernel launch");
  iterate(true);
  projected_margins_kernel<S><<<blocks_for(r.tokens, threads), threads, 0, r.stream>>>(out, b.state, r.tokens);
  check_launch("projected_margins_kernel launch");
}

}  // namespace suptok::detail
