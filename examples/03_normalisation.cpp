// 03_normalisation: the barrier as a normalisation condition (docs/math.md section 3).
//
// p = 1, strict mask, one head with W_V = W_O = 1 (V = 1), W_K = 1, W_Q = V*A, temperature 1
// (so A = W_K W_Q / tau = V*A), two past tokens u_1 = 1, u_2 = -1, sigma = 1. For the new token
// u_3 the conditional density N(e(u_3); 0, 1) |J(u_3)| integrates to 1 exactly when J > 0 for
// all u_3, i.e. when V A (u_1 - u_2)^2 / 4 < 1; outside the barrier J changes sign, the map
// u_3 -> e folds and the integral exceeds 1. Checks: integral = 1 to 1e-8 inside, > 1 + 1e-6
// outside, min J = 1 - V A (u_1 - u_2)^2 / 4 (attained at u_3 = 0 here, where C = 1) to 1e-8.
#include <suptok/barrier.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace suptok;
  const double u1 = 1, u2 = -1, sigma = 1;
  matrix<double> past(2, 1);
  past << u1, u2;
  const attention_params ap{mask::strict, 1.0};
  int failures = 0;
  std::printf("p = 1, strict mask, u_1 = %g, u_2 = %g, sigma = %g, V = 1\n\n", u1, u2, sigma);
  std::printf("%6s  %20s  %12s  %12s  %7s  %s\n", "V*A", "V*A*(u1-u2)^2/4", "min_u3 J", "integral", "zeros",
              "check");
  for (const double VA : {0.5, 0.99, 1.01, 2.0, 3.0, 8.0}) {
    heads<double> hs(1);
    hs[0].W_Q = matrix<double>::Constant(1, 1, VA);
    hs[0].W_K = matrix<double>::Constant(1, 1, 1);
    hs[0].W_V = matrix<double>::Constant(1, 1, 1);
    hs[0].W_O = matrix<double>::Constant(1, 1, 1);
    const double c = VA * (u1 - u2) * (u1 - u2) / 4;
    const normalisation_report r = p1_normalisation(past, hs, sigma, ap);
    const bool inside = c < 1;
    // Quadrature pieces are converged to 1e-13 relative; 1e-8 leaves room for the kinks of |J|.
    const bool ok_integral = inside ? std::abs(r.integral - 1) < 1e-8 : r.integral > 1 + 1e-6;
    // Brent's minimiser locates u_3 to sqrt(eps); J is quadratic there, so J_min is good to ~eps.
    const bool ok_min = std::abs(r.min_J - (1 - c)) < 1e-8;
    const bool ok_zeros = inside ? r.zeros.empty() : r.zeros.size() == 2;
    const bool ok = ok_integral && ok_min && ok_zeros;
    failures += !ok;
    std::printf("%6.2f  %20.6f  %12.6f  %12.6f  %7zu  %s\n", VA, c, r.min_J, r.integral, r.zeros.size(),
                ok ? (inside ? "ok (inside: = 1)" : "ok (outside: > 1)") : "FAILED");
  }
  if (failures) {
    std::printf("\n%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("\nall checks passed\n");
  return 0;
}
