// suptok/likelihood/logdet.hpp: determinants through a pivoted LU, never the raw product.
//
//   J = P^{-1} L U (partial pivoting)  ->  det J = sign(P) prod_i U_ii
//   log|det J| = sum_i log|U_ii|,  sign = sign(P) prod_i sign(U_ii)
// A singular J (some U_ii = 0) gives sign 0 and log_abs = -inf. Works for any real Scalar.
#pragma once

#include <limits>

#include <Eigen/LU>

#include "../core/scalar_traits.hpp"
#include "../core/view.hpp"

namespace suptok {

template <class S>
struct signed_log_det {
  int sign = 0;  // -1, 0 or +1
  S log_abs;     // log |det|, -inf when sign == 0

  S value() const {  // det itself (may under/overflow where log_abs does not)
    using std::exp;
    return sign == 0 ? S(0) : S(sign) * exp(log_abs);
  }
};

// sign and log|det| from a pivoted LU factorisation of the matrix.
template <class S>
signed_log_det<S> log_det(const Eigen::PartialPivLU<matrix<S>>& lu) {
  using std::abs;
  using std::log;
  signed_log_det<S> r{static_cast<int>(lu.permutationP().determinant()), S(0)};
  for (index i = 0; i < lu.rows(); ++i) {
    const S u = lu.matrixLU()(i, i);
    if (u == S(0)) return {0, S(-std::numeric_limits<double>::infinity())};
    if (u < S(0)) r.sign = -r.sign;
    r.log_abs += log(abs(u));
  }
  return r;
}

template <class S>
signed_log_det<S> log_det(const Eigen::Ref<const matrix<S>>& J) {
  return log_det<S>(Eigen::PartialPivLU<matrix<S>>(J));
}

}  // namespace suptok
