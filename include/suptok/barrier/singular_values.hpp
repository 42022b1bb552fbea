// suptok/barrier/singular_values.hpp: the extreme singular values of a block J (n, n) from its
// factorisation, without an SVD: sigma_min by inverse iteration, sigma_max by power iteration.
//
// Both iterate on x (unit vector, fixed deterministic start):
//   sigma_min:  z = J^{-1} x,  estimate 1 / |z|,  x <- J^{-T} z / |J^{-T} z|    (power iteration on (J^T J)^{-1})
//   sigma_max:  z = J x,       estimate |z|,      x <- J^T z / |J^T z|          (power iteration on J^T J)
// In exact arithmetic every sigma_min estimate is >= sigma_min (|J^{-1} x| <= 1 / sigma_min) and
// every sigma_max estimate <= sigma_max, and both are monotone. The relative error after k steps
// is about (sigma_1 / sigma_2)^(2k) for sigma_min (the two smallest singular values) and
// (sigma_{n-1} / sigma_n)^(2k) for sigma_max; when the two are close the estimate lies between
// them, so the error is at most their gap. The changes between estimates shrink geometrically,
// by a rate r per step; the iteration stops when the remaining error they predict,
// change r / (1 - r), is below `tolerance` (relative; at least 8 eps of S), or after
// `max_iterations` steps. A singular J (an LU pivot of 0)
// has sigma_min = 0: the caller passes that case without solving. Norms are taken after scaling by
// the largest entry (scaled_norm), so blocks with entries near either end of the scalar's range
// (1e200 or 1e-200 in double, whose squares leave it) give finite estimates; a sigma_min estimate is
// infinite only when |J^{-1} x| itself underflows to 0, and NaN when an operator returned NaN.
// The operators are callables vector<S> -> vector<S>, so the same code serves an explicit J (its LU)
// and the projected form (Woodbury through the LU of I - K_t, likelihood/projected.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "../core/scalar_traits.hpp"
#include "../core/view.hpp"

namespace suptok {

struct iteration_params {
  int max_iterations = 100;
  double tolerance = 1e-10;  // predicted relative error that ends the iteration
};

namespace detail {

// A fixed start vector with no special direction (sin(1), sin(2), ...), normalised.
template <class S>
vector<S> start_vector(index n) {
  using std::sin;
  vector<S> x(n);
  for (index i = 0; i < n; ++i) x(i) = sin(S(i + 1));
  return x / x.norm();
}

// |v| without overflow or underflow of the squares: v / max |v_i| has entries of magnitude <= 1.
template <class S>
S scaled_norm(const vector<S>& v) {
  if (v.size() == 0) return S(0);
  const S largest = v.cwiseAbs().maxCoeff();
  if (!(largest > S(0)) || !is_finite(largest)) return largest;  // 0, or nothing finite to scale by
  return largest * (v / largest).norm();
}

// Power iteration on B = A^T A given x -> A x and x -> A^T x: returns the final |A x| for unit x.
template <class S, class Apply, class ApplyT>
S power_iteration(index n, Apply&& apply, ApplyT&& apply_t, const iteration_params& ip) {
  using std::abs;
  const S tolerance = S(std::max(ip.tolerance, 8 * to_double(std::numeric_limits<S>::epsilon())));
  vector<S> x = start_vector<S>(n);
  S estimate = S(0), change = S(0);
  for (int it = 0; it < ip.max_iterations; ++it) {
    const vector<S> z = apply(x);
    const S previous = estimate, previous_change = change;
    estimate = scaled_norm<S>(z);
    if (!(estimate > S(0))) return estimate;
    const vector<S> w = apply_t(z / estimate);
    const S w_norm = scaled_norm<S>(w);
    if (!(w_norm > S(0))) return estimate;
    x = w / w_norm;
    if (it < 2) continue;
    change = abs(estimate - previous);
    if (!(change > S(4) * std::numeric_limits<S>::epsilon() * estimate)) break;  // at rounding level
    // The changes shrink by a rate r per step once the iteration settles, so the error left is
    // about change r / (1 - r) (geometric tail); stop when that is below the tolerance.
    const S rate = previous_change > S(0) ? change / previous_change : S(1);
    if (it >= 3 && rate < S(1) && change * rate / (S(1) - rate) <= tolerance * estimate) break;
  }
  return estimate;
}

}  // namespace detail

// sigma_min(J) from x -> J^{-1} x and x -> J^{-T} x (n = size of J). An upper bound in exact arithmetic.
template <class S, class Solve, class SolveT>
S smallest_singular_value(index n, Solve&& solve, SolveT&& solve_t, const iteration_params& ip = {}) {
  const S inverse_norm = detail::power_iteration<S>(n, solve, solve_t, ip);  // ~ |J^{-1}| = 1 / sigma_min
  if (inverse_norm == S(0)) return S(std::numeric_limits<double>::infinity());
  return S(1) / inverse_norm;  // NaN stays NaN
}

// sigma_max(J) from x -> J x and x -> J^T x. A lower bound in exact arithmetic.
template <class S, class Apply, class ApplyT>
S largest_singular_value(index n, Apply&& apply, ApplyT&& apply_t, const iteration_params& ip = {}) {
  return detail::power_iteration<S>(n, apply, apply_t, ip);
}

}  // namespace suptok
