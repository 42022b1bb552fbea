// 02_jacobian_identity: the closed-form Jacobian blocks J_t = d e_t / d u_t (docs/math.md 2.1, 2.1b,
// 2.2) against forward-mode autodiff (dual<double> through the generic attention forward) and
// central finite differences (double), for the strict and inclusive masks with one and two heads.
// Prints the largest error of each method over all blocks and exits non-zero if one is too large.
#include <suptok/suptok.hpp>
#include <suptok/support/autodiff.hpp>

#include <cmath>
#include <cstdio>
#include <random>

using namespace suptok;
using D = dual<double>;
using idx = suptok::index;  // (plain "index" clashes with POSIX index() from <strings.h>)

namespace {

matrix<double> random_matrix(idx rows, idx cols, std::mt19937_64& gen, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  matrix<double> m(rows, cols);
  for (idx r = 0; r < rows; ++r)
    for (idx c = 0; c < cols; ++c) m(r, c) = normal(gen);
  return m;
}

template <class To>
heads<To> cast_heads(const heads<double>& hs) {
  heads<To> r(hs.size());
  for (std::size_t h = 0; h < hs.size(); ++h)
    r[h] = {hs[h].W_Q.cast<To>(), hs[h].W_K.cast<To>(), hs[h].W_V.cast<To>(), hs[h].W_O.cast<To>()};
  return r;
}

struct errors {
  double autodiff = 0, finite_difference = 0;
};

// Max |J_t - reference| over t and entries, for the two references.
errors compare(const matrix<double>& U, const heads<double>& hs, const attention_params& params) {
  const idx N = U.rows(), p = U.cols();
  const auto J = jacobian_blocks<double>(U, hs, params);
  const heads<D> hd = cast_heads<D>(hs);
  errors e;
  for (idx t = 0; t < N; ++t)
    for (idx j = 0; j < p; ++j) {
      // autodiff: seed u_tj, read d e_t / d u_tj
      matrix<D> Ud = U.cast<D>();
      Ud(t, j) = make_dual(U(t, j), 1.0);
      const matrix<D> Ed = residuals<D>(Ud, hd, params);
      // central differences, h = 1e-5 ~ eps^(1/3): error ~ 1e-10
      const double h = 1e-5;
      matrix<double> Up = U, Um = U;
      Up(t, j) += h;
      Um(t, j) -= h;
      const matrix<double> fd = (residuals<double>(Up, hs, params) - residuals<double>(Um, hs, params)) / (2 * h);
      for (idx i = 0; i < p; ++i) {
        const double closed = J[static_cast<std::size_t>(t)](i, j);
        e.autodiff = std::max(e.autodiff, std::abs(closed - derivative(Ed(t, i))));
        e.finite_difference = std::max(e.finite_difference, std::abs(closed - fd(t, i)));
      }
    }
  return e;
}

}  // namespace

int main() {
  std::mt19937_64 gen(2024);
  const idx N = 12, p = 4;
  const matrix<double> U = random_matrix(N, p, gen, 1.0);
  // Thresholds: autodiff differs from the closed form only by rounding (O(N p) operations of
  // O(1) values): 1e-12. Central differences with h = 1e-5: truncation h^2 ~ 1e-10 plus rounding
  // eps / h ~ 1e-11, times O(1) derivatives: 1e-7.
  const double tol_autodiff = 1e-12, tol_fd = 1e-7;
  std::printf("Jacobian blocks J_t (N = %ld, p = %ld): max |J_closed - J_method| over all t\n\n", (long)N, (long)p);
  std::printf("%-10s %3s %16s %16s %8s\n", "mask", "H", "autodiff", "central diff", "check");
  bool ok = true;
  for (const mask m : {mask::strict, mask::inclusive})
    for (const idx H : {1, 2}) {
      heads<double> hs(static_cast<std::size_t>(H));
      for (auto& w : hs) w = {random_matrix(3, p, gen, 0.6), random_matrix(3, p, gen, 0.6),
                              random_matrix(2, p, gen, 0.6), random_matrix(p, 2, gen, 0.6)};
      const errors e = compare(U, hs, {m, 0});
      const bool pass = e.autodiff < tol_autodiff && e.finite_difference < tol_fd;
      ok = ok && pass;
      std::printf("%-10s %3ld %16.3e %16.3e %8s\n", to_string(m), (long)H, e.autodiff, e.finite_difference,
                  pass ? "ok" : "FAILED");
    }
  // The strict-mask identities J_0 = J_1 = I (docs/math.md 2.1).
  heads<double> hs(2);
  for (auto& w : hs) w = {random_matrix(3, p, gen, 0.6), random_matrix(3, p, gen, 0.6),
                          random_matrix(2, p, gen, 0.6), random_matrix(p, 2, gen, 0.6)};
  const auto J = jacobian_blocks<double>(U, hs, {mask::strict, 0});
  const double id_err = std::max((J[0] - matrix<double>::Identity(p, p)).cwiseAbs().maxCoeff(),
                                 (J[1] - matrix<double>::Identity(p, p)).cwiseAbs().maxCoeff());
  const bool id_ok = id_err == 0.0;
  ok = ok && id_ok;
  std::printf("\nstrict mask, J_0 = J_1 = I: max |J - I| = %.1e  %s\n", id_err, id_ok ? "ok" : "FAILED");
  std::printf("thresholds: autodiff %.0e, central differences %.0e\n", tol_autodiff, tol_fd);
  std::printf("%s\n", ok ? "all checks passed" : "SOME CHECKS FAILED");
  return ok ? 0 : 1;
}
