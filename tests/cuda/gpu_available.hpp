// The GPU tests' start: whether a usable CUDA device exists. Without one a test prints why and
// exits with skip_code, which ctest reports as skipped (SKIP_RETURN_CODE 77), never as passed.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>

namespace suptok::test {

inline constexpr int skip_code = 77;

inline bool gpu_available() {
  int devices = 0;
  const cudaError_t probe = cudaGetDeviceCount(&devices);
  if (probe == cudaSuccess && devices > 0) return true;
  std::printf("SKIP: no usable CUDA device (%s)\n", cudaGetErrorString(probe));
  return false;
}

}  // namespace suptok::test
