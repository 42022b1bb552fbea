// suptok/core/backend.hpp: backend tag types, passed as the first argument of an operation.
//
//   suptok::cpu   the scalar reference path (any real Scalar); the default when no tag is given
//   suptok::simd  the xsimd fast path (float, double)
// There is no CUDA tag yet; when the CUDA backend comes, its tag will live in its own header so
// that this one never needs CUDA.
#pragma once

namespace suptok {

struct cpu {};
struct simd {};

}  // namespace suptok
