// suptok/core/scalar_traits.hpp: what the library needs to know about a real Scalar.
//
//   scalar_traits<S>::name()     printable name ("double", "cpp_bin_float_50", "fvar<double,1>")
//   scalar_traits<S>::value(x)   the plain value of x (strips derivative parts of autodiff types)
//   is_finite(x)                 finiteness of value(x), for any supported S
//   to_double(x)                 value(x) as a double, for reports and tolerances
//
// float, double and long double are covered here. <suptok/support/multiprecision.hpp> and
// <suptok/support/autodiff.hpp> add Boost.Multiprecision and Boost.Math forward-mode autodiff.
#pragma once

#include <cmath>
#include <limits>

namespace suptok {

template <class S>
struct scalar_traits;

template <>
struct scalar_traits<float> {
  static const char* name() { return "float"; }
  static float value(float x) { return x; }
};
template <>
struct scalar_traits<double> {
  static const char* name() { return "double"; }
  static double value(double x) { return x; }
};
template <>
struct scalar_traits<long double> {
  static const char* name() { return "long double"; }
  static long double value(long double x) { return x; }
};

template <class S>
bool is_finite(const S& x) {
  using std::isfinite;
  return isfinite(scalar_traits<S>::value(x));
}

template <class S>
double to_double(const S& x) {
  return static_cast<double>(scalar_traits<S>::value(x));
}

// The larger / smaller of two values by value (autodiff types have no std::max overload).
template <class S>
const S& max_of(const S& a, const S& b) {
  return a < b ? b : a;
}
template <class S>
const S& min_of(const S& a, const S& b) {
  return b < a ? b : a;
}

}  // namespace suptok
