// suptok/cuda/attention_backward.cuh: fused causal attention backward on NVIDIA GPUs (nvcc only).
//
// The gradients through O = softmax(Q K^T / tau, causal mask) V of each sequence-head b, from the
// forward's O and lse and the upstream gradient dO (docs/math.md section 1; the FlashAttention-2
// backward; shapes and launch geometry in cuda/attention_backward_plan.hpp):
//   D_t = dO_t . O_t,   p_ts = exp(Q_t . K_s / tau - lse_t) on P(t) (0 elsewhere),
//   dp_ts = dO_t . V_s,   ds_ts = p_ts (dp_ts - D_t),
//   dV_s = sum_t p_ts dO_t,   dK_s = sum_t ds_ts Q_t / tau,   dQ_t = sum_s ds_ts K_s / tau.
// (D_t = sum_s p_ts dp_ts, since O_t = sum_s p_ts V_s.) The (N, N) weights are never formed; both
// kernels recompute p_ts and dp_ts. Storage T is float, __nv_bfloat16 or __half; every product,
// exponential and sum is in float, and the gradients are written in float.
//
// The keys kernel owns dK and dV: one block per 32 keys, 4 warps of 8 keys; per query tile (one
// query per lane) lane t forms p_ts and ds_ts of its query for the warp's keys by two dot products,
// and lane j accumulates the columns j, j + 32, ... of the keys' dK and dV in registers, reading
// p_ts and ds_ts of every query by shuffle. The queries kernel owns dQ, in the forward's layout
// (one block per 32 queries, 4 warps of 8 queries, one key per lane).
#pragma once

#include <cmath>
#include <type_traits>

#include "attention_backward_plan.hpp"
#include "attention_forward.cuh"

namespace suptok {
namespace detail {

// D_t = dO_t . O_t and lse_t of the calling warp's rows of the query tile at q0 (rows
// warp * 8 .. warp * 8 + 7 of the tile) into D_s and lse_s, written by lane 0; 0 for t >= N.
template <class T>
__device__ void stage_query_terms(float* D_s, float* lse_s, const batched_view<const T>& dO,
                                  const batched_view<const T>& O, const batched_view<const float>& lse, index b,
                                  index q0) {
  constexpr int rows_per_warp = int(cuda_query_tile / cuda_attention_warps);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
#pragma unroll
  for (int i = 0; i < rows_per_warp; ++i) {
    const int r = warp * rows_per_warp + i;
    const index t = q0 + r;
    float D = 0.f;
    if (t < dO.rows)  // the same for the whole warp
      for (int j = lane; j < int(dO.cols); j += 32) D = fmaf(to_float(dO.row(b, t)[j]), to_float(O.row(b, t)[j]), D);
    D = warp_sum(D);
    if (lane == 0) {
      D_s[r] = D;
      lse_s[r] = t < dO.rows ? lse.row(b, t)[0] : 0.f;
    }
  }
}

template <class T, int Chunks>
__global__ void __launch_bounds__(32 * cuda_attention_warps)
    attention_backward_keys_kernel(batched_view<float> dK, batched_view<float> dV, batched_view<const T> dO,
                                   batched_view<const T> O, batched_view<const float> lse, batched_view<const T> Q,
                                   batched_view<const T> K, batched_view<const T> V, float inv_tau, mask m) {
  constexpr int keys_per_warp = int(cuda_key_tile / cuda_attention_warps);
  extern __shared__ float shared[];
  const int d_k = int(Q.cols), d_v = int(V.cols), q_stride = d_k | 1, g_stride = d_v | 1;
  float* Ks = shared;                              // (cuda_key_tile, d_k)
  float* Vs = Ks + cuda_key_tile * d_k;            // (cuda_key_tile, d_v)
  float* Qs = Vs + cuda_key_tile * d_v;            // (cuda_query_tile, q_stride)
  float* Gs = Qs + cuda_query_tile * q_stride;     // (cuda_query_tile, g_stride): dO
  float* lse_s = Gs + cuda_query_tile * g_stride;  // (cuda_query_tile)
  float* D_s = lse_s + cuda_query_tile;            // (cuda_query_tile)
  const index b = blockIdx.x, N = Q.rows;
  const index k0 = index(blockIdx.y) * cuda_key_tile;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const index first_key = k0 + warp * keys_per_warp;

  load_rows(Ks, d_k, K, b, k0, int(cuda_key_tile));
  load_rows(Vs, d_v, V, b, k0, int(cuda_key_tile));
  float acc_k[keys_per_warp][Chunks], acc_v[keys_per_warp][Chunks];
#pragma unroll
  for (int i = 0; i < keys_per_warp; ++i)
#pragma unroll
    for (int c = 0; c < Chunks; ++c) acc_k[i][c] = acc_v[i][c] = 0.f;

  // the query tiles from the one holding the first query that sees key k0
  for (index q0 = (m == mask::strict ? k0 + 1 : k0) / cuda_query_tile * cuda_query_tile; q0 < N;
       q0 += cuda_query_tile) {
    __syncthreads();  // every warp is done with the previous query tile
    load_rows(Qs, q_stride, Q, b, q0, int(cuda_query_tile));
    load_rows(Gs, g_stride, dO, b, q0, int(cuda_query_tile));
    stage_query_terms(D_s, lse_s, dO, O, lse, b, q0);
    __syncthreads();
    const index t = q0 + lane;  // this lane's query
    const float* q = Qs + lane * q_stride;
    const float* g = Gs + lane * g_stride;
#pragma unroll
    for (int i = 0; i < keys_per_warp; ++i) {
      const index s = first_key + i;
      if (s >= N) break;  // the same for the whole warp
      const bool seen = t < N && s < past_end(t, m);
      const float* k = Ks + (warp * keys_per_warp + i) * d_k;
      const float* v = Vs + (warp * keys_per_warp + i) * d_v;
      float logit = 0.f, dp = 0.f;
      for (int c = 0; c < d_k; ++c) logit = fmaf(q[c], k[c], logit);
      for (int c = 0; c < d_v; ++c) dp = fmaf(g[c], v[c], dp);
      // p = 0 off P(t), where lse_t may be -inf (an empty past) and exp would not be
      const float p = seen ? expf(logit * inv_tau - lse_s[lane]) : 0.f;
      const float ds = p * (dp - D_s[lane]);
      for (int r = 0; r < int(cuda_query_tile); ++r) {  // unrolled by ptxas (unroll 4 and 8 spilled)
        const float p_r = __shfl_sync(full_warp, p, r), ds_r = __shfl_sync(full_warp, ds, r);
#pragma unroll
        for (int c = 0; c < Chunks; ++c) {
          const int j = lane + 32 * c;
          if (j < d_v) acc_v[i][c] = fmaf(p_r, Gs[r * g_stride + j], acc_v[i][c]);
          if (j < d_k) acc_k[i][c] = fmaf(ds_r, Qs[r * q_stride + j], acc_k[i][c]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < keys_per_warp; ++i) {
    const index s = first_key + i;
    if (s >= N) continue;
    float* dk = dK.row(b, s);
    float* dv = dV.row(b, s);
#pragma unroll
    for (int c = 0; c < Chunks; ++c) {
      const int j = lane + 32 * c;
      if (j < d_k) dk[j] = acc_k[i][c] * inv_tau;
      if (j < d_v) dv[j] = acc_v[i][c];
    }
  }
}

template <class T, int Chunks>
__global__ void __launch_bounds__(32 * cuda_attention_warps)
    attention_backward_queries_kernel(batched_view<float> dQ, batched_view<const T> dO, batched_view<const T> O,
                                      batched_view<const float> lse, batched_view<const T> Q, batched_view<const T> K,
                                      batched_view<const T> V, float inv_tau, mask m) {
  constexpr int rows_per_warp = int(cuda_query_tile / cuda_attention_warps);
  extern __shared__ float shared[];
  const int d_k = int(Q.cols), d_v = int(V.cols), k_stride = d_k | 1, v_stride = d_v | 1;
  float* Qs = shared;                            // (cuda_query_tile, d_k)
  float* Gs = Qs + cuda_query_tile * d_k;        // (cuda_query_tile, d_v): dO
  float* Ks = Gs + cuda_query_tile * d_v;        // (cuda_key_tile, k_stride)
  float* Vs = Ks + cuda_key_tile * k_stride;     // (cuda_key_tile, v_stride)
  float* lse_s = Vs + cuda_key_tile * v_stride;  // (cuda_query_tile)
  float* D_s = lse_s + cuda_query_tile;          // (cuda_query_tile)
  const index b = blockIdx.x, N = Q.rows;
  const index q0 = index(blockIdx.y) * cuda_query_tile;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const index first_row = q0 + warp * rows_per_warp;

  load_rows(Qs, d_k, Q, b, q0, int(cuda_query_tile));
  load_rows(Gs, d_v, dO, b, q0, int(cuda_query_tile));
  stage_query_terms(D_s, lse_s, dO, O, lse, b, q0);
  float acc[rows_per_warp][Chunks];
#pragma unroll
  for (int i = 0; i < rows_per_warp; ++i)
#pragma unroll
    for (int c = 0; c < Chunks; ++c) acc[i][c] = 0.f;

  const index keys_end = past_end((q0 + cuda_query_tile < N ? q0 + cuda_query_tile : N) - 1, m);
  for (index k0 = 0; k0 < keys_end; k0 += cuda_key_tile) {
    __syncthreads();  // every warp is done with the previous key tile (the first: Qs, Gs, lse_s, D_s written)
    load_rows(Ks, k_stride, K, b, k0, int(cuda_key_tile));
    load_rows(Vs, v_stride, V, b, k0, int(cuda_key_tile));
    __syncthreads();
    const index s = k0 + lane;  // this lane's key
    const float* k = Ks + lane * k_stride;
    const float* v = Vs + lane * v_stride;
#pragma unroll
    for (int i = 0; i < rows_per_warp; ++i) {
      const index t = first_row + i;
      if (t >= N || k0 >= past_end(t, m)) continue;  // the same for the whole warp
      const int r = warp * rows_per_warp + i;
      const float* q = Qs + r * d_k;
      const float* g = Gs + r * d_v;
      float logit = 0.f, dp = 0.f;
      for (int c = 0; c < d_k; ++c) logit = fmaf(q[c], k[c], logit);
      for (int c = 0; c < d_v; ++c) dp = fmaf(g[c], v[c], dp);
      const float p = s < past_end(t, m) ? expf(logit * inv_tau - lse_s[r]) : 0.f;
      const float ds = p * (dp - D_s[r]);
#pragma unroll 8
      for (int key = 0; key < int(cuda_key_tile); ++key) {
        const float ds_key = __shfl_sync(full_warp, ds, key);
#pragma unroll
        for (int c = 0; c < Chunks; ++c)
          if (const int j = lane + 32 * c; j < d_k) acc[i][c] = fmaf(ds_key, Ks[key * k_stride + j], acc[i][c]);
      }
    }
  }

#pragma unroll
  for (int i = 0; i < rows_per_warp; ++i) {
    const index t = first_row + i;
    if (t >= N) continue;
    float* dq = dQ.row(b, t);
#pragma unroll
    for (int c = 0; c < Chunks; ++c)
      if (const int j = lane + 32 * c; j < d_k) dq[j] = acc[i][c] * inv_tau;
  }
}

template <class T, int Chunks>
void launch_attention_backward(const cuda_backward_launch& l, cudaStream_t stream, const batched_view<float>& dQ,
                               const batched_view<float>& dK, const batched_view<float>& dV,
                               const batched_view<const T>& dO, const batched_view<const T>& O,
                               const batched_view<const float>& lse, const batched_view<const T>& Q,
                               const batched_view<const T>& K, const batched_view<const T>& V, float inv_tau, mask m) {
  const auto keys = attention_backward_keys_kernel<T, Chunks>;
  const auto queries = attention_backward_queries_kernel<T, Chunks>;
  cuda_check(cudaFuncSetAttribute(keys, cudaFuncAttributeMaxDynamicSharedMemorySize, int(l.keys.shared_bytes)),
             "cudaFuncSetAttribute(attention_backward_keys_kernel)");
  cuda_check(cudaFuncSetAttribute(queries, cudaFuncAttributeMaxDynamicSharedMemorySize, int(l.queries.shared_bytes)),
             "cudaFuncSetAttribute(attention_backward_queries_kernel)");
  keys<<<dim3(unsigned(l.keys.grid_x), unsigned(l.keys.grid_y)), unsigned(l.keys.threads), l.keys.shared_bytes,
         stream>>>(dK, dV, dO, O, lse, Q, K, V, inv_tau, m);
  cuda_check(cudaGetLastError(), "attention_backward_keys_kernel launch");
  queries<<<dim3(unsigned(l.queries.grid_x), unsigned(l.queries.grid_y)), unsigned(l.queries.threads),
            l.queries.shared_bytes, stream>>>(dQ, dO, O, lse, Q, K, V, inv_tau, m);
  cuda_check(cudaGetLastError(), "attention_backward_queries_kernel launch");
}

}  // namespace detail

// Causal attention backward of BH = Q.batch sequence-heads on the GPU: dQ, dK, dV (float) for the
// upstream gradient dO, from the forward's O and lse (attention_forward(cuda, ...) for the same Q,
// K, V and params; shapes and checks: cuda/attention_backward_plan.hpp). Enqueued on
// backend.stream; no allocation, no synchronisation. Throws suptok::error naming the argument for
// invalid arguments (before anything is enqueued) and suptok::cuda_error naming the CUDA call that
// failed.
template <class T>
void attention_backward(cuda backend, const batched_view<float>& dQ, const batched_view<float>& dK,
                        const batched_view<float>& dV, const batched_view<const T>& dO,
                        const batched_view<const T>& O, const batched_view<const float>& lse,
                        const batched_view<const T>& Q, const batched_view<const T>& K, const batched_view<const T>& V,
                        const attention_core_params& params = {}) {
  detail::validate_attention_core_backward(dQ, dK, dV, dO, O, lse, Q, K, V, params);
  const detail::cuda_backward_launch l = detail::attention_backward_launch(Q.batch, Q.rows, Q.cols, V.cols);
  const double tau = params.temperature == 0 ? std::sqrt(double(Q.cols)) : params.temperature;
  const float inv_tau = float(1.0 / tau);
  const mask m = params.causal_mask;
  const auto launch = [&](auto chunks) {
    detail::launch_attention_backward<T, decltype(chunks)::value>(l, backend.stream, dQ, dK, dV, dO, O, lse, Q, K, V,
                                                                  inv_tau, m);
  };
  switch (l.keys.value_chunks) {
    case 1: return launch(std::integral_constant<int, 1>{});
    case 2: return launch(std::integral_constant<int, 2>{});
    default: return launch(std::integral_constant<int, 4>{});
  }
}

}  // namespace suptok
