// suptok/simd/kernels.hpp: the xsimd primitives of the CPU fast path (float, double).
//
// - gemm_tile: C (M, W) = or += A (M, K) B (K, W) on raw row-major tiles. A is read one scalar at a
//   time (broadcast) through two strides, so a transposed A (P^T, dS^T in the backward) costs
//   nothing extra; B is read by rows as SIMD vectors, so W must be a multiple of block_width<S>
//   (the caller pads its operands with zero columns). Register block: 6 rows x 2 vectors
//   (12 accumulators, 16 floats or 8 doubles wide), the shape that keeps two FMA pipes busy.
// - row primitives on padded rows (length a multiple of the vector size): maximum,
//   x <- exp(x - shift) with its sum (xsimd::exp, about 1 ulp), scaling, dot product.
// The instruction set is xsimd's default architecture, fixed by the compile flags: with
// -march=x86-64-v3 (or -mavx2 -mfma) it is fma3<avx2>, 8 floats / 4 doubles per vector; without
// them sse2 (4 floats / 2 doubles). Summation orders differ from the scalar reference, so results
// agree to a few ulp times the length of the sums, not bit for bit.
#pragma once

#include <xsimd/xsimd.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <limits>
#include <type_traits>

#include "../core/view.hpp"

namespace suptok::detail::simd_kernels {

template <class S>
using vec = xsimd::batch<S>;

template <class S>
inline constexpr index lanes = index(vec<S>::size);

// Threads of the OpenMP runtime (OMP_NUM_THREADS); 1 and 0 when built without OpenMP.
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Whether a parallel region is worth its cost: OpenMP's fork and barriers cost microseconds on
// an idle machine and can cost milliseconds on an oversubscribed one, so only work of about a
// tenth of a millisecond or more (4 Mflop) is threaded.
inline bool worth_threads(double flops) { return flops > 4e6; }

// Columns of one register block; every B operand and padded row has a multiple of this width.
template <class S>
inline constexpr index block_width = 2 * lanes<S>;

inline index round_up(index n, index m) { return (n + m - 1) / m * m; }

template <class S>
inline constexpr bool supported_scalar = std::is_same_v<S, float> || std::is_same_v<S, double>;

// C (R, 2L) = or += A (R, K) B (K, 2L) with A(r, k) = A[r * a_rs + k * a_cs].
template <int R, class S>
inline void gemm_block(S* C, index ldc, const S* A, index a_rs, index a_cs, const S* B, index ldb, index K,
                       bool accumulate) {
  using V = vec<S>;
  constexpr index L = lanes<S>;
  V c0[R], c1[R];
  for (int r = 0; r < R; ++r) {
    c0[r] = accumulate ? V::load_unaligned(C + r * ldc) : V(S(0));
    c1[r] = accumulate ? V::load_unaligned(C + r * ldc + L) : V(S(0));
  }
  for (index k = 0; k < K; ++k) {
    const V b0 = V::load_unaligned(B + k * ldb);
    const V b1 = V::load_unaligned(B + k * ldb + L);
    const S* a = A + k * a_cs;
    for (int r = 0; r < R; ++r) {
      const V ar(a[r * a_rs]);
      c0[r] = xsimd::fma(ar, b0, c0[r]);
      c1[r] = xsimd::fma(ar, b1, c1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    c0[r].store_unaligned(C + r * ldc);
    c1[r].store_unaligned(C + r * ldc + L);
  }
}

// C (M, W) = or += A (M, K) B (K, W); W a multiple of block_width<S>. C rows are ldc apart,
// B rows ldb apart; A as in gemm_block.
template <class S>
void gemm_tile(S* C, index ldc, const S* A, index a_rs, index a_cs, const S* B, index ldb, index M, index K,
               index W, bool accumulate) {
  constexpr index R = 6;
  for (index c = 0; c < W; c += block_width<S>) {
    index r = 0;
    for (; r + R <= M; r += R)
      gemm_block<R>(C + r * ldc + c, ldc, A + r * a_rs, a_rs, a_cs, B + c, ldb, K, accumulate);
    S* Cr = C + r * ldc + c;
    const S* Ar = A + r * a_rs;
    switch (M - r) {
      case 5: gemm_block<5>(Cr, ldc, Ar, a_rs, a_cs, B + c, ldb, K, accumulate); break;
      case 4: gemm_block<4>(Cr, ldc, Ar, a_rs, a_cs, B + c, ldb, K, accumulate); break;
      case 3: gemm_block<3>(Cr, ldc, Ar, a_rs, a_cs, B + c, ldb, K, accumulate); break;
      case 2: gemm_block<2>(Cr, ldc, Ar, a_rs, a_cs, B + c, ldb, K, accumulate); break;
      case 1: gemm_block<1>(Cr, ldc, Ar, a_rs, a_cs, B + c, ldb, K, accumulate); break;
      default: break;
    }
  }
}

// max_j x_j over n entries (n a multiple of lanes<S>).
template <class S>
S row_max(const S* x, index n) {
  using V = vec<S>;
  V m(-std::numeric_limits<S>::infinity());
  for (index j = 0; j < n; j += lanes<S>) m = xsimd::max(m, V::load_unaligned(x + j));
  alignas(64) S lane[lanes<S>];
  m.store_unaligned(lane);
  return *std::max_element(lane, lane + lanes<S>);
}

// x_j <- exp(x_j - shift) for n entries (a multiple of lanes<S>); returns sum_j of the new x_j.
// x_j = -inf gives 0; shift must be finite.
template <class S>
S exp_shift_sum(S* x, index n, S shift) {
  using V = vec<S>;
  const V sh(shift);
  V sum(S(0));
  for (index j = 0; j < n; j += lanes<S>) {
    const V e = xsimd::exp(V::load_unaligned(x + j) - sh);
    e.store_unaligned(x + j);
    sum += e;
  }
  return xsimd::hadd(sum);
}

// x_j <- a x_j for n entries (a multiple of lanes<S>).
template <class S>
void scale(S* x, index n, S a) {
  using V = vec<S>;
  const V av(a);
  for (index j = 0; j < n; j += lanes<S>) (V::load_unaligned(x + j) * av).store_unaligned(x + j);
}

// x_j <- y_j (x_j - c) for n entries (a multiple of lanes<S>): dS = P (dP - D) of the backward.
template <class S>
void mul_shifted(S* x, const S* y, index n, S c) {
  using V = vec<S>;
  const V cv(c);
  for (index j = 0; j < n; j += lanes<S>)
    (V::load_unaligned(y + j) * (V::load_unaligned(x + j) - cv)).store_unaligned(x + j);
}

// sum_j x_j y_j over n entries (a multiple of lanes<S>).
template <class S>
S dot(const S* x, const S* y, index n) {
  using V = vec<S>;
  V acc(S(0));
  for (index j = 0; j < n; j += lanes<S>) acc = xsimd::fma(V::load_unaligned(x + j), V::load_unaligned(y + j), acc);
  return xsimd::hadd(acc);
}

}  // namespace suptok::detail::simd_kernels
