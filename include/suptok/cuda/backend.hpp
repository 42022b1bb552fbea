// suptok/cuda/backend.hpp: the CUDA backend tag and the error of a failing CUDA call (nvcc only).
//
//   suptok::cuda{stream}   passed as the first argument; the work is enqueued on `stream` (0: the
//                          legacy default stream) and the call returns without synchronising
//   suptok::cuda_error     thrown when a CUDA runtime call fails; what() names the call
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace suptok {

struct cuda {
  cudaStream_t stream = nullptr;
};

class cuda_error : public std::runtime_error {
 public:
  cuda_error(const std::string& call, cudaError_t code)
      : std::runtime_error("suptok: " + call + ": " + cudaGetErrorName(code) + " (" + cudaGetErrorString(code) + ")"),
        code_(code) {}
  cudaError_t code() const noexcept { return code_; }

 private:
  cudaError_t code_;
};

namespace detail {

// Throws cuda_error naming `call` when `code` is not cudaSuccess.
inline void cuda_check(cudaError_t code, const char* call) {
  if (code != cudaSuccess) throw cuda_error(call, code);
}

}  // namespace detail
}  // namespace suptok
