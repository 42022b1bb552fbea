// suptok/core/backend.hpp: backend tag types, passed as the first argument of an operation.
//
//   suptok::cpu   the scalar reference path (any real Scalar); the default when no tag is given
//   suptok::simd  the xsimd fast path (float, double)
// The CUDA tag, suptok::cuda{stream}, lives in cuda/backend.hpp (nvcc only), so that this header
// never needs CUDA.
#pragma once

namespace suptok {

struct cpu {};
struct simd {};

}  // namespace suptok
