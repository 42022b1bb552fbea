// suptok/simd.hpp: the xsimd CPU fast path (float, double); needs xsimd, optionally OpenMP.
// Not included by suptok.hpp: include <suptok/simd.hpp> explicitly and compile with
// -march=x86-64-v3 (fma3 + avx2) or better. docs/simd.md describes the design and tolerances.
#pragma once

#include "suptok.hpp"
#include "simd/attention_backward.hpp"
#include "simd/attention_forward.hpp"
#include "simd/kernels.hpp"
#include "simd/barrier_backward.hpp"  // includes simd/barrier_forward.hpp
#include "simd/projected_analysis.hpp"  // includes simd/projected_forward.hpp
#include "simd/projected_backward.hpp"
