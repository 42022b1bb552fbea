// suptok/barrier/block.hpp: the barrier of one Jacobian block and its gradient (docs/math.md section 3).
//
//   b(J)       = f(det J)                       f: the extension policy of policy.hpp
//   db / dJ    = f'(z) cof(J),  z = det J,      cof(J) = dz/dJ = det(J) J^{-T}        (p, p)
//     -log z branch (z > 0, z >= eps or z0):    db/dJ = -J^{-T}     (used directly, via the LU)
//     clamp below eps:                          db/dJ = 0
//     extended below z0:                        db/dJ = -cof(J) / z0   (z may be <= 0)
//     exact at z <= 0:                          no gradient: suptok::error naming the token
//
// The cofactor matrix is computed from an SVD, J = U S V^T:
//   cof(J) = det(U) det(V) U diag(prod_{j != i} s_j) V^T
// which needs no inverse and is exact (to rounding) at singular J, where J^{-T} does not exist
// (rank p-1: cof = det(U)det(V) (prod of the p-1 nonzero s) u_p v_p^T; rank <= p-2: cof = 0).
// det(U), det(V) = +-1 are taken from a pivoted LU of the orthogonal factors.
#pragma once

#include <ostream>
#include <string>

#include <Eigen/LU>
#include <Eigen/SVD>

#include "../attention/params.hpp"
#include "policy.hpp"

namespace suptok {

namespace detail {

// A block must be square, non-empty and finite.
template <class S>
void validate_block(const Eigen::Ref<const matrix<S>>& J, const std::string& argument) {
  require(J.rows() == J.cols() && J.rows() > 0, argument, "expected a non-empty square matrix, got ", J.rows(),
          " x ", J.cols());
  require_finite(J, argument);
}

}  // namespace detail

// The cofactor matrix cof(J) = d det(J) / dJ (p, p), for any square J (singular included).
template <class S>
matrix<S> cofactor(const Eigen::Ref<const matrix<S>>& J) {
  detail::validate_block<S>(J, "J");
  const index p = J.rows();
  using dense = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
  const Eigen::JacobiSVD<dense> svd(dense(J), Eigen::ComputeFullU | Eigen::ComputeFullV);
  const dense& Uf = svd.matrixU();  // (p, p)
  const dense& Vf = svd.matrixV();  // (p, p)
  const S sign = S(Eigen::PartialPivLU<dense>(Uf).determinant() < S(0) ? -1 : 1) *
                 S(Eigen::PartialPivLU<dense>(Vf).determinant() < S(0) ? -1 : 1);
  vector<S> others(p);  // prod_{j != i} s_j, without division (exact when some s_j = 0)
  for (index i = 0; i < p; ++i) {
    others(i) = sign;
    for (index j = 0; j < p; ++j)
      if (j != i) others(i) *= svd.singularValues()(j);
  }
  return Uf * others.asDiagonal() * Vf.transpose();  // (p, p)
}

// b = f(det J) for one block (p, p).
template <class S>
S barrier_block(const Eigen::Ref<const matrix<S>>& J, const barrier_params& barrier) {
  detail::validate_barrier(barrier);
  detail::validate_block<S>(J, "J");
  return barrier_from_log_det(log_det<S>(J), barrier);
}

namespace detail {

// "token t (0-based)" in a message, streamed only when the error is thrown.
struct token_name {
  index t;
  friend std::ostream& operator<<(std::ostream& os, const token_name& n) { return os << "token " << n.t << " (0-based)"; }
};

// db/dJ on validated arguments. `where` (streamable: "the block", token_name{t}) names the block in
// the error of the exact policy.
template <class S, class Where>
matrix<S> barrier_block_backward_unchecked(const Eigen::Ref<const matrix<S>>& J, const signed_log_det<S>& ld,
                                           const barrier_params& barrier, const std::string& argument,
                                           const Where& where) {
  const index p = J.rows();
  if (on_log_branch(ld, barrier)) {
    const Eigen::PartialPivLU<matrix<S>> lu(J);
    return -lu.inverse().transpose();  // (p, p)  -J^{-T}
  }
  require(barrier.policy != extension::exact, argument, where,
          " is infeasible (det J <= 0): the exact barrier is +inf there and has no gradient");
  if (barrier.policy == extension::clamp) return matrix<S>::Zero(p, p);
  return cofactor<S>(J) / S(-barrier.z0);  // (p, p)  f'(z) cof(J), f' = -1/z0
}

}  // namespace detail

// db/dJ (p, p) for one block. Throws under the exact policy when det J <= 0.
template <class S>
matrix<S> barrier_block_backward(const Eigen::Ref<const matrix<S>>& J, const barrier_params& barrier) {
  detail::validate_barrier(barrier);
  detail::validate_block<S>(J, "J");
  return detail::barrier_block_backward_unchecked<S>(J, log_det<S>(J), barrier, "J", "the block");
}

}  // namespace suptok
