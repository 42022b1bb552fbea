// Helpers shared by the attention tests: the scalar loss L = sum_{t,i} G_ti mu_ti whose gradient
// attention_backward returns for dMu = G, its gradient by central finite differences and by
// forward-mode autodiff (one seeded entry at a time), and error measures over all gradient blocks.
//
// Gradients are handled as a flat list of blocks in a fixed order:
//   U, then for each head h: W_Q, W_K, W_V, W_O.
#pragma once

#include "test_support.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace suptok::test {

// L = sum_ti G_ti mu_ti.
template <class S>
S loss(const matrix<S>& U, const heads<S>& hs, const matrix<S>& G, const attention_params& params) {
  return attention_forward<S>(U, hs, params).mu.cwiseProduct(G).sum();
}

// dL/d(every entry) by central differences with step h (test::central_difference).
template <class S>
std::vector<matrix<S>> fd_gradient(matrix<S> U, heads<S> hs, const matrix<S>& G, const attention_params& params,
                                   const S& h) {
  std::vector<matrix<S>> grad;
  for (matrix<S>* b : blocks_of(U, hs)) {
    matrix<S> g(b->rows(), b->cols());
    for (index i = 0; i < b->rows(); ++i)
      for (index j = 0; j < b->cols(); ++j)
        g(i, j) = central_difference((*b)(i, j), h, [&] { return loss<S>(U, hs, G, params); });
    grad.push_back(g);
  }
  return grad;
}

// dL/d(every entry) by forward-mode autodiff: each entry in turn carries slope 1 through a
// forward pass in dual<R>; the eps part of L is the partial derivative.
template <class R>
std::vector<matrix<R>> autodiff_gradient(const matrix<R>& U, const heads<R>& hs, const matrix<R>& G,
                                         const attention_params& params) {
  using D = dual<R>;
  matrix<D> Ud = cast<D>(U);
  heads<D> hd = cast<D>(hs);
  const matrix<D> Gd = cast<D>(G);
  std::vector<matrix<R>> grad;
  for (matrix<D>* b : blocks_of(Ud, hd)) {
    matrix<R> g(b->rows(), b->cols());
    for (index i = 0; i < b->rows(); ++i)
      for (index j = 0; j < b->cols(); ++j) {
        const D x = (*b)(i, j);
        (*b)(i, j) = make_dual(static_cast<R>(x), R(1));
        g(i, j) = derivative(loss<D>(Ud, hd, Gd, params));
        (*b)(i, j) = x;
      }
    grad.push_back(g);
  }
  return grad;
}

// The largest block-wise relative error max|a - b| / max|b| (test::max_rel_error) over all blocks.
template <class A, class B>
double max_block_error(const std::vector<matrix<A>>& a, const std::vector<matrix<B>>& b) {
  double e = 0;
  for (std::size_t k = 0; k < a.size(); ++k) e = std::max(e, max_rel_error(a[k], b[k]));
  return e;
}

// A stack of heads whose shapes differ: head 0 (d_k = 2, d_v = 3), head 1 (d_k = 3, d_v = 1).
template <class S>
heads<S> mixed_heads(index p, std::uint64_t seed, double scale = 0.5) {
  heads<S> hs = random_heads<S>(1, p, 2, 3, seed, scale);
  hs.push_back(random_heads<S>(1, p, 3, 1, seed + 100, scale)[0]);
  return hs;
}

// The gradient-tier problems: N = 5, p = 3, H = 2 heads of different shapes (mixed_heads), both
// masks, the default temperature and tau = 0.7; the loss weights G are random.
struct gradient_case {
  mask m;
  double tau;
  std::uint64_t seed;
};
inline const std::vector<gradient_case> gradient_cases{
    {mask::strict, 0.0, 201}, {mask::inclusive, 0.0, 202}, {mask::strict, 0.7, 203}, {mask::inclusive, 0.7, 204}};

template <class S>
struct gradient_problem {
  matrix<S> U;   // (5, 3)
  heads<S> hs;   // 2 heads
  matrix<S> G;   // (5, 3) = dMu
  attention_params params;
};

template <class S>
gradient_problem<S> make_problem(const gradient_case& c) {
  return {random_matrix<S>(5, 3, c.seed), mixed_heads<S>(3, c.seed + 1000, 0.7),
          random_matrix<S>(5, 3, c.seed + 2000), attention_params{c.m, c.tau}};
}

inline std::string describe(const gradient_case& c) {
  return std::string(to_string(c.m)) + " tau " + (c.tau == 0 ? std::string("sqrt(d_k)") : std::to_string(c.tau));
}

}  // namespace suptok::test
