// suptok/support/autodiff.hpp: opt-in Boost.Math forward-mode autodiff scalars in Eigen.
//
//   dual<R>                 fvar<R, 1>: a value and one directional derivative (R = double,
//                           float50, ...). Every reference operation of the library accepts it.
//   make_dual(value, slope) the dual number value + slope * eps
//   derivative(x)           the eps part of x
//
// Boost 1.74's fvar converts from anything, so Eigen's "matrix * scalar" overload also matches
// "matrix * matrix" and products become ambiguous (fixed upstream after 1.74). The specialisation
// of Eigen::internal::promote_scalar_arg below lets only arithmetic types and fvar's own value
// type be promoted to fvar, which restores Eigen's products, LU and determinants.
#pragma once

#include <boost/math/differentiation/autodiff.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <string>
#include <type_traits>

#include "../core/scalar_traits.hpp"

namespace suptok {

template <class R>
using dual = boost::math::differentiation::autodiff_v1::detail::fvar<R, 1>;

template <class R>
dual<R> make_dual(const R& value, const R& slope) {
  const dual<R> eps = boost::math::differentiation::make_fvar<R, 1>(R(0));  // 0 + 1 eps
  return dual<R>(value) + eps * dual<R>(slope);
}

template <class R>
R derivative(const dual<R>& x) {
  return x.derivative(1);
}

template <class R, std::size_t Order>
struct scalar_traits<boost::math::differentiation::autodiff_v1::detail::fvar<R, Order>> {
  static const char* name() {
    static const std::string n = std::string("fvar<") + scalar_traits<R>::name() + "," + std::to_string(Order) + ">";
    return n.c_str();
  }
  static auto value(const boost::math::differentiation::autodiff_v1::detail::fvar<R, Order>& x) {
    return scalar_traits<R>::value(static_cast<R>(x));
  }
};

}  // namespace suptok

namespace Eigen {

template <class R, std::size_t Order>
struct NumTraits<boost::math::differentiation::autodiff_v1::detail::fvar<R, Order>>
    : GenericNumTraits<boost::math::differentiation::autodiff_v1::detail::fvar<R, Order>> {
  using Real = boost::math::differentiation::autodiff_v1::detail::fvar<R, Order>;
  using NonInteger = Real;
  using Literal = Real;
  using Nested = Real;
  enum { IsComplex = 0, IsInteger = 0, IsSigned = 1, RequireInitialization = 1, ReadCost = 1, AddCost = 3, MulCost = 3 };
  static Real epsilon() { return Real(NumTraits<R>::epsilon()); }
  static Real dummy_precision() { return Real(NumTraits<R>::dummy_precision()); }
  static int digits10() { return NumTraits<R>::digits10(); }
};

namespace internal {

template <class R, std::size_t Order, class T>
struct promote_scalar_arg<boost::math::differentiation::autodiff_v1::detail::fvar<R, Order>, T, false> {};

template <class R, std::size_t Order, class T>
  requires(std::is_arithmetic_v<T> || std::is_same_v<T, R>)
struct promote_scalar_arg<boost::math::differentiation::autodiff_v1::detail::fvar<R, Order>, T, false> {
  using type = boost::math::differentiation::autodiff_v1::detail::fvar<R, Order>;
};

}  // namespace internal
}  // namespace Eigen
