// Helpers of the simd barrier tests: seeded problems and the simd-vs-reference comparisons of the
// per-token barrier b_t and of the penalty's gradients, in the error measure of simd_checks.hpp
// (|x - r| <= k eps (|r| + max |r|) passes when err <= k).
#pragma once

#include "simd_checks.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include <Eigen/SVD>

namespace suptok::test {

// A barrier problem: U (N, p) of unit scale plus `offset`, H heads (d_k = p, d_v = p + 3).
template <class S>
struct barrier_problem {
  matrix<S> U;
  heads<S> hs;
};

template <class S>
barrier_problem<S> make_barrier_problem(index N, index p, index H, double head_scale, std::uint64_t seed,
                                        double offset = 0) {
  barrier_problem<S> b{random_matrix<S>(N, p, seed, 1.0), random_heads<S>(H, p, sweep_dk(p), sweep_dv(p), seed + 1,
                                                                           head_scale)};
  b.U.array() += S(offset);
  return b;
}

// Rescales every W_O so that max_t ||I - J_t||_2 (the reference's, in double) is `size`: J_t is
// then neither trivially I nor singular, whatever the scale of U and of the other weights.
template <class S>
void set_jacobian_size(barrier_problem<S>& pb, double size, const attention_params& ap) {
  double dev = 0;
  for (const matrix<double>& J : jacobian_blocks<double>(cast<double>(pb.U), cast<double>(pb.hs), ap)) {
    const matrix<double> D = matrix<double>::Identity(J.rows(), J.cols()) - J;
    dev = std::max(dev, Eigen::JacobiSVD<Eigen::MatrixXd>(D).singularValues()(0));
  }
  for (head<S>& h : pb.hs) h.W_O *= S(size / dev);
}

template <class S>
Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, 1>> as_column(const std::vector<S>& v) {
  return {v.data(), index(v.size())};
}

// The simd kernels themselves at any size: the public functions send small problems to the
// reference path (detail::simd_barrier_prefers_reference), which these tests must not compare with
// itself. b_t, and the penalty with its gradients, of one sequence.
template <class S>
std::vector<S> simd_kernel_values(const barrier_problem<S>& pb, const barrier_params& bp, const attention_params& ap) {
  suptok::detail::simd_barrier_pass<S> ps;
  suptok::detail::simd_barrier_forward_sequence<S>(ps, pb.U, pb.hs, bp, ap, false, "U");
  return ps.b;
}

template <class S>
barrier_gradients<S> simd_kernel_gradients(const barrier_problem<S>& pb, const barrier_params& bp,
                                           const attention_params& ap) {
  const index n = suptok::detail::counted_tokens(pb.U.rows(), ap.causal_mask);
  barrier_gradients<S> r{S(0), {matrix<S>::Zero(pb.U.rows(), pb.U.cols()), suptok::detail::zero_like(pb.hs)}};
  if (n == 0) return r;
  suptok::detail::simd_barrier_pass<S> ps;
  S sum = S(0);
  suptok::detail::simd_barrier_backward_sequence<S>(sum, r.grad.dU, r.grad.dW, ps, pb.U, pb.hs, S(1) / S(n), bp, ap,
                                                    "U");
  r.penalty = sum / S(n);
  return r;
}

// Largest errors seen (in eps of the simd scalar).
struct barrier_errors {
  double b = 0, penalty = 0, grad = 0;  // simd vs reference, same precision
  double b_hi = 0, grad_hi = 0;         // simd vs the higher-precision reference (b: double for float,
                                        // long double for double; gradients: float only, vs double)
  double ref_b_hi = 0, ref_g_hi = 0;    // the same-precision reference vs the higher-precision one
};

// Per-token values b_t and the penalty: the simd kernels vs reference, both vs the higher-precision
// reference.
// The absolute floor is p eps (scale p in err_eps): b_t = -log det J_t of a J_t with entries of
// order 1, and a rounding dJ of order eps moves log det by tr(J^{-1} dJ), about p eps.
template <class S>
void compare_barrier_values(barrier_errors& e, const barrier_problem<S>& pb, const barrier_params& bp,
                            const attention_params& ap) {
  const double eps = epsilon_of<S>();
  const std::vector<S> fast = simd_kernel_values<S>(pb, bp, ap);
  const std::vector<S> ref = barrier_per_token<S>(pb.U, pb.hs, bp, ap);
  const double p = double(pb.U.cols());
  e.b = std::max(e.b, err_eps(as_column(fast), as_column(ref), eps, p));
  const index n = suptok::detail::counted_tokens(pb.U.rows(), ap.causal_mask);
  const S pf = n == 0 ? S(0) : suptok::detail::counted_sum<S>(fast, ap.causal_mask) / S(n);
  const S pr = n == 0 ? S(0) : suptok::detail::counted_sum<S>(ref, ap.causal_mask) / S(n);
  e.penalty = std::max(e.penalty, err_eps(Eigen::Matrix<S, 1, 1>(pf), Eigen::Matrix<S, 1, 1>(pr), eps, p));
  using hi_t = std::conditional_t<std::is_same_v<S, float>, double, long double>;
  const std::vector<hi_t> hi = barrier_per_token<hi_t>(cast<hi_t>(pb.U), cast<hi_t>(pb.hs), bp, ap);
  e.b_hi = std::max(e.b_hi, err_eps(as_column(fast), as_column(hi), eps, p));
  e.ref_b_hi = std::max(e.ref_b_hi, err_eps(as_column(ref), as_column(hi), eps, p));
}

// The penalty's gradients dU and every dW (err_eps_gradients: scale of the largest entry of the
// whole gradient): simd vs reference (and the double reference for float).
template <class S>
void compare_barrier_gradients(barrier_errors& e, const barrier_problem<S>& pb, const barrier_params& bp,
                               const attention_params& ap) {
  const double eps = epsilon_of<S>();
  const barrier_gradients<S> fast = simd_kernel_gradients<S>(pb, bp, ap);
  const barrier_gradients<S> ref = barrier_penalty_backward<S>(pb.U, pb.hs, bp, ap);
  e.penalty = std::max(e.penalty, err_eps(Eigen::Matrix<S, 1, 1>(fast.penalty), Eigen::Matrix<S, 1, 1>(ref.penalty),
                                          eps, double(pb.U.cols())));
  e.grad = std::max(e.grad, err_eps_gradients(fast.grad.dU, fast.grad.dW, ref.grad.dU, ref.grad.dW, eps));
  if constexpr (std::is_same_v<S, float>) {
    const barrier_gradients<double> hi =
        barrier_penalty_backward<double>(cast<double>(pb.U), cast<double>(pb.hs), bp, ap);
    e.grad_hi = std::max(e.grad_hi, err_eps_gradients(fast.grad.dU, fast.grad.dW, hi.grad.dU, hi.grad.dW, eps));
    e.ref_g_hi = std::max(e.ref_g_hi, err_eps_gradients(ref.grad.dU, ref.grad.dW, hi.grad.dU, hi.grad.dW, eps));
  }
}

}  // namespace suptok::test
