// suptok/cuda/attention_forward.cuh: fused causal attention forward on NVIDIA GPUs (nvcc only).
//
// For each sequence-head b and token t (docs/math.md section 1; cuda/attention_plan.hpp has the
// shapes and the launch geometry):
//   l_ts = Q_t . K_s / tau,   lse_t = log sum_{s in P(t)} exp(l_ts),   O_t = sum_{s in P(t)} exp(l_ts - lse_t) V_s
// computed with an online softmax (FlashAttention): per row the running maximum m_t and sum l_t;
// a key tile whose maximum m' exceeds m_t rescales the running output and sum by exp(m_t - m').
// The (N, N) weights are never formed. Storage T is float, __nv_bfloat16 or __half; every
// product, exponential and sum is in float. Key tiles past a query tile's last key are skipped.
//
// One block: cuda_query_tile = 32 queries of one sequence-head, 4 warps of 8 query rows each. Per
// key tile of 32 keys (one per lane): the block loads K and V to shared memory; each warp forms
// its rows' logits (one key per lane, a d_k-long dot product), the tile maximum and sum by warp
// shuffles, and accumulates O_t: lane j keeps the output columns j, j + 32, ... of its warp's
// rows in registers (Chunks = d_v / 32 rounded up to a power of two), reading p_ts by shuffle.
//
// Unless backend.tensor_cores is cleared, bf16 and fp16 storage with d_k == d_v in {64, 128} and rows on 16
// bytes take the tensor-core kernel of cuda/attention_forward_mma.cuh instead (the rule:
// attention_uses_mma).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <type_traits>

#include "attention_forward_mma.cuh"
#include "attention_plan.hpp"
#include "backend.hpp"
#include "warp.cuh"

namespace suptok {
namespace detail {

__device__ inline float to_float(float x) { return x; }
__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ inline float to_float(__half x) { return __half2float(x); }

template <class T>
__device__ T from_float(float x);
template <>
__device__ inline float from_float<float>(float x) { return x; }
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <>
__device__ inline __half from_float<__half>(float x) { return __float2half(x); }

// Rows [r0, r0 + rows) of matrix b of src into dst (rows x src.cols floats, row stride
// dst_stride), by all threads of the block; rows past src.rows are zero.
template <class T>
__device__ void load_rows(float* dst, int dst_stride, const batched_view<const T>& src, index b, index r0, int rows) {
  const int cols = int(src.cols);
  for (int i = int(threadIdx.x); i < rows * cols; i += int(blockDim.x)) {
    const int r = i / cols, c = i - r * cols;
    dst[r * dst_stride + c] = r0 + r < src.rows ? to_float(src.row(b, r0 + r)[c]) : 0.f;
  }
}

template <class T, int Chunks>
__global__ void __launch_bounds__(32 * cuda_attention_warps)
    attention_forward_kernel(batched_view<T> O, batched_view<float> lse, batched_view<const T> Q,
                             batched_view<const T> K, batched_view<const T> V, float inv_tau, mask m) {
  constexpr int rows_per_warp = int(cuda_query_tile / cuda_attention_warps);
  extern __shared__ float shared[];
  const int d_k = int(Q.cols), d_v = int(V.cols), key_stride = d_k | 1;
  float* Qs = shared;                             // (cuda_query_tile, d_k)
  float* Ks = Qs + cuda_query_tile * d_k;         // (cuda_key_tile, key_stride)
  float* Vs = Ks + cuda_key_tile * key_stride;    // (cuda_key_tile, d_v)
  const index b = blockIdx.x, N = Q.rows;
  const index q0 = index(blockIdx.y) * cuda_query_tile;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const index first_row = q0 + warp * rows_per_warp;

  load_rows(Qs, d_k, Q, b, q0, int(cuda_query_tile));
  float row_max[rows_per_warp], row_sum[rows_per_warp], acc[rows_per_warp][Chunks];
#pragma unroll
  for (int i = 0; i < rows_per_warp; ++i) {
    row_max[i] = -INFINITY;
    row_sum[i] = 0.f;
#pragma unroll
    for (int c = 0; c < Chunks; ++c) acc[i][c] = 0.f;
  }

  const index keys_end = past_end((q0 + cuda_query_tile < N ? q0 + cuda_query_tile : N) - 1, m);
  for (index k0 = 0; k0 < keys_end; k0 += cuda_key_tile) {
    __syncthreads();  // every warp is done with the previous tile
    load_rows(Ks, key_stride, K, b, k0, int(cuda_key_tile));
    load_rows(Vs, d_v, V, b, k0, int(cuda_key_tile));
    __syncthreads();
    const index s = k0 + lane;
#pragma unroll
    for (int i = 0; i < rows_per_warp; ++i) {
      const index t = first_row + i;
      if (t >= N || k0 >= past_end(t, m)) continue;  // the same for the whole warp
      const float* q = Qs + (warp * rows_per_warp + i) * d_k;
      const float* k = Ks + lane * key_stride;
      float dot = 0.f;
      for (int c = 0; c < d_k; ++c) dot = fmaf(q[c], k[c], dot);
      const float logit = s < past_end(t, m) ? dot * inv_tau : -INFINITY;
      // Finite: key k0 is in P(t), so at least lane 0's logit is.
      const float new_max = fmaxf(row_max[i], warp_max(logit));
      const float p = expf(logit - new_max);            // 0 for the masked keys
      const float rescale = expf(row_max[i] - new_max);  // 0 on the row's first tile
      row_sum[i] = row_sum[i] * rescale + warp_sum(p);
      row_max[i] = new_max;
#pragma unroll
      for (int c = 0; c < Chunks; ++c) acc[i][c] *= rescale;
      for (int key = 0; key < int(cuda_key_tile); ++key) {
        const float p_key = __shfl_sync(full_warp, p, key);
#pragma unroll
        for (int c = 0; c < Chunks; ++c) {
          const int j = lane + 32 * c;
          if (j < d_v) acc[i][c] = fmaf(p_key, Vs[key * d_v + j], acc[i][c]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < rows_per_warp; ++i) {
    const index t = first_row + i;
    if (t >= N) continue;
    const bool empty_past = row_sum[i] == 0.f;  // t = 0 under the strict mask
    if (lane == 0) lse.row(b, t)[0] = empty_past ? -INFINITY : row_max[i] + logf(row_sum[i]);
    const float scale = empty_past ? 0.f : 1.f / row_sum[i];
    T* out = O.row(b, t);
#pragma unroll
    for (int c = 0; c < Chunks; ++c)
      if (const int j = lane + 32 * c; j < d_v) out[j] = from_float<T>(acc[i][c] * scale);
  }
}

template <class T, int Chunks>
void launch_attention_forward(const cuda_launch& l, cudaStream_t stream, const batched_view<T>& O,
                              const batched_view<float>& lse, const batched_view<const T>& Q,
                              const batched_view<const T>& K, const batched_view<const T>& V, float inv_tau, mask m) {
  const auto kernel = attention_forward_kernel<T, Chunks>;
  cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(l.shared_bytes)),
             "cudaFuncSetAttribute(attention_forward_kernel)");
  kernel<<<dim3(unsigned(l.grid_x), unsigned(l.grid_y)), unsigned(l.threads), l.shared_bytes, stream>>>(O, lse, Q, K, V,
                                                                                                     inv_tau, m);
  cuda_check(cudaGetLastError(), "attention_forward_kernel launch");
}

}  // namespace detail

// Causal attention forward of BH = Q.batch sequence-heads on the GPU (shapes and checks:
// cuda/attention_plan.hpp). Enqueued on backend.stream; no allocation, no synchronisation.
// Throws suptok::error naming the argument for invalid arguments (before anything is enqueued)
// and suptok::cuda_error naming the CUDA call that failed.
template <class T>
void attention_forward(cuda backend, const batched_view<T>& O, const batched_view<float>& lse,
                       const batched_view<const T>& Q, const batched_view<const T>& K, const batched_view<const T>& V,
                       const attention_core_params& params = {}) {
  detail::validate_attention_core(O, lse, Q, K, V, params);
  const detail::cuda_launch l = detail::attention_forward_launch(Q.batch, Q.rows, Q.cols, V.cols);
  const double tau = params.temperature == 0 ? std::sqrt(double(Q.cols)) : params.temperature;
  const float inv_tau = float(1.0 / tau);
  const mask m = params.causal_mask;
  if constexpr (std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>) {
    if (backend.tensor_cores && detail::attention_uses_mma(O, Q, K, V)) {  // the tensor-core kernel, cuda/attention_forward_mma.cuh
      const float scale_log2 = float(1.4426950408889634 / tau);
      if (Q.cols == 64)
        return detail::launch_attention_forward_mma<T, 64>(backend.stream, O, lse, Q, K, V, scale_log2, m);
      return detail::launch_attention_forward_mma<T, 128>(backend.stream, O, lse, Q, K, V, scale_log2, m);
    }
  }
  switch (l.value_chunks) {
    case 1: return detail::launch_attention_forward<T, 1>(l, backend.stream, O, lse, Q, K, V, inv_tau, m);
    case 2: return detail::launch_attention_forward<T, 2>(l, backend.stream, O, lse, Q, K, V, inv_tau, m);
    case 4: return detail::launch_attention_forward<T, 4>(l, backend.stream, O, lse, Q, K, V, inv_tau, m);
    default: return detail::launch_attention_forward<T, 8>(l, backend.stream, O, lse, Q, K, V, inv_tau, m);
  }
}

}  // namespace suptok
