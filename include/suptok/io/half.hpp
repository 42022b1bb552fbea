// suptok/io/half.hpp: IEEE half precision (binary16) and bfloat16 to float, exactly.
//
//   io::half_to_float(bits)       binary16: 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits
//   io::bfloat16_to_float(bits)   bfloat16: the upper 16 bits of a binary32 (8 exponent bits,
//                                 bias 127, 7 fraction bits)
//
// Both conversions are exact: every binary16 and bfloat16 value is a float. Signed zeros keep
// their sign, binary16 subnormals (exponent field 0) are fraction * 2^-24, infinities stay
// infinite, and NaNs stay NaN with their sign and payload carried into the float's upper fraction
// bits (so a quiet NaN stays quiet). No rounding mode or floating-point environment is involved.
#pragma once

#include <cstdint>
#include <cstring>

namespace suptok::io {

inline float bfloat16_to_float(std::uint16_t bits) noexcept {
  const std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

inline float half_to_float(std::uint16_t bits) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  std::uint32_t fraction = bits & 0x3ffu;
  std::uint32_t out = 0;
  if (exponent == 0x1f) {
    // Infinity (fraction 0) or NaN: the float's all-ones exponent, fraction moved to the top.
    out = sign | 0x7f800000u | (fraction << 13);
  } else if (exponent != 0) {
    // Normal: rebias the exponent from 15 to 127.
    out = sign | ((exponent + (127 - 15)) << 23) | (fraction << 13);
  } else if (fraction == 0) {
    out = sign;  // signed zero
  } else {
    // Subnormal: value fraction * 2^-24. Shift the leading 1 up to bit 10 to obtain a normal
    // float; each shift lowers the exponent by one, starting from 2^-14 (the subnormal scale).
    std::uint32_t e = 127 - 14;
    while ((fraction & 0x400u) == 0) {
      fraction <<= 1;
      --e;
    }
    out = sign | (e << 23) | ((fraction & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &out, sizeof f);
  return f;
}

}  // namespace suptok::io
