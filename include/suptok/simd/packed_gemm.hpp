// suptok/simd/packed_gemm.hpp: C <- C - A B on row-major operands through packed copies: the
// trailing updates and triangular-solve products of simd/recursive_lu.hpp and the products
// X^h_t R_t P_h that build the projected form's blocks (simd/projected_forward.hpp).
//
//   C (m, n) -= A (m, k) B (k, n),  rows of each ldc, lda, ldb apart.
//
// Blocked as the GotoBLAS/BLIS scheme (Goto and van de Geijn 2008): per slice of packed_gemm_depth
// keys, B's slice (kc, n) is packed into column panels of block_width<S> columns (zero padded to
// whole panels; one panel, 32 KiB in float, stays in L1 while the rows stream past it) and A, by
// chunks of packed_gemm_row_chunk rows (96 KiB, in L2), into k-major row panels of
// tile_rows<S> rows, negated, so that the register block gemm_block<R> (simd/kernels.hpp)
// sums -A B over the slice from zero and adds it to the C tile. Tiles at the right or bottom edge
// are computed into a scratch tile and added for their valid entries only.
//
// Register rows: 8 with 512-bit vectors (16 accumulators of the 32 registers; a trial build found
// 8 faster than 6, 12 and 14), 6 otherwise (12 of 16). bench_lu's BM_gemm_subtract, one thread, on a
// Zen 5 EPYC built with -march=native (AVX-512): 176-190 GFLOP/s in float at (m, k, n) =
// (384, 384, 384), (576, 192, 192), (672, 96, 96) and (192, 192, 192) against 140-145 for Eigen
// 3.4's row-major product; double 86-96 against 66-70. Built for x86-64-v3 (AVX2) on the same
// machine the 6-row block reached 97-99 against Eigen's 100-101, so subtract_product below keeps
// Eigen there. At k = n = 48 Eigen was faster (132 against 119: packing dominates and half of a
// 32-column panel is padding at the recursion's narrowest levels), hence packed_gemm_min_width.
#pragma once

#include <algorithm>
#include <vector>

#include "kernels.hpp"

namespace suptok::detail::simd_kernels {

inline constexpr index packed_gemm_depth = 256;
inline constexpr index packed_gemm_row_chunk = 96;
inline constexpr index packed_gemm_min_width = 64;

// The packed copies of one thread, kept across calls (a factorisation makes dozens of them): A's
// chunk (row_chunk, depth) and B's slice (depth, n rounded up to block_width).
template <class S>
struct packed_gemm_scratch {
  std::vector<S> A, B;
};

template <class S>
packed_gemm_scratch<S>& thread_packed_gemm_scratch() {
  thread_local packed_gemm_scratch<S> scratch;
  return scratch;
}

// Ap <- -A (rows, kc) in k-major panels of R rows, zero padded: panel r / R at Ap + r kc, its
// column q at + q R.
template <index R, class S>
void pack_negated_row_panels(S* Ap, const S* A, index lda, index rows, index kc) {
  for (index r = 0; r < rows; r += R) {
    S* panel = Ap + r * kc;
    const index height = std::min(R, rows - r);
    for (index i = 0; i < height; ++i) {
      const S* row = A + (r + i) * lda;
      for (index q = 0; q < kc; ++q) panel[q * R + i] = -row[q];
    }
    for (index i = height; i < R; ++i)
      for (index q = 0; q < kc; ++q) panel[q * R + i] = S(0);
  }
}

// C (m, n) -= A (m, k) B (k, n), row-major, rows ldc, lda, ldb apart; C must not overlap A or B
// (a later slice of keys reads them after C has been updated).
template <class S>
void packed_gemm_subtract(S* C, index ldc, const S* A, index lda, const S* B, index ldb, index m, index k, index n) {
  constexpr index R = tile_rows<S>, bw = block_width<S>;
  if (m == 0 || n == 0) return;
  const index n_pad = round_up(n, bw);
  packed_gemm_scratch<S>& scratch = thread_packed_gemm_scratch<S>();
  scratch.A.resize(std::size_t(round_up(packed_gemm_row_chunk, R) * packed_gemm_depth));
  scratch.B.resize(std::max(scratch.B.size(), std::size_t(packed_gemm_depth * n_pad)));
  alignas(64) S edge[R * bw];
  for (index k0 = 0; k0 < k; k0 += packed_gemm_depth) {
    const index kc = std::min(packed_gemm_depth, k - k0);
    pack_column_panels(scratch.B.data(), B + k0 * ldb, ldb, kc, n);
    for (index i0 = 0; i0 < m; i0 += packed_gemm_row_chunk) {
      const index rows = std::min(packed_gemm_row_chunk, m - i0);
      pack_negated_row_panels<R>(scratch.A.data(), A + i0 * lda + k0, lda, rows, kc);
      for (index c = 0; c < n_pad; c += bw)
        for (index r = 0; r < rows; r += R) {
          S* tile = C + (i0 + r) * ldc + c;
          const S* a = scratch.A.data() + r * kc;
          const S* b = scratch.B.data() + c * kc;
          if (r + R <= rows && c + bw <= n) {
            gemm_block<R>(tile, ldc, a, 1, R, b, bw, kc, true);
            continue;
          }
          gemm_block<R>(edge, bw, a, 1, R, b, bw, kc, false);
          for (index i = 0; i < std::min(R, rows - r); ++i)
            for (index j = 0; j < std::min(bw, n - c); ++j) tile[i * ldc + j] += edge[i * bw + j];
        }
    }
  }
}

}  // namespace suptok::detail::simd_kernels

namespace suptok::detail {

// C <- C - A B on row-major blocks: packed_gemm_subtract with 512-bit vectors where k and n are at
// least packed_gemm_min_width, Eigen's product otherwise.
template <class S>
void subtract_product(Eigen::Ref<matrix<S>> C, const Eigen::Ref<const matrix<S>>& A,
                      const Eigen::Ref<const matrix<S>>& B) {
  namespace k = simd_kernels;
  if (!k::wide_vectors<S> || A.cols() < k::packed_gemm_min_width || C.cols() < k::packed_gemm_min_width) {
    C.noalias() -= A * B;
    return;
  }
  k::packed_gemm_subtract<S>(C.data(), C.outerStride(), A.data(), A.outerStride(), B.data(), B.outerStride(), C.rows(),
                             A.cols(), C.cols());
}

}  // namespace suptok::detail
