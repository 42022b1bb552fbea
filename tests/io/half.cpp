// binary16 and bfloat16 -> float: exact values for landmarks (zeros, ones, the largest normal,
// the smallest normal and subnormals, infinities, NaNs), and all 65536 bit patterns of each
// against an independent formula evaluated in double.
#include <suptok/io/half.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

using suptok::io::bfloat16_to_float;
using suptok::io::half_to_float;

namespace {

std::uint32_t bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

}  // namespace

TEST_CASE("half: landmark values are exact", "[io][half]") {
  CHECK(bits(half_to_float(0x0000)) == 0x00000000u);  // +0
  CHECK(bits(half_to_float(0x8000)) == 0x80000000u);  // -0
  CHECK(half_to_float(0x3c00) == 1.0f);
  CHECK(half_to_float(0xbc00) == -1.0f);
  CHECK(half_to_float(0x4000) == 2.0f);
  CHECK(half_to_float(0x3800) == 0.5f);
  CHECK(half_to_float(0x5640) == 100.0f);
  CHECK(half_to_float(0x3555) == 0.333251953125f);      // 1365 / 4096
  CHECK(half_to_float(0x7bff) == 65504.0f);             // largest finite
  CHECK(half_to_float(0x0400) == 6.103515625e-05f);     // 2^-14, smallest normal
  CHECK(half_to_float(0x0001) == 5.9604644775390625e-08f);  // 2^-24, smallest subnormal
  CHECK(half_to_float(0x8001) == -5.9604644775390625e-08f);
  CHECK(half_to_float(0x0200) == 3.0517578125e-05f);    // 2^-15, a subnormal
  CHECK(half_to_float(0x03ff) == 6.097555160522461e-05f);  // 1023 * 2^-24, largest subnormal
  CHECK(half_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(half_to_float(0xfc00) == -std::numeric_limits<float>::infinity());
  // NaNs stay NaN, keep their sign, and the quiet bit lands on the float's quiet bit.
  CHECK(bits(half_to_float(0x7e00)) == 0x7fc00000u);
  CHECK(bits(half_to_float(0xfe00)) == 0xffc00000u);
  CHECK(bits(half_to_float(0x7c01)) == 0x7f802000u);  // signalling NaN with payload 1
  CHECK(std::isnan(half_to_float(0x7fff)));
}

TEST_CASE("half: every bit pattern matches (-1)^s 2^(e-25) (1024 + f), or f 2^-24 when e = 0", "[io][half]") {
  int mismatches = 0;
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const double sign = (b & 0x8000) ? -1.0 : 1.0;
    const int e = (b >> 10) & 0x1f;
    const int f = b & 0x3ff;
    const float got = half_to_float(static_cast<std::uint16_t>(b));
    bool ok;
    if (e == 31)
      ok = f == 0 ? (std::isinf(got) && std::signbit(got) == (sign < 0)) : (std::isnan(got) && std::signbit(got) == (sign < 0));
    else {
      const double expected = e == 0 ? sign * std::ldexp(double(f), -24) : sign * std::ldexp(double(1024 + f), e - 25);
      ok = static_cast<double>(got) == expected && std::signbit(got) == (sign < 0);
    }
    if (!ok) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("bfloat16: landmark values are exact", "[io][half]") {
  CHECK(bits(bfloat16_to_float(0x0000)) == 0x00000000u);
  CHECK(bits(bfloat16_to_float(0x8000)) == 0x80000000u);
  CHECK(bfloat16_to_float(0x3f80) == 1.0f);
  CHECK(bfloat16_to_float(0xc000) == -2.0f);
  CHECK(bfloat16_to_float(0x3eab) == 0.333984375f);  // 171 / 512
  CHECK(bfloat16_to_float(0x7f7f) == 3.3895313892515355e38f);  // largest finite: (2 - 2^-7) 2^127
  CHECK(bfloat16_to_float(0x0080) == std::numeric_limits<float>::min());  // 2^-126
  CHECK(bfloat16_to_float(0x0001) == std::ldexp(1.0f, -133));              // smallest subnormal
  CHECK(bfloat16_to_float(0x7f80) == std::numeric_limits<float>::infinity());
  CHECK(bfloat16_to_float(0xff80) == -std::numeric_limits<float>::infinity());
  CHECK(bits(bfloat16_to_float(0x7fc0)) == 0x7fc00000u);
  CHECK(bits(bfloat16_to_float(0xffc1)) == 0xffc10000u);
}

TEST_CASE("bfloat16: every bit pattern matches (-1)^s 2^(e-134) (128 + f), or f 2^-133 when e = 0", "[io][half]") {
  int mismatches = 0;
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const double sign = (b & 0x8000) ? -1.0 : 1.0;
    const int e = (b >> 7) & 0xff;
    const int f = b & 0x7f;
    const float got = bfloat16_to_float(static_cast<std::uint16_t>(b));
    bool ok;
    if (e == 255)
      ok = f == 0 ? std::isinf(got) : std::isnan(got);
    else {
      const double expected = e == 0 ? sign * std::ldexp(double(f), -133) : sign * std::ldexp(double(128 + f), e - 134);
      ok = static_cast<double>(got) == expected;
    }
    ok = ok && std::signbit(got) == (sign < 0);
    if (!ok) ++mismatches;
  }
  CHECK(mismatches == 0);
}
