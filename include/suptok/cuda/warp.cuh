// suptok/cuda/warp.cuh: reductions over the 32 lanes of a warp (nvcc only), for float and double.
#pragma once

namespace suptok::detail {

inline constexpr unsigned full_warp = 0xffffffffu;

// The maximum and the sum of x over the warp, in every lane (butterfly shuffles).
template <class S>
__device__ S warp_max(S x) {
  for (int offset = 16; offset > 0; offset /= 2) x = fmax(x, __shfl_xor_sync(full_warp, x, offset));
  return x;
}
template <class S>
__device__ S warp_sum(S x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(full_warp, x, offset);
  return x;
}

}  // namespace suptok::detail
