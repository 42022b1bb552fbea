// The host reference the CUDA barrier test compares with: the library's reference path in double
// (likelihood/jacobian.hpp's J_t, logdet.hpp's pivoted LU, barrier/penalty.hpp's b_t and its
// gradients), compiled
// by the host compiler in barrier_reference.cpp so that nvcc never sees Eigen's LU.
#pragma once

#include <suptok/attention/mask.hpp>
#include <suptok/barrier/policy.hpp>
#include <suptok/barrier/singular_values.hpp>

#include <vector>

namespace suptok::test {

// Dense row-major inputs: U (B, N, p), W_Q and W_K (H, d_k, p), W_V (H, d_v, p), W_O (H, p, d_v).
struct barrier_problem {
  index B = 1, N = 1, p = 1, H = 1, d_k = 1, d_v = 1;
  std::vector<double> U, W_Q, W_K, W_V, W_O;
};

// Per token of every sequence (B N entries): b_t, log|det J_t|, the sign of det J_t and
// condition = max(1, |J_t - I|_2 / sigma_min(J_t)), the factor by which a relative rounding of the
// term J_t - I is amplified in log|det J_t| (d log|det J| = tr(J^{-1} dJ) <= p |dJ|_2 / sigma_min).
// sigma_min and sigma_max: J_t's extreme singular values; spread = |J_t - I|_2.
struct token_values {
  std::vector<double> b, log_abs, condition, sigma_min, sigma_max, spread;
  std::vector<int> sign;
};

token_values reference_barrier(const barrier_problem& problem, mask m, double temperature,
                               const barrier_params& barrier);

// Per token of every sequence: sigma_min and sigma_max of J_t by the CPU's iterations
// (barrier/singular_values.hpp: inverse and power iteration on the general form's J_t and its
// pivoted LU, in double) with `iteration`'s rule; sigma_min 0 where det J_t = 0.
struct iterated_values {
  std::vector<double> sigma_min, sigma_max;
};

iterated_values reference_iterations(const barrier_problem& problem, mask m, double temperature,
                                     const iteration_params& iteration);

// Per token of every sequence: max(1, |K_t|_2 / sigma_min(I - K_t)) for the projected form's
// K_t (n, n), n = H d_v (docs/math.md section 2.3; likelihood/projected.hpp's projected_blocks):
// the condition of log|det(I - K_t)| under a relative rounding of K_t, as `condition` above.
std::vector<double> projected_conditions(const barrier_problem& problem, mask m, double temperature);

// The gradients of the batch's mean penalty (mean of b_t over the tokens t >= first_nontrivial(m)
// of every sequence) with respect to U and the heads, laid out as the problem's inputs. Throws
// suptok::error where the exact policy meets det J_t <= 0.
struct gradient_values {
  std::vector<double> U, W_Q, W_K, W_V, W_O;
};

gradient_values reference_gradients(const barrier_problem& problem, mask m, double temperature,
                                    const barrier_params& barrier);

}  // namespace suptok::test
