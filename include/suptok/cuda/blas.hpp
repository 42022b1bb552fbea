// suptok/cuda/blas.hpp: the cuBLAS calls of the CUDA backend, on row-major matrices, for float and
// double (nvcc only).
//
// cuBLAS is column-major; a row-major R x C matrix of row stride ld is the column-major C x R
// matrix of leading dimension ld, its transpose. So the row-major product C = op(A) op(B) is the
// column-major C^T = op(B)^T op(A)^T: the same call with the operands swapped.
#pragma once

#include <cublas_v2.h>

#include <type_traits>

#include "../core/view.hpp"
#include "backend.hpp"

namespace suptok::detail {

// A row-major operand of a strided batch: matrix i at data + i * stride (stride 0: one matrix for
// all), row stride ld, transposed when trans.
template <class S>
struct blas_operand {
  const S* data;
  index ld;
  long long stride = 0;
  bool trans = false;
};

// C_i = alpha op(A_i) op(B_i) + beta C_i for i < batch, C_i row-major (rows x cols) at
// C + i * C_stride with row stride ldc; op(A_i) is rows x inner, op(B_i) inner x cols.
template <class S>
void gemm_batched(cublasHandle_t blas, index rows, index cols, index inner, S alpha, const blas_operand<S>& A,
                  const blas_operand<S>& B, S beta, S* C, index ldc, long long C_stride, index batch,
                  const char* call) {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "the CUDA barrier computes in float or double");
  const cublasOperation_t op_a = A.trans ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = B.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t status;
  if constexpr (std::is_same_v<S, float>)
    status = cublasSgemmStridedBatched(blas, op_b, op_a, int(cols), int(rows), int(inner), &alpha, B.data, int(B.ld),
                                       B.stride, A.data, int(A.ld), A.stride, &beta, C, int(ldc), C_stride, int(batch));
  else
    status = cublasDgemmStridedBatched(blas, op_b, op_a, int(cols), int(rows), int(inner), &alpha, B.data, int(B.ld),
                                       B.stride, A.data, int(A.ld), A.stride, &beta, C, int(ldc), C_stride, int(batch));
  cublas_check(status, call);
}

// y_i = op(A_i) x_i for i < batch: A_i row-major (rows x cols) at A.data + i * A.stride,
// transposed when A.trans; x_i at x + i * x_stride and y_i at y + i * y_stride, unit increments.
template <class S>
void gemv_batched(cublasHandle_t blas, index rows, index cols, const blas_operand<S>& A, const S* x,
                  long long x_stride, S* y, long long y_stride, index batch, const char* call) {
  const S one = 1, zero = 0;
  // Row-major A_i is the column-major (cols x rows) A_i^T: A_i x takes it transposed.
  const cublasOperation_t op = A.trans ? CUBLAS_OP_N : CUBLAS_OP_T;
  cublasStatus_t status;
  if constexpr (std::is_same_v<S, float>)
    status = cublasSgemvStridedBatched(blas, op, int(cols), int(rows), &one, A.data, int(A.ld), A.stride, x, 1,
                                       x_stride, &zero, y, 1, y_stride, int(batch));
  else
    status = cublasDgemvStridedBatched(blas, op, int(cols), int(rows), &one, A.data, int(A.ld), A.stride, x, 1,
                                       x_stride, &zero, y, 1, y_stride, int(batch));
  cublas_check(status, call);
}

// In-place pivoted LU of `batch` n x n matrices J[i] (any layout: det J^T = det J), pivots
// (batch, n) 1-based as LAPACK's getrf, info (batch).
template <class S>
void lu_batched(cublasHandle_t blas, index n, S* const* J, int* pivots, int* info, index batch) {
  cublasStatus_t status;
  if constexpr (std::is_same_v<S, float>)
    status = cublasSgetrfBatched(blas, int(n), J, int(n), pivots, info, int(batch));
  else
    status = cublasDgetrfBatched(blas, int(n), J, int(n), pivots, info, int(batch));
  cublas_check(status, "cublasXgetrfBatched");
}

// Out of place: inv[i] = the inverse of the matrix whose LU (lu_batched) is in LU[i], for `batch`
// n x n matrices (column-major as cuBLAS sees them: a row-major J's LU gives J^{-1} row-major).
template <class S>
void inverse_batched(cublasHandle_t blas, index n, const S* const* LU, const int* pivots, S* const* inv, int* info,
                     index batch) {
  cublasStatus_t status;
  if constexpr (std::is_same_v<S, float>)
    status = cublasSgetriBatched(blas, int(n), LU, int(n), pivots, inv, int(n), info, int(batch));
  else
    status = cublasDgetriBatched(blas, int(n), LU, int(n), pivots, inv, int(n), info, int(batch));
  cublas_check(status, "cublasXgetriBatched");
}

// Solves J_i v_i = b_i (J_i^T v_i = b_i when `transposed`) in place in b[i] (n elements), for
// `batch` row-major n x n J_i whose LU lu_batched left in LU[i] (the LU of the column-major J_i^T).
template <class S>
void lu_solve_batched(cublasHandle_t blas, index n, const S* const* LU, const int* pivots, S* const* b,
                      bool transposed, index batch, const char* call) {
  const cublasOperation_t op = transposed ? CUBLAS_OP_N : CUBLAS_OP_T;
  int info = 0;  // host: minus the position of an invalid argument
  cublasStatus_t status;
  if constexpr (std::is_same_v<S, float>)
    status = cublasSgetrsBatched(blas, op, int(n), 1, LU, int(n), pivots, b, int(n), &info, int(batch));
  else
    status = cublasDgetrsBatched(blas, op, int(n), 1, LU, int(n), pivots, b, int(n), &info, int(batch));
  cublas_check(info < 0 ? CUBLAS_STATUS_INVALID_VALUE : status, call);
}

// sum[k] = sum_{i < count} x[i * size + k] for k < size: `count` contiguous blocks of `size`
// elements added (one matrix-vector product with a vector of ones of `count` elements).
template <class S>
void sum_blocks(cublasHandle_t blas, const S* x, index size, index count, const S* ones, S* sum, const char* call) {
  const S one = 1, zero = 0;
  cublasStatus_t status;
  if constexpr (std::is_same_v<S, float>)
    status = cublasSgemv(blas, CUBLAS_OP_N, int(size), int(count), &one, x, int(size), ones, 1, &zero, sum, 1);
  else
    status = cublasDgemv(blas, CUBLAS_OP_N, int(size), int(count), &one, x, int(size), ones, 1, &zero, sum, 1);
  cublas_check(status, call);
}

// Runs cuBLAS on `stream` with its default math (no TF32 or reduced-precision products) and
// scalars (alpha, beta) read from host memory for a scope, then gives the handle back with the
// stream, math mode and pointer mode it had.
class blas_scope {
 public:
  blas_scope(cublasHandle_t blas, cudaStream_t stream) : blas_(blas) {
    cublas_check(cublasGetStream(blas_, &stream_), "cublasGetStream");
    cublas_check(cublasGetMathMode(blas_, &math_), "cublasGetMathMode");
    cublas_check(cublasGetPointerMode(blas_, &pointers_), "cublasGetPointerMode");
    try {
      cublas_check(cublasSetStream(blas_, stream), "cublasSetStream");
      cublas_check(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
      cublas_check(cublasSetPointerMode(blas_, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
    } catch (...) {
      restore();
      throw;
    }
  }
  ~blas_scope() { restore(); }
  blas_scope(const blas_scope&) = delete;
  blas_scope& operator=(const blas_scope&) = delete;

 private:
  void restore() {
    cublasSetStream(blas_, stream_);
    cublasSetMathMode(blas_, math_);
    cublasSetPointerMode(blas_, pointers_);
  }

  cublasHandle_t blas_;
  cudaStream_t stream_ = nullptr;
  cublasMath_t math_ = CUBLAS_DEFAULT_MATH;
  cublasPointerMode_t pointers_ = CUBLAS_POINTER_MODE_HOST;
};

}  // namespace suptok::detail
