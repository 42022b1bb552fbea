// Helpers shared by the likelihood tests: the parameters (U, heads) as a flat list of blocks
// (U, then for each head W_Q, W_K, W_V, W_O), central-difference gradients of any scalar function
// of them, directional derivatives by forward-mode autodiff, and error measures over the blocks.
#pragma once

#include "test_support.hpp"

#include <suptok/likelihood.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace suptok::test {

// d f / d(every entry of U and the heads) by central differences with step h; f(U, hs) -> S.
template <class S, class F>
std::vector<matrix<S>> fd_gradient(matrix<S> U, heads<S> hs, const S& h, F&& f) {
  std::vector<matrix<S>> grad;
  for (matrix<S>* b : blocks_of(U, hs)) {
    matrix<S> g(b->rows(), b->cols());
    for (index i = 0; i < b->rows(); ++i)
      for (index j = 0; j < b->cols(); ++j) g(i, j) = central_difference((*b)(i, j), h, [&] { return f(U, hs); });
    grad.push_back(g);
  }
  return grad;
}

// The largest relative error (max_rel_error, per block) over all blocks.
template <class A, class B>
double max_block_error(const std::vector<A>& a, const std::vector<B>& b) {
  double e = 0;
  for (std::size_t k = 0; k < a.size(); ++k) e = std::max(e, max_rel_error(a[k], b[k]));
  return e;
}

// Dual-number copies of (U, hs) whose slopes are the seeded random direction `dir` (same layout).
template <class R>
std::pair<matrix<dual<R>>, heads<dual<R>>> dual_along(const matrix<R>& U, const heads<R>& hs,
                                                       const std::vector<matrix<R>>& dir) {
  matrix<R> Uc = U;
  heads<R> hc = hs;
  matrix<dual<R>> Ud;
  heads<dual<R>> hd(hs.size());
  std::vector<matrix<dual<R>>*> out = blocks_of(Ud, hd);
  std::vector<matrix<R>*> in = blocks_of(Uc, hc);
  for (std::size_t k = 0; k < in.size(); ++k) {
    out[k]->resize(in[k]->rows(), in[k]->cols());
    for (index i = 0; i < in[k]->rows(); ++i)
      for (index j = 0; j < in[k]->cols(); ++j) (*out[k])(i, j) = make_dual<R>((*in[k])(i, j), dir[k](i, j));
  }
  return {Ud, hd};
}

// A random direction with the layout of (U, hs).
template <class R>
std::vector<matrix<R>> random_direction(const matrix<R>& U, const heads<R>& hs, std::uint64_t seed) {
  matrix<R> Uc = U;
  heads<R> hc = hs;
  std::vector<matrix<R>> dir;
  for (auto* b : blocks_of(Uc, hc)) dir.push_back(random_matrix<R>(b->rows(), b->cols(), seed++));
  return dir;
}

// sum_k <a_k, b_k>: the directional derivative of the analytic gradient a along b.
template <class R>
R dot_blocks(const std::vector<matrix<R>>& a, const std::vector<matrix<R>>& b) {
  R s = R(0);
  for (std::size_t k = 0; k < a.size(); ++k) s += a[k].cwiseProduct(b[k]).sum();
  return s;
}

// N random (p, p) blocks.
template <class S>
std::vector<matrix<S>> random_blocks(index N, index p, std::uint64_t seed) {
  std::vector<matrix<S>> m;
  for (index t = 0; t < N; ++t) m.push_back(random_matrix<S>(p, p, seed + static_cast<std::uint64_t>(t)));
  return m;
}

// L = sum_t <dJ_t, J_t>_F.
template <class S>
S block_loss(const std::vector<matrix<S>>& dJ, const matrix<S>& U, const heads<S>& hs, const attention_params& params) {
  const auto J = jacobian_blocks<S>(U, hs, params);
  S L = S(0);
  for (std::size_t t = 0; t < J.size(); ++t) L += dJ[t].cwiseProduct(J[t]).sum();
  return L;
}

inline const attention_params strict_params{mask::strict, 0};
inline const attention_params inclusive_params{mask::inclusive, 0};

}  // namespace suptok::test
