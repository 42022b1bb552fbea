// suptok/simd/block_inverse.hpp: the scaled inverse transpose s J^{-T} of a small dense block, the
// per-token gradient db/dJ_t = -J_t^{-T} of the barrier's backward (simd/barrier_backward.hpp).
//
// From the factors of simd_kernels::lu_log_det (P J = L U, pivots as LAPACK's ipiv):
//   J^{-1} = U^{-1} L^{-1} P
//   Z = L^{-1}        row i: Z_i = e_i - sum_{k<i} l_ik Z_k      (Z unit lower triangular: only the
//                                                                vectors of columns [0, i] are formed)
//   Y = U^{-1} Z      row i: Y_i = (Z_i - sum_{k>i} u_ik Y_k) / u_ii, in place over Z, last row first
//   J^{-1} = Y P      column k of Y is column pi(k) of J^{-1}, pi the row order of P J
// so row pi(k) of s J^{-T} is s times column k of Y. The same substitutions as an LU-based inverse
// (Eigen's PartialPivLU::inverse solves L then U against P), about p^3 multiply-adds with the LU
// (p^3 / 3 + p^3 / 6 + p^3 / 2). Each row of Z and Y is summed in registers, up to eight vectors
// of columns at a time, with one load per multiply-add and one store per vector of the row: at
// p = 64 the LU's rank-one updates load and store a vector per multiply-add, the substitutions do
// not. Up to p = 64 (L, U and Z in L1) that measured 1.3-1.7x faster than the recursive LU's
// inverse and Eigen's (bench/bench_lu.cpp); above, where the recursive LU's GEMMs win, the blocks go
// to recursive_lu and lu_inverse (simd/recursive_lu.hpp).
#pragma once

#include <algorithm>
#include <vector>

#include "kernels.hpp"
#include "recursive_lu.hpp"

namespace suptok::detail::simd_kernels {

// out (NV vectors) = (init - sum_{k < count} c[k] rows[k ld]) * scale, summed in registers.
template <int NV, class S>
inline void row_combination(S* out, const S* init, const S* c, const S* rows, index ld, index count, S scale) {
  using V = vec<S>;
  constexpr index L = lanes<S>;
  V acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = V::load_unaligned(init + v * L);
  for (index k = 0; k < count; ++k) {
    const V ck(c[k]);
    const S* row = rows + k * ld;
    for (int v = 0; v < NV; ++v) acc[v] = xsimd::fnma(ck, V::load_unaligned(row + v * L), acc[v]);
  }
  const V sv(scale);
  for (int v = 0; v < NV; ++v) (acc[v] * sv).store_unaligned(out + v * L);
}

// row_combination over the first `width` columns (a multiple of lanes<S>), eight vectors at a time.
template <class S>
void row_combination(S* out, const S* init, const S* c, const S* rows, index ld, index count, S scale,
                     index width) {
  constexpr index L = lanes<S>;
  for (index j = 0; j < width; j += 8 * L) {
    switch (std::min<index>(8, (width - j) / L)) {
      case 8: row_combination<8>(out + j, init + j, c, rows + j, ld, count, scale); break;
      case 7: row_combination<7>(out + j, init + j, c, rows + j, ld, count, scale); break;
      case 6: row_combination<6>(out + j, init + j, c, rows + j, ld, count, scale); break;
      case 5: row_combination<5>(out + j, init + j, c, rows + j, ld, count, scale); break;
      case 4: row_combination<4>(out + j, init + j, c, rows + j, ld, count, scale); break;
      case 3: row_combination<3>(out + j, init + j, c, rows + j, ld, count, scale); break;
      case 2: row_combination<2>(out + j, init + j, c, rows + j, ld, count, scale); break;
      default: row_combination<1>(out + j, init + j, c, rows + j, ld, count, scale); break;
    }
  }
}

// Scratch of the block inverses, kept across blocks of one shape (F's padding columns stay 0).
template <class S>
struct block_inverse_scratch {
  index p = 0, ld = 0;
  std::vector<S> F, L, Y;      // (p, ld) each: the LU, the multipliers, Z then Y
  std::vector<index> pivot;    // (p)
  std::vector<index> order;    // (p): pi
  matrix<S> LU, inverse;       // (p, p): recursive_lu's blocks
  void shape(index p_, index ld_) {
    if (p_ == p && ld_ == ld) return;
    p = p_;
    ld = ld_;
    for (std::vector<S>* m : {&F, &L, &Y}) m->assign(std::size_t(p * ld), S(0));
    pivot.resize(std::size_t(p));
    order.resize(std::size_t(p));
  }
};

// out (p, p), rows ldo apart, = s J^{-T} for the (p, p) block J (rows ldj apart); ld: p rounded up
// to a multiple of lanes<S> (the scratch's row stride). Returns sign and log|det J| of the LU; on a
// zero pivot (sign 0) out is left as it was. J and out may be the same block.
template <class S>
signed_log_det<S> lu_inverse_transpose(S* out, index ldo, const S* J, index ldj, index p, index ld, S s,
                                       block_inverse_scratch<S>& w) {
  w.shape(p, ld);
  S* F = w.F.data();
  S* L = w.L.data();
  S* Y = w.Y.data();
  for (index i = 0; i < p; ++i) copy_row(F + i * ld, J + i * ldj, p);  // padding columns stay 0
  const signed_log_det<S> ld_J = lu_log_det(F, p, ld, L, w.pivot.data());
  if (ld_J.sign == 0) return ld_J;
  for (index i = 0; i < p; ++i) {  // Z = L^{-1}: row i over the vectors of columns [0, i]
    S* z = Y + i * ld;
    std::fill(z, z + ld, S(0));
    z[i] = S(1);
    row_combination(z, z, L + i * ld, Y, ld, i, S(1), round_up(i + 1, lanes<S>));
  }
  for (index i = p - 1; i >= 0; --i) {  // Y = U^{-1} Z, in place
    S* y = Y + i * ld;
    row_combination(y, y, F + i * ld + i + 1, y + ld, ld, p - 1 - i, S(1) / F[i * ld + i], ld);
  }
  for (index k = 0; k < p; ++k) w.order[std::size_t(k)] = k;  // pi: P J = the rows order[0..p) of J
  for (index k = 0; k < p; ++k) std::swap(w.order[std::size_t(k)], w.order[std::size_t(w.pivot[std::size_t(k)])]);
  for (index k = 0; k < p; ++k) {
    S* row = out + w.order[std::size_t(k)] * ldo;
    for (index i = 0; i < p; ++i) row[i] = s * Y[i * ld + k];
  }
  return ld_J;
}

}  // namespace suptok::detail::simd_kernels

namespace suptok::detail {

// Largest block lu_inverse_transpose takes; larger ones go to recursive_lu and lu_inverse.
inline constexpr index register_inverse_max = 64;

// J (p, p), rows p apart, <- s J^{-T}; false (J unchanged) when its LU meets a zero pivot.
template <class S>
bool scale_inverse_transpose(S* J, index p, S s, simd_kernels::block_inverse_scratch<S>& w) {
  namespace k = simd_kernels;
  if (p <= register_inverse_max)
    return k::lu_inverse_transpose<S>(J, p, J, p, p, k::round_up(p, k::lanes<S>), s, w).sign != 0;
  Eigen::Map<matrix<S>> block(J, p, p);
  w.LU = block;
  if (recursive_lu_log_det<S>(w.LU, w.pivot).sign == 0) return false;
  lu_inverse<S>(w.LU, w.pivot, w.inverse);
  block = s * w.inverse.transpose();
  return true;
}

}  // namespace suptok::detail
