// suptok/support/multiprecision.hpp: opt-in support for Boost.Multiprecision binary floats.
//
// Eigen handles boost::multiprecision::number through its generic NumTraits (LU and
// determinants work as they are); this header adds the scalar_traits the library needs and the
// alias suptok::float50 = cpp_bin_float_50 (50 decimal digits) used by the precision tests.
#pragma once

#include <boost/multiprecision/cpp_bin_float.hpp>

#include <string>

#include "../core/scalar_traits.hpp"

namespace suptok {

using float50 = boost::multiprecision::cpp_bin_float_50;

template <unsigned Digits, boost::multiprecision::backends::digit_base_type Base, class Allocator,
          class Exponent, Exponent MinE, Exponent MaxE, boost::multiprecision::expression_template_option ET>
struct scalar_traits<boost::multiprecision::number<
    boost::multiprecision::backends::cpp_bin_float<Digits, Base, Allocator, Exponent, MinE, MaxE>, ET>> {
  using type = boost::multiprecision::number<
      boost::multiprecision::backends::cpp_bin_float<Digits, Base, Allocator, Exponent, MinE, MaxE>, ET>;
  static const char* name() {
    static const std::string n = "cpp_bin_float<" + std::to_string(Digits) + ">";
    return n.c_str();
  }
  static const type& value(const type& x) { return x; }
};

}  // namespace suptok
