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
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/scalar_traits.hpp"
#include "../core/view.hpp"

namespace suptok {

struct iteration_params {
  int max_iterations = 100;
  double tolerance = 1e-10;  // predicted relative error that ends the iteration
};

namespace detail {

// max_iterations > 0 and a finite tolerance > 0; errors name `name`.max_iterations or .tolerance.
inline void validate_iteration(const iteration_params& ip, const std::string& name) {
  require(ip.max_iterations > 0, name + ".max_iterations", "must be positive, got ", ip.max_iterations);
  require(std::isfinite(ip.tolerance) && ip.tolerance > 0, name + ".tolerance", "must be finite and > 0, got ",
          ip.tolerance);
}

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

// Power iteration on A_i^T A_i for m operators A_i (n, n) at once, in lockstep: the rows of X (k, n)
// are the current vectors of the k operators still iterating, listed in `active`, and
// apply(active, X) / apply_t(active, X) return the rows A_i x_i / A_i^T x_i (k, n), so that a caller
// can apply operators that share factors as one matrix product. Each operator stops on its own
// (the rule at the top); returns the final |A_i x| of each for unit x.
template <class S, class Apply, class ApplyT>
std::vector<S> power_iteration_batch(index n, index m, Apply&& apply, ApplyT&& apply_t, const iteration_params& ip) {
  using std::abs;
  const S tolerance = S(std::max(ip.tolerance, 8 * to_double(std::numeric_limits<S>::epsilon())));
  // per operator: the current and previous estimates and changes
  const auto size = static_cast<std::size_t>(m);
  std::vector<S> estimate(size, S(0)), change(size, S(0)), previous(size), previous_change(size);
  std::vector<index> active(size);
  for (index i = 0; i < m; ++i) active[std::size_t(i)] = i;
  matrix<S> X = start_vector<S>(n).transpose().replicate(m, 1);
  // Keeps the rows of X (and of `also`, when given) whose operator is still iterating.
  const auto keep = [&](const std::vector<bool>& going, matrix<S>* also) {
    index k = 0;
    for (index j = 0; j < index(going.size()); ++j) {
      if (!going[std::size_t(j)]) continue;
      if (k != j) {
        X.row(k) = X.row(j);
        if (also) also->row(k) = also->row(j);
      }
      active[std::size_t(k++)] = active[std::size_t(j)];
    }
    active.resize(std::size_t(k));
    X.conservativeResize(k, Eigen::NoChange);
    if (also) also->conservativeResize(k, Eigen::NoChange);
  };
  for (int it = 0; it < ip.max_iterations && !active.empty(); ++it) {
    const index k = index(active.size());
    matrix<S> Z = apply(std::as_const(active), std::as_const(X));  // (k, n)
    std::vector<bool> going(static_cast<std::size_t>(k));
    for (index j = 0; j < k; ++j) {
      const std::size_t i = std::size_t(active[std::size_t(j)]);
      previous[i] = estimate[i];
      previous_change[i] = change[i];
      estimate[i] = scaled_norm<S>(Z.row(j).transpose());
      going[std::size_t(j)] = estimate[i] > S(0);  // 0 or NaN: final
      if (going[std::size_t(j)]) Z.row(j) /= estimate[i];
    }
    keep(going, &Z);
    if (active.empty()) break;
    const matrix<S> Wt = apply_t(std::as_const(active), std::as_const(Z));  // (k', n)
    going.assign(active.size(), true);
    for (index j = 0; j < index(active.size()); ++j) {
      const std::size_t i = std::size_t(active[std::size_t(j)]);
      const S w_norm = scaled_norm<S>(Wt.row(j).transpose());
      if (!(w_norm > S(0))) {
        going[std::size_t(j)] = false;
        continue;
      }
      X.row(j) = Wt.row(j) / w_norm;
      if (it < 2) continue;
      change[i] = abs(estimate[i] - previous[i]);
      if (!(change[i] > S(4) * std::numeric_limits<S>::epsilon() * estimate[i])) {  // at rounding level
        going[std::size_t(j)] = false;
        continue;
      }
      // The changes shrink by a rate r per step once the iteration settles, so the error left is
      // about change r / (1 - r) (geometric tail); stop when that is below the tolerance.
      const S rate = previous_change[i] > S(0) ? change[i] / previous_change[i] : S(1);
      if (it >= 3 && rate < S(1) && change[i] * rate / (S(1) - rate) <= tolerance * estimate[i])
        going[std::size_t(j)] = false;
    }
    keep(going, nullptr);
  }
  return estimate;
}

// The same for one operator given x -> A x and x -> A^T x (vectors of size n).
template <class S, class Apply, class ApplyT>
S power_iteration(index n, Apply&& apply, ApplyT&& apply_t, const iteration_params& ip) {
  const auto rows = [](auto& f) {  // the one row of a batch through f
    return [&f](const std::vector<index>&, const matrix<S>& X) -> matrix<S> {
      return f(vector<S>(X.row(0).transpose())).transpose();
    };
  };
  return power_iteration_batch<S>(n, 1, rows(apply), rows(apply_t), ip)[0];
}

// sigma_min from the iterated |J^{-1} x| ~ |J^{-1}| = 1 / sigma_min: +inf when that underflowed to 0.
template <class S>
S sigma_min_of_inverse_norm(S inverse_norm) {
  if (inverse_norm == S(0)) return S(std::numeric_limits<double>::infinity());
  return S(1) / inverse_norm;  // NaN stays NaN
}

}  // namespace detail

// sigma_min(J) from x -> J^{-1} x and x -> J^{-T} x (n = size of J). An upper bound in exact arithmetic.
template <class S, class Solve, class SolveT>
S smallest_singular_value(index n, Solve&& solve, SolveT&& solve_t, const iteration_params& ip = {}) {
  return detail::sigma_min_of_inverse_norm<S>(detail::power_iteration<S>(n, solve, solve_t, ip));
}

// sigma_max(J) from x -> J x and x -> J^T x. A lower bound in exact arithmetic.
template <class S, class Apply, class ApplyT>
S largest_singular_value(index n, Apply&& apply, ApplyT&& apply_t, const iteration_params& ip = {}) {
  return detail::power_iteration<S>(n, apply, apply_t, ip);
}

}  // namespace suptok
