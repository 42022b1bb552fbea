// Device memory for the GPU tests: an owning buffer and copies to and from host vectors, each
// failure a suptok::cuda_error naming the call.
#pragma once

#include <suptok/cuda/backend.hpp>

#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

namespace suptok::test {

template <class T>
struct device_buffer {
  T* data = nullptr;
  std::size_t size = 0;  // elements
  explicit device_buffer(std::size_t n) : size(n) {
    detail::cuda_check(cudaMalloc(&data, n * sizeof(T)), "cudaMalloc");
  }
  ~device_buffer() { cudaFree(data); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
};

template <class T>
void upload(const device_buffer<T>& to, const std::vector<T>& from) {
  detail::cuda_check(cudaMemcpy(to.data, from.data(), from.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
}

template <class T>
std::vector<T> download(const device_buffer<T>& from, std::size_t n) {
  std::vector<T> to(n);
  detail::cuda_check(cudaMemcpy(to.data(), from.data, n * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
  return to;
}

}  // namespace suptok::test
