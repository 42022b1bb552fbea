// Helpers of the simd tests: the shape sweep and the error measure
//   err = max_ij |x_ij - r_ij| / ((|r_ij| + scale) eps)
// i.e. a check |x - r| <= atol + |r| k eps with atol = k eps scale passes when err <= k. The
// scale is the magnitude of the terms that were summed into the entries (entries that cancel to
// about zero carry the rounding error of those terms): at least max|r|; for mu the bound
// mu_term_scale; for gradients the largest entry of the whole gradient (dU and every dW).
#pragma once

#include <suptok/simd.hpp>

#include <test_support.hpp>

#include "instances_simd.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace suptok::test {

// Sets the OpenMP thread count for a scope (no effect without OpenMP). The sweeps check the
// numerics on one thread: on a loaded two-core machine every OpenMP barrier of the many small
// cases would wait for a descheduled thread. threads.cpp checks that more threads change nothing.
class omp_threads {
 public:
  explicit omp_threads(int n) {
#ifdef _OPENMP
    previous_ = omp_get_max_threads();
    omp_set_num_threads(n);
#else
    (void)n;
#endif
  }
  ~omp_threads() {
#ifdef _OPENMP
    omp_set_num_threads(previous_);
#endif
  }
  omp_threads(const omp_threads&) = delete;
  omp_threads& operator=(const omp_threads&) = delete;

 private:
  int previous_ = 1;
};

// Sequence lengths 1..300 with every tile edge of simd_tile = 64 and of the register blocks
// (16 floats, 8 doubles).
inline const std::vector<index> sweep_N = {1, 2, 3, 5, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65,
                                           100, 127, 128, 129, 191, 192, 193, 255, 257, 300};
// Whether the sweeps check length N. Under AddressSanitizer (scripts/test.sh --sanitize; GCC
// defines __SANITIZE_ADDRESS__) they stop after a partial third tile, N <= 129 and N = 193: every
// tile and register-block edge the instrumentation should see is still there, while the
// references' O(N^2 p^2) cost of the longer sequences, most of the sanitized suite's run time, is
// not. The loops draw every problem's seed either way, so the lengths checked are the same
// problems as in the full sweep.
inline bool sweep_checks(index N) {
#ifdef __SANITIZE_ADDRESS__
  return N <= 129 || N == 193;
#else
  (void)N;
  return true;
#endif
}
// The barrier sweeps' filter: sweep_checks(N) and, under AddressSanitizer, the widest problems
// (p = 64 with several heads) only up to N = 65, one tile edge. Their per-token products,
// O(N p^3 H) in the simd path, and the references, O(N^2 p^2 H), were three quarters of the
// sanitized barrier sweeps' time; one head at p = 64 and several heads at p <= 17 (where the
// register-block remainders are) keep every length of sweep_checks.
inline bool barrier_sweep_checks(index N, index p, index H) {
#ifdef __SANITIZE_ADDRESS__
  if (p >= 64 && H > 1 && N > 65) return false;
#else
  (void)p, (void)H;
#endif
  return sweep_checks(N);
}
inline const std::vector<index> sweep_p = {1, 3, 8, 17, 64};
inline const std::vector<index> sweep_H = {1, 3};
inline const std::vector<mask> sweep_masks = {mask::strict, mask::inclusive};

// d_k = p and d_v = p + 3: the two differ and d_v is never a multiple of a register block.
inline index sweep_dk(index p) { return p; }
inline index sweep_dv(index p) { return p + 3; }
// Head weights of scale 1/sqrt(p) give logits of order 1 for U of unit scale.
inline double sweep_head_scale(index p) { return 1.0 / std::sqrt(double(p)); }
// The barrier sweeps' heads, of scale 0.5 / sqrt(p), keep sum_h V_h C_t A_h of norm below about 1:
// J_t well conditioned (the continuation region has its own tests).
inline double barrier_head_scale(index p) { return 0.5 / std::sqrt(double(p)); }

template <class M>
double max_abs(const M& r) {
  double scale = 0;
  for (index i = 0; i < r.rows(); ++i)
    for (index j = 0; j < r.cols(); ++j)
      if (!std::isinf(double(r(i, j)))) scale = std::max(scale, std::abs(double(r(i, j))));
  return scale;
}

template <class S>
double max_abs(const heads<S>& hs) {
  double scale = 0;
  for (const head<S>& h : hs) scale = std::max({scale, max_abs(h.W_Q), max_abs(h.W_K), max_abs(h.W_V), max_abs(h.W_O)});
  return scale;
}

// Bound on the terms summed into mu_tj = sum_h sum_c W_O^h_jc O^h_tc, with |O^h_tc| <= max_s |Vv^h_sc|
// (O_t is a convex combination of the rows of Vv = U W_V^T). With p = 1 and d_v = 4, say, mu is
// W_O W_V times a mean of u_s, and W_O W_V can cancel to a small fraction of its terms.
template <class S>
double mu_term_scale(const matrix<S>& U, const heads<S>& hs) {
  Eigen::VectorXd bound = Eigen::VectorXd::Zero(U.cols());
  for (const head<S>& h : hs) {
    const Eigen::MatrixXd Vv = (U * h.W_V.transpose()).template cast<double>();   // (N, d_v)
    const Eigen::VectorXd v_max = Vv.cwiseAbs().colwise().maxCoeff().transpose();  // (d_v)
    bound += h.W_O.template cast<double>().cwiseAbs() * v_max;                     // (p)
  }
  return bound.maxCoeff();
}

template <class A, class B>
double err_eps(const A& x, const B& r, double eps, double scale = 0) {
  scale = std::max(scale, max_abs(r));
  double err = 0;
  for (index i = 0; i < r.rows(); ++i)
    for (index j = 0; j < r.cols(); ++j) {
      const double ri = double(r(i, j)), xi = double(x(i, j));
      if (std::isinf(ri) || std::isinf(xi)) {  // lse of an empty past: both exactly -inf
        if (ri != xi) return std::numeric_limits<double>::infinity();
        continue;
      }
      const double denom = (std::abs(ri) + scale) * eps;
      err = std::max(err, denom > 0 ? std::abs(xi - ri) / denom : (xi == ri ? 0.0 : HUGE_VAL));
    }
  return err;
}

// err_eps over the heads' four weight matrices.
template <class A, class B>
double err_eps_heads(const heads<A>& x, const heads<B>& r, double eps, double scale) {
  double err = 0;
  for (std::size_t h = 0; h < r.size(); ++h)
    err = std::max({err, err_eps(x[h].W_Q, r[h].W_Q, eps, scale), err_eps(x[h].W_K, r[h].W_K, eps, scale),
                    err_eps(x[h].W_V, r[h].W_V, eps, scale), err_eps(x[h].W_O, r[h].W_O, eps, scale)});
  return err;
}

// err_eps of a whole gradient (dU and every dW) with the scale of its largest entry.
template <class A, class B>
double err_eps_gradients(const matrix<A>& dU, const heads<A>& dW, const matrix<B>& dU_ref, const heads<B>& dW_ref,
                         double eps) {
  const double scale = std::max(max_abs(dU_ref), max_abs(dW_ref));
  return std::max(err_eps(dU, dU_ref, eps, scale), err_eps_heads(dW, dW_ref, eps, scale));
}

}  // namespace suptok::test
