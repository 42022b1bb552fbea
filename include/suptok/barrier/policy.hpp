// suptok/barrier/policy.hpp: the per-token barrier b = f(z), z = det J_t, and its extension
// policies outside the feasible set (docs/math.md section 3).
//
//   exact     f(z) = -log z                          (z > 0),  +inf for z <= 0
//   clamp     f(z) = -log max(z, eps)                          f'(z) = 0 for z < eps
//   extended  f(z) = -log z                          (z >= z0)
//             f(z) = -log z0 - (z - z0) / z0         (z <  z0)  the C^1 linear continuation:
//                                                    finite, convex, f' = -1/z0 pushes back inside
// The policy is always an explicit argument (barrier_params), never a hidden constant.
//
// Numerical caveats: z is never formed where it is not needed. The value is computed from the
// signed log-determinant (sign, log|det|) of likelihood/logdet.hpp: on the -log z branch
// (z >= eps, z >= z0) b = -log|det| directly, exact for dets that under/overflow a double; exp is
// taken only on the linear continuation (z < z0, where z cannot overflow). The branch test
// z >= z0 is log|det| >= log z0 in Scalar precision; at the switch both branches agree to first
// order, so a rounding-level misclassification changes b by O(eps^2).
#pragma once

#include <cmath>
#include <limits>
#include <string>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/scalar_traits.hpp"
#include "../likelihood/logdet.hpp"

namespace suptok {

enum class extension { exact, clamp, extended };

inline const char* to_string(extension e) {
  return e == extension::exact ? "exact" : e == extension::clamp ? "clamp" : "extended";
}

// The barrier policy: which extension, and its threshold (eps for clamp, z0 for extended; the
// other one is ignored but must still be valid).
struct barrier_params {
  extension policy = extension::exact;
  double eps = 1e-8;  // clamp:    b = -log max(det, eps)
  double z0 = 1e-2;   // extended: linear continuation below det = z0
};

namespace detail {

// `name`: the argument's name in messages ("barrier", or "options.barrier" in analyse).
inline void validate_barrier(const barrier_params& barrier, const std::string& name = "barrier") {
  require(
      barrier.policy == extension::exact || barrier.policy == extension::clamp || barrier.policy == extension::extended,
      name + ".policy", "unknown extension policy");
  require(std::isfinite(barrier.eps) && barrier.eps > 0, name + ".eps", "must be finite and > 0, got ", barrier.eps);
  require(std::isfinite(barrier.z0) && barrier.z0 > 0, name + ".z0", "must be finite and > 0, got ", barrier.z0);
}

// The threshold below which the -log z branch is left: 0 (exact), eps (clamp), z0 (extended).
SUPTOK_HD inline double barrier_threshold(const barrier_params& barrier) {
  return barrier.policy == extension::exact ? 0.0 : barrier.policy == extension::clamp ? barrier.eps : barrier.z0;
}

// True when z = sign * exp(log_abs) lies on the -log z branch (z > 0 and z >= threshold).
template <class S>
SUPTOK_HD bool on_log_branch(const signed_log_det<S>& ld, const barrier_params& barrier) {
  using std::log;
  if (ld.sign <= 0) return false;
  return barrier.policy == extension::exact || !(ld.log_abs < log(S(barrier_threshold(barrier))));
}

// b = f(z) on arguments already checked (the per-token form: the policy is validated once per call).
// Shared by the host paths and the CUDA kernels (SUPTOK_HD).
template <class S>
SUPTOK_HD S barrier_from_log_det_unchecked(const signed_log_det<S>& ld, const barrier_params& barrier) {
  using std::log;
  if (on_log_branch(ld, barrier)) return -ld.log_abs;
  switch (barrier.policy) {
    case extension::exact:
      return S(std::numeric_limits<double>::infinity());
    case extension::clamp:
      return -log(S(barrier.eps));
    case extension::extended:
    default: {
      const S z0 = S(barrier.z0);
      return -log(z0) - (ld.value() - z0) / z0;
    }
  }
}

// b_t = f(det J_t) for the J_t the library formed for token t of the sequence `argument`, under a
// validated policy.
template <class S>
S token_barrier(const signed_log_det<S>& ld, const barrier_params& barrier, const std::string& argument, index t) {
  require_finite_log_det(ld, argument, t);
  return barrier_from_log_det_unchecked(ld, barrier);
}

}  // namespace detail

// b = f(z) from the signed log-determinant of J (the form used by the library).
template <class S>
S barrier_from_log_det(const signed_log_det<S>& ld, const barrier_params& barrier) {
  detail::validate_barrier(barrier);
  detail::require(ld.sign >= -1 && ld.sign <= 1 && (ld.sign == 0 || is_finite(ld.log_abs)), "ld",
                  "expected sign in {-1, 0, 1} and a finite log|det| (sign ", ld.sign, ", log|det| ",
                  to_double(ld.log_abs), ")");
  return detail::barrier_from_log_det_unchecked(ld, barrier);
}

// b = f(z) for a given determinant z (scalar form, for users who hold z; same branches).
template <class S>
S barrier_value(const S& z, const barrier_params& barrier) {
  using std::abs;
  using std::log;
  detail::require(is_finite(z), "z", "must be finite, got ", to_double(z));
  const signed_log_det<S> ld{z > S(0) ? 1 : (z < S(0) ? -1 : 0),
                             z == S(0) ? S(-std::numeric_limits<double>::infinity()) : log(abs(z))};
  return barrier_from_log_det(ld, barrier);
}

// f'(z). Exact: -1/z, +inf is not differentiable, so z <= 0 throws (argument "z").
// Clamp: -1/z for z >= eps, 0 below. Extended: -1/z for z >= z0, -1/z0 below.
template <class S>
S barrier_slope(const S& z, const barrier_params& barrier) {
  detail::validate_barrier(barrier);
  detail::require(is_finite(z), "z", "must be finite, got ", to_double(z));
  detail::require(barrier.policy != extension::exact || z > S(0), "z",
                  "the exact barrier has no derivative at det <= 0, got ", to_double(z));
  if (!(z < S(detail::barrier_threshold(barrier)))) return S(-1) / z;
  return barrier.policy == extension::clamp ? S(0) : S(-1) / S(barrier.z0);
}

}  // namespace suptok
