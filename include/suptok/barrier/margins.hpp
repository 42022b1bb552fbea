// suptok/barrier/margins.hpp: stability margins of the Jacobian blocks (docs/math.md section 3).
//
// Per token t (0-based), for J_t (p, p) of likelihood/jacobian.hpp:
//   det, sign, log_abs_det   det J_t through the pivoted LU of likelihood/logdet.hpp
//                            (det itself may under/overflow; sign and log_abs_det do not)
//   sigma_min = m_t          the margin: smallest singular value, the spectral-norm distance from
//                            J_t to the nearest singular matrix
//   signed_margin            sign(det J_t) m_t: the same distance, negative on the infeasible side,
//                            so that an infeasible token never looks like a feasible one near the
//                            boundary (the support-token rules take this one by default)
//   sigma_max, kappa         kappa = sigma_max / sigma_min, +inf when sigma_min = 0
//   eig_margin               1 - max Re eig(sum_h V_h M^h_t) = 1 - max Re eig(I - J_t)
//                            = min Re eig(J_t)   (strict mask: M^h_t = C^h_t A_h)
// Singular values from Eigen's JacobiSVD (two-sided Jacobi: high relative accuracy, p small).
// Eigenvalues: only their real parts are needed, so they are read from the real Schur form
// T = Q^T J Q (Eigen::RealSchur, the first stage of Eigen::EigenSolver, real arithmetic only): a
// 1x1 diagonal block is a real eigenvalue, a 2x2 block [[a, b], [c, d]] a complex pair with real
// part (a + d) / 2 (Eigen splits real pairs; a 2x2 block with real eigenvalues is still handled). EigenSolver itself
// also compiles and runs for float50 (checked with g++ 12), but goes through std::complex<Scalar>, which the C++
// standard leaves unspecified for non-arithmetic types; the Schur form avoids that dependence. This works for every
// real Scalar (float, double, long double, float50). Trivial tokens (strict mask, t < 2: J = I) report det 1, margins
// 1, kappa 1, eig_margin 1.
#pragma once

#include <limits>
#include <vector>

#include <Eigen/Eigenvalues>
#include <Eigen/SVD>

#include "../likelihood/jacobian.hpp"
#include "../likelihood/logdet.hpp"
#include "block.hpp"

namespace suptok {

template <class S>
struct token_margin {
  S det;          // det J_t
  int sign;       // sign of det J_t: -1, 0, +1
  S log_abs_det;  // log |det J_t| (-inf when singular)
  S sigma_min;    // m_t = sigma_min(J_t)
  S signed_margin;  // sign(det J_t) m_t: negative at infeasible tokens (det J_t < 0)
  S sigma_max;    // sigma_max(J_t)
  S kappa;        // sigma_max / sigma_min, +inf when sigma_min = 0
  S eig_margin;   // 1 - max Re eig(I - J_t) = min Re eig(J_t)
};

namespace detail {

template <class S>
token_margin<S> block_margin_unchecked(const Eigen::Ref<const matrix<S>>& J) {
  const index p = J.rows();
  using dense = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
  const signed_log_det<S> ld = log_det<S>(J);
  const vector<S> s = Eigen::JacobiSVD<dense>(dense(J)).singularValues();  // (p), decreasing
  const S inf = S(std::numeric_limits<double>::infinity());
  token_margin<S> m{
      ld.value(), ld.sign, ld.log_abs, s(p - 1), S(ld.sign) * s(p - 1), s(0), s(p - 1) == S(0) ? inf : s(0) / s(p - 1),
      inf};
  const dense T = Eigen::RealSchur<dense>(dense(J), /*computeU=*/false).matrixT();  // (p, p)
  for (index i = 0; i < p;) {
    if (i + 1 < p && T(i + 1, i) != S(0)) {  // 2x2 block: eigenvalues mean +- sqrt(disc)
      const S mean = (T(i, i) + T(i + 1, i + 1)) / S(2), half = (T(i, i) - T(i + 1, i + 1)) / S(2);
      const S disc = half * half + T(i, i + 1) * T(i + 1, i);
      using std::sqrt;
      m.eig_margin = min_of(m.eig_margin, disc > S(0) ? mean - sqrt(disc) : mean);  // a real pair, if any
      i += 2;
    } else {
      m.eig_margin = min_of(m.eig_margin, S(T(i, i)));
      i += 1;
    }
  }
  return m;
}

}  // namespace detail

// The margins of one block J (p, p).
template <class S>
token_margin<S> block_margin(const Eigen::Ref<const matrix<S>>& J) {
  detail::validate_block<S>(J, "J");
  return detail::block_margin_unchecked<S>(J);
}

// The margins of every token t = 0..N-1 of U (N, p).
template <class S>
std::vector<token_margin<S>> token_margins(const_ref<S> U, const heads<S>& heads, const attention_params& params = {}) {
  const std::vector<matrix<S>> J = jacobian_blocks<S>(U, heads, params);  // validates U, heads, params
  std::vector<token_margin<S>> r;
  r.reserve(J.size());
  for (index t = 0; t < index(J.size()); ++t) {
    const matrix<S>& J_t = J[std::size_t(t)];
    for (index k = 0; k < J_t.size(); ++k)  // the SVD of a non-finite block leaves its output unwritten
      if (!is_finite(J_t.data()[k])) throw detail::overflowed_jacobian("U", t);
    r.push_back(detail::block_margin_unchecked<S>(J_t));
  }
  return r;
}

}  // namespace suptok
