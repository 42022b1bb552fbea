// suptok/cuda/attention_forward_mma.cuh: the tensor-core causal attention forward for bf16 and
// fp16 storage (nvcc, sm_80 and later), FlashAttention-2 style. Same result as the scalar kernel
// of cuda/attention_forward.cuh, which dispatches here unless the caller clears cuda::tensor_cores,
// when attention_uses_mma holds (cuda/attention_plan.hpp: d_k == d_v = D in {64, 128}, rows on
// 16 bytes). Verified on an H200 (tests/cuda/attention_forward.cu, docs/cuda.md).
//
// One block: 4 warps, cuda_mma_tile = 64 queries of one sequence-head; warp w owns the 16 query
// rows q0 + 16 w + [0, 16), whose Q (16, D) it holds in registers as D / 16 A fragments. Per key
// tile of 64 keys, up to the block's last query's last key:
//   S (16, 64) = Q K^T            D / 16 x 8 mma.m16n8k16 (K rows, key-major in shared memory, are
//                                 the col-major B operand as they are: ldmatrix without .trans)
//   x = S log2(e) / tau           in float; the diagonal tile masks s >= past_end(t) to -inf
//   m' = max(m, max_s x),  p = exp2(x - m') (one FMA and the SFU's exp2),
//   l = l exp2(m - m') + sum_s p,  acc *= exp2(m - m')
//   acc (16, D) += P V            P rounded to T in registers: the accumulators of n-tiles 2j and
//                                 2j + 1 are the A fragment of keys 16 j + [0, 16); V by ldmatrix.trans
// and at the end O_t = acc / l (0 when l = 0: an empty past) and lse_t = m ln 2 + log l.
//
// Fragments of mma.m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"), lane = 4 g + c:
//   A (16 x 16, row): reg 0 = (g, 2c..2c+1), 1 = (g + 8, 2c..), 2 = (g, 2c + 8..), 3 = (g + 8, 2c + 8..)
//   B (16 x 8, col):  reg 0 = (2c..2c+1, g), 1 = (2c + 8.., g)
//   C (16 x 8, f32):  0, 1 = (g, 2c + {0, 1}),  2, 3 = (g + 8, 2c + {0, 1})
// so a lane holds rows g and g + 8 of its warp's 16: the row maxima and sums are reduced over the
// 4 lanes of a quad (c = 0..3) by __shfl_xor_sync 1 and 2.
//
// K and V tiles: 64 rows of D elements at a row stride of D + 8 (the 8 rows an ldmatrix reads
// start 16 bytes apart modulo 128: no bank conflicts), copied by cp.async in 16-byte pieces, rows
// past N zero-filled; two stages, the copy of tile j + 1 overlapping the products of tile j.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "attention_plan.hpp"
#include "backend.hpp"
#include "warp.cuh"

namespace suptok {
namespace detail {

// Two floats rounded to T (to nearest) in one 32-bit register, `lo` in the low half.
template <class T>
__device__ std::uint32_t pack2(float lo, float hi);
template <>
__device__ inline std::uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}
template <>
__device__ inline std::uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

// c (16 x 8, f32) += a (16 x 16) b (16 x 8), operands in T.
template <class T>
__device__ void mma_16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1);
template <>
__device__ inline void mma_16816<__nv_bfloat16>(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                                 std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ inline void mma_16816<__half>(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                          std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 2^x by the SFU (ex2.approx.ftz.f32: relative error about 2^-22, subnormal results flushed to
// 0, exp2(-inf) = 0); the weights it gives are at most 1 and are summed into l_t >= 1.
__device__ inline float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Four 8 x 8 matrices of 2-byte elements from shared memory: lanes 8 i .. 8 i + 7 give the
// addresses of the 8 rows of matrix i; r[i] gets, in lane 4 g + c, elements (g, 2c..2c+1) of
// matrix i (.trans: elements (2c..2c+1, g)).
__device__ inline void ldmatrix_x4(std::uint32_t (&r)[4], std::uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}
__device__ inline void ldmatrix_x4_trans(std::uint32_t (&r)[4], std::uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}

// 16 bytes from global `from` to shared `to`, of which the first `bytes` (16 or 0) are read and
// the rest zero-filled; asynchronous until cp.async.wait_group.
__device__ inline void cp_async_16(std::uint32_t to, const void* from, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to), "l"(from), "r"(bytes) : "memory");
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int Pending>
__device__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

// Rows [r0, r0 + 64) of matrix b of src (64 x D) to the shared tile at `to` (row stride D + 8
// elements), by cp.async from all 128 threads; rows past src.rows are zero.
template <class T, int D>
__device__ void copy_tile_async(std::uint32_t to, const batched_view<const T>& src, index b, index r0) {
  constexpr int pieces = D / 8;  // 16-byte pieces per row
  constexpr int tile = int(cuda_mma_tile), threads = int(32 * cuda_attention_warps);
#pragma unroll
  for (int k = 0; k < tile * pieces / threads; ++k) {
    const int i = int(threadIdx.x) + k * threads, r = i / pieces, p = i % pieces;
    const bool inside = r0 + r < src.rows;
    const T* from = src.row(b, inside ? r0 + r : 0) + 8 * p;
    cp_async_16(to + unsigned((r * (D + 8) + 8 * p) * 2), from, inside ? 16 : 0);
  }
}

template <class T, int D>
__global__ void __launch_bounds__(32 * cuda_attention_warps)
    attention_forward_mma_kernel(batched_view<T> O, batched_view<float> lse, batched_view<const T> Q,
                                 batched_view<const T> K, batched_view<const T> V, float scale_log2, mask m) {
  constexpr int tile = int(cuda_mma_tile), stride = D + 8;
  constexpr unsigned tile_bytes = unsigned(tile * stride * 2);
  extern __shared__ __align__(16) unsigned char shared_mma[];
  // Stage j: the K tile at j * 2 tile_bytes, the V tile after it.
  const std::uint32_t stages = std::uint32_t(__cvta_generic_to_shared(shared_mma));
  const index b = blockIdx.x, N = Q.rows;
  const index q0 = index(gridDim.y - 1 - blockIdx.y) * tile;  // the longest blocks first
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, c = lane % 4;
  const index row[2] = {q0 + 16 * warp + g, q0 + 16 * warp + g + 8};  // this lane's rows (t)

  // Q fragments (A operands) of the warp's 16 rows, from global memory once; rows past N are 0.
  std::uint32_t qa[D / 16][4];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const T* q = row[h] < N ? Q.row(b, row[h]) : nullptr;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      qa[kk][h] = q ? *reinterpret_cast<const std::uint32_t*>(q + 16 * kk + 2 * c) : 0u;
      qa[kk][h + 2] = q ? *reinterpret_cast<const std::uint32_t*>(q + 16 * kk + 8 + 2 * c) : 0u;
    }
  }

  float acc[D / 8][4], row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;

  const index keys_end = past_end((q0 + tile < N ? q0 + tile : N) - 1, m);
  const int tiles = int((keys_end + tile - 1) / tile);
  if (tiles > 0) {
    copy_tile_async<T, D>(stages, K, b, 0);
    copy_tile_async<T, D>(stages + tile_bytes, V, b, 0);
    cp_async_commit();
  }
  // ldmatrix row addresses of this lane (bytes within a tile). K, without .trans: matrices
  // (keys 0-7, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 0-7), (keys 8-15, dims 8-15)
  // give the B fragments (regs 0, 1) of key n-tiles 0 and 1. V, with .trans: matrices (keys 0-7,
  // dims 0-7), (keys 8-15, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 8-15) give the B
  // fragments of value n-tiles 0 and 1.
  const unsigned k_lane = unsigned(((lane % 8 + lane / 16 * 8) * stride + lane / 8 % 2 * 8) * 2);
  const unsigned v_lane = unsigned(((lane % 8 + lane / 8 % 2 * 8) * stride + lane / 16 * 8) * 2);

  for (int j = 0; j < tiles; ++j) {
    const index k0 = index(j) * tile;
    const std::uint32_t Ks = stages + unsigned(j % 2) * 2 * tile_bytes, Vs = Ks + tile_bytes;
    if (j + 1 < tiles) {  // stage (j + 1) % 2 was released by the __syncthreads ending step j - 1
      const std::uint32_t next = stages + unsigned((j + 1) % 2) * 2 * tile_bytes;
      copy_tile_async<T, D>(next, K, b, k0 + tile);
      copy_tile_async<T, D>(next + tile_bytes, V, b, k0 + tile);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // tile j is in shared memory, for every thread's copies

    // S = Q K^T: s[n] is the C fragment of keys k0 + 8 n + [0, 8).
    float s[tile / 8][4];
#pragma unroll
    for (int n = 0; n < tile / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
      for (int n = 0; n < tile / 16; ++n) {
        std::uint32_t kb[4];
        ldmatrix_x4(kb, Ks + k_lane + unsigned((16 * n * stride + 16 * kk) * 2));
        mma_16816<T>(s[2 * n], qa[kk], kb[0], kb[1]);
        mma_16816<T>(s[2 * n + 1], qa[kk], kb[2], kb[3]);
      }

    // Online softmax of rows row[h] in log2 units, x = l_ts log2(e) = S scale_log2: the maximum
    // taken on S (scale_log2 > 0 keeps the order), then p = exp2(S scale_log2 - m') by one FMA.
    const bool diagonal = k0 + tile > q0;  // the only tile with keys outside some row's past
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const index end = past_end(row[h], m);
      float s_max = -INFINITY;
#pragma unroll
      for (int n = 0; n < tile / 8; ++n)
#pragma unroll
        for (int e = 2 * h; e < 2 * h + 2; ++e) {
          const index key = k0 + 8 * n + 2 * c + e % 2;
          if (diagonal && key >= end) s[n][e] = -INFINITY;
          s_max = fmaxf(s_max, s[n][e]);
        }
      s_max = fmaxf(s_max, __shfl_xor_sync(full_warp, s_max, 1));
      s_max = fmaxf(s_max, __shfl_xor_sync(full_warp, s_max, 2));
      const float tile_max = fmaxf(row_max[h], s_max * scale_log2);
      // -inf while every key so far is masked (t = 0, strict): p = 0, and no -inf - -inf.
      const float base = tile_max == -INFINITY ? 0.f : tile_max;
      const float rescale = fast_exp2(row_max[h] - base);  // 0 on the row's first keys, 1 if m holds
      row_max[h] = tile_max;
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < tile / 8; ++n)
#pragma unroll
        for (int e = 2 * h; e < 2 * h + 2; ++e) {
          s[n][e] = fast_exp2(fmaf(s[n][e], scale_log2, -base));
          sum += s[n][e];
        }
      row_sum[h] = row_sum[h] * rescale + sum;  // this lane's columns only; quad-reduced at the end
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        acc[n][2 * h] *= rescale;
        acc[n][2 * h + 1] *= rescale;
      }
    }

    // acc += P V over the keys k0 + 16 kk + [0, 16).
#pragma unroll
    for (int kk = 0; kk < tile / 16; ++kk) {
      const std::uint32_t pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                                   pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int n = 0; n < D / 16; ++n) {
        std::uint32_t vb[4];
        ldmatrix_x4_trans(vb, Vs + v_lane + unsigned((16 * kk * stride + 16 * n) * 2));
        mma_16816<T>(acc[2 * n], pa, vb[0], vb[1]);
        mma_16816<T>(acc[2 * n + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with stage j % 2 before it is refilled
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = row_sum[h];
    sum += __shfl_xor_sync(full_warp, sum, 1);
    sum += __shfl_xor_sync(full_warp, sum, 2);
    if (row[h] >= N) continue;
    const bool empty_past = sum == 0.f;  // t = 0 under the strict mask
    if (c == 0) lse.row(b, row[h])[0] = empty_past ? -INFINITY : row_max[h] * 0.693147180559945309f + logf(sum);
    const float scale = empty_past ? 0.f : 1.f / sum;
    T* out = O.row(b, row[h]) + 2 * c;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<std::uint32_t*>(out + 8 * n) = pack2<T>(acc[n][2 * h] * scale, acc[n][2 * h + 1] * scale);
  }
}

// scale_log2 = log2(e) / tau.
template <class T, int D>
void launch_attention_forward_mma(cudaStream_t stream, const batched_view<T>& O, const batched_view<float>& lse,
                                  const batched_view<const T>& Q, const batched_view<const T>& K,
                                  const batched_view<const T>& V, float scale_log2, mask m) {
  const cuda_launch l = attention_forward_mma_launch(Q.batch, Q.rows, D);
  const auto kernel = attention_forward_mma_kernel<T, D>;
  cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(l.shared_bytes)),
             "cudaFuncSetAttribute(attention_forward_mma_kernel)");
  kernel<<<dim3(unsigned(l.grid_x), unsigned(l.grid_y)), unsigned(l.threads), l.shared_bytes, stream>>>(
      O, lse, Q, K, V, scale_log2, m);
  cuda_check(cudaGetLastError(), "attention_forward_mma_kernel launch");
}

}  // namespace detail
}  // namespace suptok
