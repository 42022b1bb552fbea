// suptok/cuda/backend.hpp: the CUDA backend tag and the error of a failing CUDA call (nvcc only).
//
//   suptok::cuda{stream, blas, tensor_cores}
//                               passed as the first argument; the work is enqueued on `stream` (0:
//                               the legacy default stream) and the call returns without
//                               synchronising. `blas` is the caller's cuBLAS handle, needed by
//                               the calls that use cuBLAS (the barrier); they run it on `stream`
//                               and give the handle back with its stream, math mode and pointer
//                               mode as found.
//                               `tensor_cores` (on by default) lets the attention forward take
//                               its tensor-core kernel for bf16 and fp16 where it applies
//                               (docs/cuda.md); false keeps the scalar kernel, which also
//                               multiplies P V with P in float.
//   suptok::cuda_error          thrown when a CUDA runtime or cuBLAS call fails; what() names the call
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace suptok {

struct cuda {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  bool tensor_cores = true;
};

class cuda_error : public std::runtime_error {
 public:
  // code: the cudaError_t or cublasStatus_t the call returned.
  cuda_error(const std::string& call, int code, const std::string& name, const std::string& text)
      : std::runtime_error("suptok: " + call + ": " + name + " (" + text + ")"), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

namespace detail {

// Throws cuda_error naming `call` when `code` is not cudaSuccess.
inline void cuda_check(cudaError_t code, const char* call) {
  if (code != cudaSuccess) throw cuda_error(call, int(code), cudaGetErrorName(code), cudaGetErrorString(code));
}

// Throws cuda_error naming `call` when `status` is not CUBLAS_STATUS_SUCCESS.
inline void cublas_check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw cuda_error(call, int(status), cublasGetStatusName(status), cublasGetStatusString(status));
}

}  // namespace detail
}  // namespace suptok
