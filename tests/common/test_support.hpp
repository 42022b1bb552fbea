// Shared helpers of the test suite: seeded random inputs in any scalar type, central finite
// differences, error measures in units of epsilon, the one scalar comparison within_eps, and the
// scalar type lists.
#pragma once

#include <suptok/suptok.hpp>
#include <suptok/support/autodiff.hpp>
#include <suptok/support/multiprecision.hpp>

#include "instances.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <limits>
#include <ostream>
#include <random>
#include <source_location>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace suptok::test {

// The scalar types every reference test is instantiated for.
#define SUPTOK_REAL_SCALARS float, double, long double, suptok::float50

// A matrix of N(0, scale^2) entries drawn in double from a fixed seed and cast to S, so that
// every scalar type sees the same values.
template <class S>
matrix<S> random_matrix(index rows, index cols, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, scale);
  matrix<S> m(rows, cols);
  for (index r = 0; r < rows; ++r)
    for (index c = 0; c < cols; ++c) m(r, c) = S(normal(gen));
  return m;
}

// H heads of shape (d_k, p), (d_v, p), with entries of standard deviation `scale`.
template <class S>
heads<S> random_heads(index H, index p, index d_k, index d_v, std::uint64_t seed, double scale = 0.5) {
  heads<S> hs(static_cast<std::size_t>(H));
  for (auto& h : hs) {
    h.W_Q = random_matrix<S>(d_k, p, seed++, scale);
    h.W_K = random_matrix<S>(d_k, p, seed++, scale);
    h.W_V = random_matrix<S>(d_v, p, seed++, scale);
    h.W_O = random_matrix<S>(p, d_v, seed++, scale);
  }
  return hs;
}

template <class To, class From>
matrix<To> cast(const matrix<From>& m) {
  matrix<To> r(m.rows(), m.cols());
  for (index i = 0; i < m.rows(); ++i)
    for (index j = 0; j < m.cols(); ++j) r(i, j) = To(m(i, j));
  return r;
}

template <class To, class From>
heads<To> cast(const heads<From>& hs) {
  heads<To> r(hs.size());
  for (std::size_t h = 0; h < hs.size(); ++h) {
    r[h].W_Q = cast<To>(hs[h].W_Q);
    r[h].W_K = cast<To>(hs[h].W_K);
    r[h].W_V = cast<To>(hs[h].W_V);
    r[h].W_O = cast<To>(hs[h].W_O);
  }
  return r;
}

// Pointers to the parameter blocks of (U, heads) in the order the gradient tests use:
// U, then for each head W_Q, W_K, W_V, W_O.
template <class S>
std::vector<matrix<S>*> blocks_of(matrix<S>& U, heads<S>& hs) {
  std::vector<matrix<S>*> b{&U};
  for (auto& h : hs) {
    b.push_back(&h.W_Q);
    b.push_back(&h.W_K);
    b.push_back(&h.W_V);
    b.push_back(&h.W_O);
  }
  return b;
}

// A gradient (dU, dW) as copies of its blocks, in the order of blocks_of(U, heads).
template <class S>
std::vector<matrix<S>> blocks_of(const attention_gradients<S>& g) {
  auto copy = g;
  std::vector<matrix<S>> out;
  for (auto* b : blocks_of(copy.dU, copy.dW)) out.push_back(*b);
  return out;
}

// The name of block k of blocks_of(U, heads): "U", "heads[h].W_Q", ...
inline std::string block_name(std::size_t k) {
  if (k == 0) return "U";
  static const char* fields[] = {"W_Q", "W_K", "W_V", "W_O"};
  return "heads[" + std::to_string((k - 1) / 4) + "]." + fields[(k - 1) % 4];
}

// Central difference of a scalar function f(x) along the entry `x` (modified in place and
// restored): (f(x + h) - f(x - h)) / (2h). With S = float50 and h = 1e-15 the truncation error is
// about h^2 = 1e-30 relative and the rounding error about 1e-50 / 1e-15 = 1e-35.
template <class S, class F>
S central_difference(S& x, const S& h, F&& f) {
  const S x0 = x;
  x = x0 + h;
  const S fp = f();
  x = x0 - h;
  const S fm = f();
  x = x0;
  return (fp - fm) / (S(2) * h);
}

// max |a - b| / max(|b|_max, tiny): a relative error on the scale of the reference b.
// The difference is formed in float50 before rounding to double, so that errors far below
// double's eps (long double, float50 comparisons) are measured rather than lost.
template <class A, class B>
double max_rel_error(const A& a, const B& b) {
  using TA = typename A::Scalar;
  using TB = typename B::Scalar;
  double diff = 0, scale = 0;
  for (index i = 0; i < a.rows(); ++i)
    for (index j = 0; j < a.cols(); ++j) {
      const float50 d = float50(scalar_traits<TA>::value(a(i, j))) - float50(scalar_traits<TB>::value(b(i, j)));
      diff = std::max(diff, std::abs(to_double(d)));
      scale = std::max(scale, std::abs(to_double(b(i, j))));
    }
  return diff / std::max(scale, std::numeric_limits<double>::min());
}

// ---- within_eps: the one scalar comparison of the test suite ----
//
//   CHECK(test::within_eps(actual, expected, k));            |actual - expected| <= k eps |expected|
//   CHECK(test::within_eps(actual, expected, k, scale));     |actual - expected| <= k eps (|expected| + scale)
//   CHECK(test::within_eps<float>(actual, expected, k));     eps of float whatever the argument types
//
// error = |actual - expected| / (eps (|expected| + scale)), in units of eps, and the check passes
// when error <= k (the convention of the simd tests' err_eps). eps is that of Eps, by default the
// value type of `actual` (double for dual<double>). `scale` is an absolute floor for values that
// cancel to about zero: the magnitude of the terms that were summed. The difference is formed in
// float50, so long double and float50 errors are measured rather than lost to double rounding.
// Equal infinities compare equal; a NaN on either side fails. On failure Catch prints actual,
// expected, the error in eps and the bound. With SUPTOK_TEST_REPORT_EPS set in the environment
// every comparison prints "file:line: error E eps (bound k)" to stderr: how bounds are measured.
struct closeness {
  bool ok = false;
  double error = 0;  // in units of eps
  double bound = 0;
  double scale = 0;
  std::string actual, expected, eps_type;
  explicit operator bool() const { return ok; }
  friend std::ostream& operator<<(std::ostream& os, const closeness& c) {
    return os << "actual " << c.actual << ", expected " << c.expected << ": error " << c.error << " eps "
              << (c.ok ? "<=" : ">") << " bound " << c.bound << " eps (eps of " << c.eps_type << ", scale " << c.scale
              << ")";
  }
};

namespace detail {
template <class T>
auto plain_value(const T& x) {
  if constexpr (std::is_arithmetic_v<T>)
    return x;
  else
    return scalar_traits<T>::value(x);
}
template <class T>
std::string full_digits(const T& x) {
  std::ostringstream os;
  os << std::setprecision(std::numeric_limits<T>::max_digits10) << x;
  return os.str();
}
}  // namespace detail

template <class Eps = void, class A, class E>
closeness within_eps(const A& actual, const E& expected, double k, double scale = 0,
                     std::source_location where = std::source_location::current()) {
  using VA = decltype(detail::plain_value(actual));
  using VE = decltype(detail::plain_value(expected));
  using EpsT = std::conditional_t<std::is_void_v<Eps>, std::conditional_t<std::is_integral_v<VA>, double, VA>, Eps>;
  const VA a = detail::plain_value(actual);
  const VE e = detail::plain_value(expected);
  closeness c;
  c.bound = k;
  c.scale = scale;
  c.eps_type = scalar_traits<EpsT>::name();
  c.actual = detail::full_digits(a);
  c.expected = detail::full_digits(e);
  const float50 fa(a), fe(e);
  if (boost::multiprecision::isnan(fa) || boost::multiprecision::isnan(fe)) {
    c.error = std::numeric_limits<double>::quiet_NaN();
  } else if (boost::multiprecision::isinf(fa) || boost::multiprecision::isinf(fe)) {
    c.error = fa == fe ? 0.0 : std::numeric_limits<double>::infinity();
  } else {
    const float50 diff = abs(fa - fe);
    const float50 denom = float50(to_double(std::numeric_limits<EpsT>::epsilon())) * (abs(fe) + float50(scale));
    c.error = denom > 0 ? static_cast<double>(diff / denom) : (diff == 0 ? 0.0 : std::numeric_limits<double>::infinity());
  }
  c.ok = c.error <= k;  // false for NaN
  if (std::getenv("SUPTOK_TEST_REPORT_EPS"))
    std::fprintf(stderr, "%s:%u: error %.3g eps (bound %g)\n", where.file_name(), unsigned(where.line()), c.error, k);
  return c;
}

template <class S>
double epsilon_of() {
  return to_double(std::numeric_limits<S>::epsilon());
}

}  // namespace suptok::test
