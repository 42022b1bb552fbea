// suptok/simd/kernels.hpp: the xsimd primitives of the CPU fast path (float, double).
//
// - gemm_tile: C (M, W) = or += A (M, K) B (K, W) on raw row-major tiles. A is read one scalar at a
//   time (broadcast) through two strides, so a transposed A (P^T, dS^T in the backward) costs
//   nothing extra; B is read by rows as SIMD vectors, so W must be a multiple of block_width<S>
//   (the caller pads its operands with zero columns). Register block: 6 rows x 2 vectors
//   (12 accumulators, 16 floats or 8 doubles wide), the shape that keeps two FMA pipes busy; the
//   k loop is unrolled 4 times (without it the loop overhead costs a third of the FMA rate).
//   With A packed in row panels (a_rs = 1, a_cs = R) and B in column panels (ldb = block_width,
//   pack_column_panels) the same block is the micro-kernel of a packed GEMM (simd/barrier_moments.hpp).
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
#ifdef __linux__
#include <sys/mman.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../core/view.hpp"
#include "../likelihood/logdet.hpp"

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

// Asks Linux for transparent huge pages (2 MiB) behind the whole 2 MiB pages of a buffer of n
// elements (madvise MADV_HUGEPAGE: where the system's setting is "madvise", the usual default, they
// are only granted when asked). The barrier's moment GEMM walks its (N, W) operands with rows
// several KiB apart, each row on its own 4 KiB page: at N = 1024, p = 64 they span 4400 pages,
// more than the second-level TLB holds, and a page walk then comes with most output tiles and
// packed rows. Call it on a freshly allocated buffer, before its first touch (later, only the
// kernel's background collapsing may use it). Elsewhere, and for buffers under 2 MiB, a no-op;
// a refusal (huge pages disabled) is ignored.
template <class S>
void advise_huge_pages(S* data, index n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t huge = std::uintptr_t(1) << 21;
  const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(data) + huge - 1) & ~(huge - 1);
  const std::uintptr_t end = reinterpret_cast<std::uintptr_t>(data + n) & ~(huge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)n;
#endif
}

// m resized to (rows, cols): a new buffer (the size changed) is given advise_huge_pages before its
// first touch; a buffer of the same size (a workspace's, kept from an earlier call) stays as it is.
template <class S>
void resize_huge(matrix<S>& m, index rows, index cols) {
  if (m.size() != rows * cols) {
    m.resize(rows, cols);
    advise_huge_pages(m.data(), m.size());
  }
  m.resize(rows, cols);
}

// Columns of one register block; every B operand and padded row has a multiple of this width.
template <class S>
inline constexpr index block_width = 2 * lanes<S>;

inline index round_up(index n, index m) { return (n + m - 1) / m * m; }

template <class S>
inline constexpr bool supported_scalar = std::is_same_v<S, float> || std::is_same_v<S, double>;

// C (R, 2L) = or += A (R, K) B (K, 2L) with A(r, k) = A[r * a_rs + k * a_cs]. The product is
// summed from zero and added to C once: accumulating the terms onto C itself would round each of
// them to C's ulp, which costs accuracy where C is large against them (the trailing updates of an
// LU of I - K with K small: 5-8x the residual of the factors at n = 768-1536 in float).
template <int R, class S>
inline void gemm_block(S* C, index ldc, const S* A, index a_rs, index a_cs, const S* B, index ldb, index K,
                       bool accumulate) {
  using V = vec<S>;
  constexpr index L = lanes<S>;
  V c0[R], c1[R];
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = V(S(0));
#pragma GCC unroll 4
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
    if (accumulate) {
      c0[r] += V::load_unaligned(C + r * ldc);
      c1[r] += V::load_unaligned(C + r * ldc + L);
    }
    c0[r].store_unaligned(C + r * ldc);
    c1[r].store_unaligned(C + r * ldc + L);
  }
}

// Rows of the register block of symmetric_gemm_tile and of the moments' packed A panels.
inline constexpr index gemm_rows = 6;

// 512-bit vectors or wider (AVX-512: 32 vector registers).
template <class S>
inline constexpr bool wide_vectors = sizeof(S) * lanes<S> >= 64;

// Rows of the register block of gemm_tile and of the packed GEMM (simd/packed_gemm.hpp): with wide
// vectors 8 (16 accumulators of the 32 registers; the 64-row tiles of attention then have no
// partial block), gemm_rows otherwise (12 of 16). The sums, and so the results, do not depend on it.
template <class S>
inline constexpr index tile_rows = wide_vectors<S> ? 8 : gemm_rows;

// Depth of one pass of gemm_tile: a (gemm_depth, block_width) slice of B (16 KiB float) stays in
// L1 while every row block of A uses it; deeper products (K = W of the barrier's backward, about
// p^2 / 2) are summed over several passes.
inline constexpr index gemm_depth = 256;

// gemm_block for rows = 1..R rows, chosen at run time.
template <index R, class S>
inline void gemm_rows_block(index rows, S* C, index ldc, const S* A, index a_rs, index a_cs, const S* B, index ldb,
                            index K, bool accumulate) {
  if constexpr (R > 1)
    if (rows < R) return gemm_rows_block<R - 1>(rows, C, ldc, A, a_rs, a_cs, B, ldb, K, accumulate);
  gemm_block<R>(C, ldc, A, a_rs, a_cs, B, ldb, K, accumulate);
}

// C (M, W) = or += A (M, K) B (K, W); W a multiple of block_width<S>. C rows are ldc apart,
// B rows ldb apart; A as in gemm_block.
template <class S>
void gemm_tile(S* C, index ldc, const S* A, index a_rs, index a_cs, const S* B, index ldb, index M, index K,
               index W, bool accumulate) {
  constexpr index R = tile_rows<S>;
  for (index k0 = 0; k0 == 0 || k0 < K; k0 += gemm_depth) {
    const index kd = std::min(gemm_depth, K - k0);
    const bool acc = accumulate || k0 > 0;
    const S* Ak = A + k0 * a_cs;
    const S* Bk = B + k0 * ldb;
    for (index c = 0; c < W; c += block_width<S>)
      for (index r = 0; r < M; r += R)
        gemm_rows_block<R>(std::min(R, M - r), C + r * ldc + c, ldc, Ak + r * a_rs, a_rs, a_cs, Bk + c, ldb, kd, acc);
  }
}

// C (p, W) = Y B for a symmetric Y (p, p) of which Yu holds only the upper triangle and the lower
// triangles of the gemm_rows x gemm_rows diagonal blocks (rows ld apart; the rest is not read):
// per block of rows [r, r + 6), the keys k >= r from the rows of Yu and the keys k < r from its
// columns (Y_rk = Yu_kr). Saves the caller the strided half of a symmetric fill. W a multiple of
// block_width<S>.
template <class S>
void symmetric_gemm_tile(S* C, index ldc, const S* Yu, index ld, const S* B, index ldb, index p, index W) {
  constexpr index R = gemm_rows;
  for (index c = 0; c < W; c += block_width<S>)
    for (index r = 0; r < p; r += R) {
      const index rows = std::min(R, p - r);
      gemm_rows_block<R>(rows, C + r * ldc + c, ldc, Yu + r * ld + r, ld, 1, B + r * ldb + c, ldb, p - r, false);
      if (r > 0) gemm_rows_block<R>(rows, C + r * ldc + c, ldc, Yu + r, 1, ld, B + c, ldb, r, true);
    }
}

// to[0, n) <- from[0, n) for a short row: whole vectors, then the rest one entry at a time (a
// std::copy_n of 16 floats became a call to memmove, 7 % of the GPT-2-shaped layer forward when the
// LU panels were copied that way).
template <class S>
inline void copy_row(S* to, const S* from, index n) {
  index j = 0;
  for (; j + lanes<S> <= n; j += lanes<S>) vec<S>::load_unaligned(from + j).store_unaligned(to + j);
  for (; j < n; ++j) to[j] = from[j];
}

// Packs B (K, W) (rows ldb apart) into column panels of block_width<S> columns, the last one zero
// padded where W is not a multiple of the width: panel c / block_width at Bp + c K, its row k at
// + k block_width.
template <class S>
void pack_column_panels(S* Bp, const S* B, index ldb, index K, index W) {
  constexpr index bw = block_width<S>;
  for (index c = 0; c < W; c += bw) {
    const index width = std::min(bw, W - c);
    S* panel = Bp + c * K;
    for (index k = 0; k < K; ++k) {
      S* to = panel + k * bw;
      const S* from = B + k * ldb + c;
      if (width < bw) {  // the zero-padded last panel
        std::copy_n(from, width, to);
        std::fill(to + width, to + bw, S(0));
        continue;
      }
      for (index l = 0; l < bw; l += lanes<S>)  // vector copies: std::copy_n became a memmove call
        vec<S>::load_unaligned(from + l).store_unaligned(to + l);
    }
  }
}

// Asks for the cache lines of a (rows, cols) tile of a row-major matrix (rows ld apart) ahead of
// its use: the C tiles of a GEMM whose rows lie far apart are otherwise fetched one miss at a time.
template <class S>
void prefetch_tile(const S* C, index ld, index rows, index cols) {
  constexpr index line = 64 / index(sizeof(S));
  for (index r = 0; r < rows; ++r)
    for (index j = 0; j < cols; j += line) __builtin_prefetch(C + r * ld + j, 1);
}

// x + a y rounded as xsimd::fma rounds each lane: once where the target has FMA instructions, and
// as a product and then a sum where xsimd emulates it. An elimination computes the next column's
// entry of a row with it, from the operands, instead of reading it back from the vector it has just
// stored: the load waited for that store (on a Zen 5, the recursive LU of n = 768 took 3.1-3.4 ms
// with the load and 2.1 ms without it).
template <class S>
inline S lane_fma(S a, S y, S x) {
#ifdef __FMA__
  return std::fma(a, y, x);
#else
  return a * y + x;
#endif
}

// Partial pivoting's choice among entries offered in row order: the first of largest magnitude
// (LAPACK's getrf on ties; a NaN is never chosen over the first row offered). The running maximum
// stays in a register, so an elimination can offer each row's next-column entry as it updates it.
template <class S>
struct pivot_search {
  index row;
  S largest = S(-1);
  explicit pivot_search(index first) : row(first) {}
  void offer(index i, S x) {
    using std::abs;
    if (abs(x) > largest) {
      largest = abs(x);
      row = i;
    }
  }
};

// Gaussian elimination with partial pivoting, in place, of the (p, p) block J (rows ld apart, ld a
// multiple of lanes<S>, columns [p, ld) zero): P J = L U, det J = sign(P) prod_k U_kk. Row i -=
// l_ik row k (l_ik = J_ik / J_kk) over whole vectors from the one holding column k + 1: the upper
// triangle of J becomes U, the entries below it are left undefined (the columns <= k a row update
// also touches are never read again). With `L` (rows ld apart) the multipliers l_ik go to its
// strict lower triangle, and with `pivot` (p) row k was exchanged with row pivot[k] at step k
// (LAPACK's ipiv, 0-based; L's rows exchanged with them); both are what lu_inverse_transpose
// (simd/block_inverse.hpp) reads. Same result as likelihood/logdet.hpp's log_det up to rounding,
// without its allocations. A zero pivot stops it: sign 0, log|det| = -inf.
template <class S>
signed_log_det<S> lu_log_det(S* J, index p, index ld, S* L = nullptr, index* pivot = nullptr) {
  using V = vec<S>;
  using std::abs;
  using std::log;
  signed_log_det<S> r{1, S(0)};
  pivot_search<S> search(0);  // column k's pivot, found by the pass that updated the rows below k - 1
  for (index i = 0; i < p; ++i) search.offer(i, J[i * ld]);
  for (index k = 0; k < p; ++k) {
    const index piv = search.row;
    S* row_k = J + k * ld;
    if (pivot) pivot[k] = piv;
    if (piv != k) {
      std::swap_ranges(row_k, row_k + ld, J + piv * ld);
      if (L) std::swap_ranges(L + k * ld, L + k * ld + k, L + piv * ld);
      r.sign = -r.sign;
    }
    const S u = row_k[k];
    if (u == S(0)) return {0, -std::numeric_limits<S>::infinity()};
    if (u < S(0)) r.sign = -r.sign;
    r.log_abs += log(abs(u));
    const index j0 = (k + 1) / lanes<S> * lanes<S>;
    const S minus_inv = S(-1) / u;
    if (L)
      for (index i = k + 1; i < p; ++i) L[i * ld + k] = -(J[i * ld + k] * minus_inv);  // the l_ik applied below
    search = pivot_search<S>(k + 1);
    index i = k + 1;
    for (; i + 1 < p; i += 2) {  // two rows per pass share the loads of row k
      S* row_a = J + i * ld;
      S* row_b = row_a + ld;
      const S sa = row_a[k] * minus_inv, sb = row_b[k] * minus_inv;
      search.offer(i, lane_fma(sa, row_k[k + 1], row_a[k + 1]));
      search.offer(i + 1, lane_fma(sb, row_k[k + 1], row_b[k + 1]));
      const V la(sa), lb(sb);
      for (index j = j0; j < ld; j += lanes<S>) {
        const V rk = V::load_unaligned(row_k + j);
        xsimd::fma(la, rk, V::load_unaligned(row_a + j)).store_unaligned(row_a + j);
        xsimd::fma(lb, rk, V::load_unaligned(row_b + j)).store_unaligned(row_b + j);
      }
    }
    if (i < p) {
      S* row_i = J + i * ld;
      const S si = row_i[k] * minus_inv;
      search.offer(i, lane_fma(si, row_k[k + 1], row_i[k + 1]));
      const V l(si);
      for (index j = j0; j < ld; j += lanes<S>)
        xsimd::fma(l, V::load_unaligned(row_k + j), V::load_unaligned(row_i + j)).store_unaligned(row_i + j);
    }
  }
  return r;
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
