// Shared configurations of the barrier tests: small sequences whose Jacobian blocks lie inside
// the barrier (exact policy) or straddle it (clamp and extended policies: some det J_t >= the
// threshold, some in (0, threshold), some < 0). The determinants are asserted by the tests that
// rely on them, so a change in the generators cannot silently empty the continuation region.
#pragma once

#include "test_support.hpp"

#include <limits>
#include <string>
#include <vector>

#include <Eigen/LU>

namespace suptok::test {

struct barrier_case {
  std::string name;
  mask m;
  double scale;  // standard deviation of the weights
  int seed;
  barrier_params bp;
  bool straddles;  // true: the case has counted tokens with det < 0 and 0 < det < threshold
};

// N = 6, p = 2, H = 2, d_k = d_v = 2 (determinants measured in double, listed for reference).
inline std::vector<barrier_case> gradient_cases() {
  return {
      // strict, dets of t = 2..5: 2.23 3.01 1.27 5.59
      {"strict feasible exact", mask::strict, 1.0, 2, {extension::exact, 1e-8, 1e-2}, false},
      // inclusive, dets: 0.66 0.80 0.87 0.91 0.92 0.94
      {"inclusive feasible exact", mask::inclusive, 0.5, 1, {extension::exact, 1e-8, 1e-2}, false},
      // strict, dets of t = 2..5: -0.33 0.44 0.15 0.74
      {"strict straddling extended", mask::strict, 0.5, 3, {extension::extended, 1e-8, 0.3}, true},
      {"strict straddling clamp", mask::strict, 0.5, 3, {extension::clamp, 0.3, 1e-2}, true},
      // inclusive, dets: -0.28 0.11 0.56 0.68 0.65 0.82
      {"inclusive straddling extended", mask::inclusive, 0.5, 2, {extension::extended, 1e-8, 0.3}, true},
      {"inclusive straddling clamp", mask::inclusive, 0.5, 2, {extension::clamp, 0.3, 1e-2}, true},
  };
}

template <class S>
matrix<S> case_U(const barrier_case& c) {
  return random_matrix<S>(6, 2, 100 + static_cast<std::uint64_t>(c.seed));
}
template <class S>
heads<S> case_heads(const barrier_case& c) {
  return random_heads<S>(2, 2, 2, 2, 10 * static_cast<std::uint64_t>(c.seed), c.scale);
}
inline attention_params case_params(const barrier_case& c) { return {c.m, 0}; }

// Central differences of f() with respect to every entry of U and of every head (modified in
// place and restored), in the layout of attention_gradients.
template <class S, class F>
attention_gradients<S> fd_gradients(matrix<S>& U, heads<S>& hs, const S& h, F&& f) {
  attention_gradients<S> g{matrix<S>(U.rows(), U.cols()), hs};
  const auto fill = [&](matrix<S>& target, matrix<S>& x) {
    for (index i = 0; i < x.rows(); ++i)
      for (index j = 0; j < x.cols(); ++j) target(i, j) = central_difference(x(i, j), h, f);
  };
  fill(g.dU, U);
  for (std::size_t k = 0; k < hs.size(); ++k) {
    fill(g.dW[k].W_Q, hs[k].W_Q);
    fill(g.dW[k].W_K, hs[k].W_K);
    fill(g.dW[k].W_V, hs[k].W_V);
    fill(g.dW[k].W_O, hs[k].W_O);
  }
  return g;
}

// The largest max_rel_error over dU and every weight gradient.
template <class A, class B>
double max_rel_error(const attention_gradients<A>& a, const attention_gradients<B>& b) {
  double e = max_rel_error(a.dU, b.dU);
  for (std::size_t k = 0; k < a.dW.size(); ++k) {
    e = std::max(e, max_rel_error(a.dW[k].W_Q, b.dW[k].W_Q));
    e = std::max(e, max_rel_error(a.dW[k].W_K, b.dW[k].W_K));
    e = std::max(e, max_rel_error(a.dW[k].W_V, b.dW[k].W_V));
    e = std::max(e, max_rel_error(a.dW[k].W_O, b.dW[k].W_O));
  }
  return e;
}

// Determinants of the counted blocks, for the coverage assertions.
template <class S>
std::vector<double> counted_dets(const matrix<S>& U, const heads<S>& hs, const attention_params& ap) {
  const auto J = jacobian_blocks<S>(U, hs, ap);
  std::vector<double> d;
  for (std::size_t t = static_cast<std::size_t>(first_nontrivial(ap.causal_mask)); t < J.size(); ++t)
    d.push_back(to_double(J[t].determinant()));
  return d;
}

// f(det J) of one block from an independent determinant (Eigen's full-pivot LU in float50, not
// the library's log_det) and the policy written out.
inline float50 independent_barrier(const matrix<float50>& J, const barrier_params& bp) {
  const float50 z = Eigen::FullPivLU<matrix<float50>>(J).determinant();
  const float50 th(bp.policy == extension::clamp ? bp.eps : bp.z0);
  if (bp.policy == extension::exact) return z > 0 ? float50(-log(z)) : std::numeric_limits<float50>::infinity();
  if (z >= th) return -log(z);
  if (bp.policy == extension::clamp) return -log(th);
  return -log(th) - (z - th) / th;
}

// The penalty from independent_barrier: the mean of f(det J_t) over the counted tokens
// (t >= 2 under the strict mask, every t under the inclusive one: docs/math.md section 3).
inline float50 independent_penalty(const matrix<float50>& U, const heads<float50>& hs, const barrier_params& bp,
                                   const attention_params& ap) {
  const auto J = jacobian_blocks<float50>(U, hs, ap);
  const std::size_t first = ap.causal_mask == mask::strict ? 2 : 0;
  float50 sum = 0;
  for (std::size_t t = first; t < J.size(); ++t) sum += independent_barrier(J[t], bp);
  return sum / float50(J.size() - first);
}

}  // namespace suptok::test
