// The storage types of the CUDA attention tests: conversions to and from float/double, each type's
// unit roundoff and its name in the tests' output.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace suptok::test {

inline constexpr double eps_f = 1.0 / (1 << 23);

template <class T>
T store(float x);
template <>
inline float store<float>(float x) { return x; }
template <>
inline __nv_bfloat16 store<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <>
inline __half store<__half>(float x) { return __float2half(x); }

inline double load(float x) { return x; }
inline double load(__nv_bfloat16 x) { return __bfloat162float(x); }
inline double load(__half x) { return __half2float(x); }

template <class T>
constexpr double unit_roundoff =
    std::is_same_v<T, float> ? eps_f / 2 : std::is_same_v<T, __half> ? 1.0 / 2048 : 1.0 / 256;
template <class T>
constexpr const char* type_name = std::is_same_v<T, float> ? "float" : std::is_same_v<T, __half> ? "fp16" : "bf16";

}  // namespace suptok::test
