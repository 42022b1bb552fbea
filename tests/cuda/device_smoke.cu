// CUDA toolchain check: the core headers compile under nvcc, and SUPTOK_HD helpers give the
// same results on the device as on the host. Exits 77 (ctest: skipped) when no GPU is usable.
#include <suptok/suptok.hpp>

#include <cuda_runtime.h>

#include "gpu_available.hpp"

#include <cstdio>
#include <vector>

namespace {

// out[t] = past_end(t, m) + view(t, 0): exercises SUPTOK_HD functions and matrix_view on device.
__global__ void past_end_kernel(suptok::index* out, suptok::matrix_view<const suptok::index> v, suptok::mask m) {
  const suptok::index t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < v.rows) out[t] = suptok::past_end(t, m) + v(t, 0);
}

}  // namespace

int main() {
  if (!suptok::test::gpu_available()) return suptok::test::skip_code;
  constexpr suptok::index N = 37;
  std::vector<suptok::index> host(N), result(N);
  for (suptok::index t = 0; t < N; ++t) host[t] = 3 * t;
  suptok::index *d_in = nullptr, *d_out = nullptr;
  cudaMalloc(&d_in, N * sizeof(suptok::index));
  cudaMalloc(&d_out, N * sizeof(suptok::index));
  cudaMemcpy(d_in, host.data(), N * sizeof(suptok::index), cudaMemcpyHostToDevice);
  int failures = 0;
  for (suptok::mask m : {suptok::mask::strict, suptok::mask::inclusive}) {
    past_end_kernel<<<2, 32>>>(d_out, suptok::matrix_view<const suptok::index>{d_in, N, 1, 1}, m);
    if (cudaDeviceSynchronize() != cudaSuccess) {
      std::printf("FAIL: kernel launch: %s\n", cudaGetErrorString(cudaGetLastError()));
      return 1;
    }
    cudaMemcpy(result.data(), d_out, N * sizeof(suptok::index), cudaMemcpyDeviceToHost);
    for (suptok::index t = 0; t < N; ++t)
      if (result[t] != suptok::past_end(t, m) + host[t]) ++failures;
  }
  cudaFree(d_in);
  cudaFree(d_out);
  std::printf("%s: %d mismatches\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
