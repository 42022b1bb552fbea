// suptok/likelihood/logdet.hpp: determinants through a pivoted LU, never the raw product.
//
//   J = P^{-1} L U (partial pivoting)  ->  det J = sign(P) prod_i U_ii
//   log|det J| = sum_i log|U_ii|,  sign = sign(P) prod_i sign(U_ii)
// A singular J (some U_ii = 0) gives sign 0 and log_abs = -inf. Works for any real Scalar.
#pragma once

#include <limits>
#include <string>

#include <Eigen/LU>

#include "../core/error.hpp"
#include "../core/scalar_traits.hpp"
#include "../core/view.hpp"

namespace suptok {

template <class S>
struct signed_log_det {
  int sign = 0;  // -1, 0 or +1
  S log_abs;     // log |det|, -inf when sign == 0

  SUPTOK_HD S value() const {  // det itself (may under/overflow where log_abs does not)
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

namespace detail {

// The error for a J_t that the library formed from finite inputs but that overflowed the scalar
// (attention logits or moments beyond its range): its entries or log|det| are NaN or infinite, so
// no b_t, margin, likelihood or gradient of it means anything. `argument` names the sequence
// ("U", "Us[b]", "layers[l].U"), as the exact policy's infeasible-token error does.
inline error overflowed_jacobian(const std::string& argument, index t) {
  return error(argument, message("J_t of token ", t,
                                 " (0-based) is not finite: the finite inputs overflowed the scalar type inside it "
                                 "(attention logits or moments beyond its range); scale the sequence or the weights "
                                 "down, or use a wider scalar type"));
}

// Checks the log-determinant of the J_t the library formed for token t of `argument`: finite, or
// the -inf of a singular J_t (sign 0).
template <class S>
void require_finite_log_det(const signed_log_det<S>& ld, const std::string& argument, index t) {
  if (ld.sign != 0 && !is_finite(ld.log_abs)) throw overflowed_jacobian(argument, t);
}

}  // namespace detail

}  // namespace suptok
