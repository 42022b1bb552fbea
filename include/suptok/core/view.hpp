// suptok/core/view.hpp: the data types of the CPU API.
//
//   matrix<S>      owning, row-major Eigen matrix; a sequence U is (N, p), one token per row
//   vector<S>      owning column vector
//   const_ref<S>   what a read-only matrix argument binds to: any Eigen matrix or expression of
//                  scalar S (row- or column-major, a block, a Map over the caller's memory).
//                  Row-major contiguous data binds without a copy; anything else is copied into
//                  a temporary, never modified. It does not take part in template deduction, so
//                  S is fixed by the other arguments (the heads).
//   matrix_view<T> a non-owning strided 2-D view (pointer, rows, cols, row stride) for data that
//                  lives outside Eigen (buffers, device memory); the CUDA toolchain check uses
//                  it, no library function takes one yet.
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <type_traits>

#include "config.hpp"

namespace suptok {

using index = Eigen::Index;

template <class S>
using matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class S>
using vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

template <class S>
using const_ref = std::type_identity_t<Eigen::Ref<const matrix<S>>>;

template <class T>
struct matrix_view {
  T* data = nullptr;
  index rows = 0;
  index cols = 0;
  index row_stride = 0;  // elements between the starts of consecutive rows

  SUPTOK_HD T& operator()(index r, index c) const { return data[r * row_stride + c]; }
  SUPTOK_HD T* row(index r) const { return data + r * row_stride; }
};

// A view of a row-major Eigen matrix (or Map/Ref/Block of one) with unit inner stride.
template <class Derived>
auto view_of(Eigen::PlainObjectBase<Derived>& m) {
  using T = typename Derived::Scalar;
  static_assert(Derived::IsRowMajor || Derived::ColsAtCompileTime == 1, "view_of: row-major storage expected");
  return matrix_view<T>{m.data(), m.rows(), m.cols(), m.cols()};
}
template <class Derived>
auto view_of(const Eigen::PlainObjectBase<Derived>& m) {
  using T = const typename Derived::Scalar;
  static_assert(Derived::IsRowMajor || Derived::ColsAtCompileTime == 1, "view_of: row-major storage expected");
  return matrix_view<T>{m.data(), m.rows(), m.cols(), m.cols()};
}

}  // namespace suptok
