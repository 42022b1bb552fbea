// suptok/simd/recursive_lu.hpp: sign and log|det| of a dense row-major matrix through a pivoted LU
// computed in place, recursively, solves with its factors and its inverse (the fast path's per-token
// factorisation of the projected form's (n, n) blocks: simd/projected_forward.hpp, projected_analysis.hpp
// and projected_backward.hpp).
//
// Partial pivoting as LAPACK's getrf (the entry of largest magnitude in the column, the first one
// on ties), in the recursive formulation (Toledo 1997, Gustavson 1997): for A (m, k), m >= k, split
// at k1 columns, A = [A11 A12; A21 A22],
//   [A11; A21] = P1 [L11; L21] U11      recursively; up to lu_base_columns columns unblocked
//   A12 <- L11^{-1} (P1 A12)            unit lower triangular solve, split recursively into GEMMs
//   A22 <- A22 - L21 A12                one GEMM: nearly all of the 2/3 k^3 flops
//   A22 = P2 L22 U22                    recursively, then P2 applied to L21
// Row-major storage keeps the row interchanges and the triangular solves' row updates contiguous;
// the narrow panels are factored in a copy whose rows are whole vectors. Measured at n = 768 in
// float on one core of a Xeon with AVX-512 (-march=native, best of 10): 4.1 ms (74 GFLOP/s) against
// 8.6 ms for Eigen's blocked PartialPivLU (column-major) and about 6 ms for OpenBLAS 0.3.21's sgetrf,
// with the panels then factored in a column-major copy; the row-vector panels took 12-14% off
// that on a Zen 5 (bench_lu, x86-64-v3: 4.25 -> 3.73 ms and 4.62 -> 4.07 ms in two paired runs).
// The GEMMs through subtract_product (simd/packed_gemm.hpp) and the panel's next-column entries
// computed rather than reloaded: 3.39-3.55 -> 2.35-2.59 ms on the same Zen 5 (bench_lu built with
// -march=native, AVX-512, alternated runs; double 6.9-7.5 -> 4.7-5.7 ms).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "../core/view.hpp"
#include "../likelihood/logdet.hpp"
#include "kernels.hpp"
#include "packed_gemm.hpp"

namespace suptok::detail {

inline constexpr index lu_base_columns = 16;

template <class S>
using row_block = Eigen::Ref<matrix<S>>;

// B <- L^{-1} B for the unit lower triangle of L (k, k); B (k, c).
template <class S>
void unit_lower_solve(row_block<S> L, row_block<S> B) {
  const index k = L.rows();
  if (k <= lu_base_columns) {
    for (index i = 1; i < k; ++i)
      for (index j = 0; j < i; ++j) B.row(i) -= L(i, j) * B.row(j);
    return;
  }
  const index k1 = k / 2;
  unit_lower_solve<S>(L.topLeftCorner(k1, k1), B.topRows(k1));
  subtract_product<S>(B.bottomRows(k - k1), L.bottomLeftCorner(k - k1, k1), B.topRows(k1));
  unit_lower_solve<S>(L.bottomRightCorner(k - k1, k - k1), B.bottomRows(k - k1));
}

// B <- U^{-1} B for the upper triangle of U (k, k), diagonal included; B (k, c). Same recursion
// as unit_lower_solve, bottom half first.
template <class S>
void upper_solve(row_block<S> U, row_block<S> B) {
  const index k = U.rows();
  if (k <= lu_base_columns) {
    for (index i = k - 1; i >= 0; --i) {
      for (index j = i + 1; j < k; ++j) B.row(i) -= U(i, j) * B.row(j);
      B.row(i) /= U(i, i);
    }
    return;
  }
  const index k1 = k / 2;
  upper_solve<S>(U.bottomRightCorner(k - k1, k - k1), B.bottomRows(k - k1));
  subtract_product<S>(B.topRows(k1), U.topRightCorner(k1, k - k1), B.bottomRows(k - k1));
  upper_solve<S>(U.topLeftCorner(k1, k1), B.topRows(k1));
}

// Rows k <-> pivot[k] of A for k in [k0, k1), in order.
template <class S>
void swap_rows(row_block<S> A, const index* pivot, index k0, index k1) {
  for (index k = k0; k < k1; ++k)
    if (pivot[k] != k) A.row(k).swap(A.row(pivot[k]));
}

// The unblocked LU of a panel (m, k), k <= lu_base_columns: pivot[j] = row exchanged with row j.
// Factored in a row-major copy whose rows are whole vectors (k rounded up to lanes<S>, zero
// padded): per column j, row i > j gets its multiplier l_ij = a_ij / u_jj (a_ij times 1 / u_jj
// where |u_jj| is a normal number, as LAPACK's getf2 does) in column j and loses l_ij times row j
// over whole vectors (row j's entries up to column j masked to zero); the same pass over the rows
// finds the next column's pivot, each row's entry computed by simd_kernels::lane_fma rather than
// read back from the row just stored. (A column-major copy, where the columns are contiguous,
// spent more time in its two transposing copies than in the factorisation.)
template <class S>
void panel_lu(row_block<S> A, index* pivot) {
  using V = simd_kernels::vec<S>;
  using std::abs;
  constexpr index L = simd_kernels::lanes<S>, max_vectors = (lu_base_columns + L - 1) / L;
  const index m = A.rows(), k = A.cols(), ld = simd_kernels::round_up(k, L), vectors = ld / L;
  thread_local std::vector<S> P;  // kept across calls: one panel is factored per 16 columns
  P.resize(std::max(P.size(), std::size_t(m * ld)));
  for (index i = 0; i < m; ++i) {
    simd_kernels::copy_row(P.data() + i * ld, &A(i, 0), k);
    std::fill(P.data() + i * ld + k, P.data() + (i + 1) * ld, S(0));
  }
  const auto search_column = [&](index j) {  // over rows [j, m)
    simd_kernels::pivot_search<S> search(j);
    for (index i = j; i < m; ++i) search.offer(i, P[std::size_t(i * ld + j)]);
    return search.row;
  };
  index r = search_column(0);
  for (index j = 0; j < k; ++j) {
    pivot[j] = r;
    S* const row_j = P.data() + j * ld;
    if (r != j) std::swap_ranges(row_j, row_j + ld, P.data() + r * ld);
    const S u = row_j[j];
    if (u == S(0)) {  // a zero pivot: the column below is zero, nothing to eliminate
      if (j + 1 < k) r = search_column(j + 1);
      continue;
    }
    const S inverse = abs(u) >= std::numeric_limits<S>::min() ? S(1) / u : S(0);
    S masked[max_vectors * L];  // row j, zero up to column j
    std::fill(std::copy_n(row_j, ld, masked), masked + max_vectors * L, S(0));
    std::fill(masked, masked + j + 1, S(0));
    V u_j[max_vectors];
    for (index v = 0; v < vectors; ++v) u_j[v] = V::load_unaligned(masked + v * L);
    simd_kernels::pivot_search<S> next(j + 1);
    for (index i = j + 1; i < m; ++i) {
      S* const row_i = P.data() + i * ld;
      const S l = inverse != S(0) ? row_i[j] * inverse : row_i[j] / u;
      if (j + 1 < k) next.offer(i, simd_kernels::lane_fma(-l, masked[j + 1], row_i[j + 1]));
      const V lv(l);
      for (index v = 0; v < vectors; ++v)
        xsimd::fnma(lv, u_j[v], V::load_unaligned(row_i + v * L)).store_unaligned(row_i + v * L);
      row_i[j] = l;
    }
    r = next.row;
  }
  for (index i = 0; i < m; ++i) simd_kernels::copy_row(&A(i, 0), P.data() + i * ld, k);
}

// P A = L U in place for A (m, k), m >= k; pivot (k) as LAPACK's ipiv, 0-based.
template <class S>
void recursive_lu(row_block<S> A, index* pivot) {
  const index m = A.rows(), k = A.cols();
  if (k <= lu_base_columns) return panel_lu<S>(A, pivot);
  const index k1 = (k / 2 + lu_base_columns - 1) / lu_base_columns * lu_base_columns, k2 = k - k1;
  recursive_lu<S>(A.leftCols(k1), pivot);
  swap_rows<S>(A.rightCols(k2), pivot, 0, k1);
  unit_lower_solve<S>(A.topLeftCorner(k1, k1), A.topRightCorner(k1, k2));
  subtract_product<S>(A.bottomRightCorner(m - k1, k2), A.bottomLeftCorner(m - k1, k1), A.topRightCorner(k1, k2));
  recursive_lu<S>(A.bottomRightCorner(m - k1, k2), pivot + k1);
  for (index j = k1; j < k; ++j) pivot[j] += k1;
  swap_rows<S>(A.leftCols(k1), pivot, k1, k);
}

// sign and log|det A| of a square A, overwritten by its LU factors; pivot is scratch of size n.
template <class S>
signed_log_det<S> recursive_lu_log_det(row_block<S> A, std::vector<index>& pivot) {
  using std::abs;
  using std::log;
  const index n = A.rows();
  pivot.resize(std::size_t(n));
  recursive_lu<S>(A, pivot.data());
  signed_log_det<S> r{1, S(0)};
  for (index i = 0; i < n; ++i) {
    const S u = A(i, i);
    if (u == S(0)) return {0, S(-std::numeric_limits<double>::infinity())};
    if ((u < S(0)) != (pivot[std::size_t(i)] != i)) r.sign = -r.sign;  // a negative pivot or a swap
    r.log_abs += log(abs(u));
  }
  return r;
}

// X <- L^{-1} (k, k) for the unit lower triangle of L (k, k): X unit lower triangular, about k^3 / 2
// flops. L = [L11 0; L21 L22]: L^{-1} = [L11^{-1} 0; -L22^{-1} L21 L11^{-1}  L22^{-1}], the lower left
// block by one GEMM and one unit_lower_solve.
template <class S>
void unit_lower_inverse(row_block<S> L, row_block<S> X) {
  const index k = L.rows();
  if (k <= lu_base_columns) {
    X.setIdentity();
    return unit_lower_solve<S>(L, X);
  }
  const index k1 = k / 2, k2 = k - k1;
  unit_lower_inverse<S>(L.topLeftCorner(k1, k1), X.topLeftCorner(k1, k1));
  X.topRightCorner(k1, k2).setZero();
  X.bottomLeftCorner(k2, k1).setZero();
  subtract_product<S>(X.bottomLeftCorner(k2, k1), L.bottomLeftCorner(k2, k1), X.topLeftCorner(k1, k1));
  unit_lower_solve<S>(L.bottomRightCorner(k2, k2), X.bottomLeftCorner(k2, k1));
  unit_lower_inverse<S>(L.bottomRightCorner(k2, k2), X.bottomRightCorner(k2, k2));
}

// X <- A^{-1} (n, n) from the factors of recursive_lu (P A = L U in LU): A^{-1} = U^{-1} L^{-1} P,
// with P = S_{n-1} ... S_0 (S_k exchanges k and pivot[k]), so the columns of M = U^{-1} L^{-1} are
// exchanged in reverse order: column j of A^{-1} is column source[j] of M, applied row by row (the
// rows are contiguous). About 3/2 n^3 flops (L^{-1} n^3 / 2, the upper solve n^3), nearly all in
// GEMMs. A singular U gives infinities.
template <class S>
void lu_inverse(matrix<S>& LU, const std::vector<index>& pivot, matrix<S>& X) {
  const index n = LU.rows();
  X.resize(n, n);
  unit_lower_inverse<S>(LU, X);
  upper_solve<S>(LU, X);
  std::vector<index> source(static_cast<std::size_t>(n));
  for (index j = 0; j < n; ++j) source[std::size_t(j)] = j;
  for (index k = n - 1; k >= 0; --k) std::swap(source[std::size_t(k)], source[std::size_t(pivot[std::size_t(k)])]);
  Eigen::Matrix<S, 1, Eigen::Dynamic> row(n);
  for (index i = 0; i < n; ++i) {
    row = X.row(i);
    for (index j = 0; j < n; ++j) X(i, j) = row(source[std::size_t(j)]);
  }
}

// x <- A^{-1} x for the factors of recursive_lu (P A = L U in LU, pivot as there); x a row vector.
template <class S>
void lu_solve_row(const matrix<S>& LU, const std::vector<index>& pivot, Eigen::Ref<Eigen::Matrix<S, 1, Eigen::Dynamic>> x) {
  for (index k = 0; k < LU.rows(); ++k)
    if (pivot[std::size_t(k)] != k) std::swap(x(k), x(pivot[std::size_t(k)]));
  LU.template triangularView<Eigen::UnitLower>().solveInPlace(x.transpose());
  LU.template triangularView<Eigen::Upper>().solveInPlace(x.transpose());
}

// x <- A^{-T} x: A^T = U^T L^T P, so U^T, then L^T, then the interchanges undone in reverse order.
template <class S>
void lu_solve_transposed_row(const matrix<S>& LU, const std::vector<index>& pivot,
                             Eigen::Ref<Eigen::Matrix<S, 1, Eigen::Dynamic>> x) {
  LU.transpose().template triangularView<Eigen::Lower>().solveInPlace(x.transpose());
  LU.transpose().template triangularView<Eigen::UnitUpper>().solveInPlace(x.transpose());
  for (index k = LU.rows() - 1; k >= 0; --k)
    if (pivot[std::size_t(k)] != k) std::swap(x(k), x(pivot[std::size_t(k)]));
}

}  // namespace suptok::detail
