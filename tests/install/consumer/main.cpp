// A consumer of the installed (or add_subdirectory'd) suptok: the reference path through
// suptok::suptok (b_t = -log det J_t of every token) and the simd path through suptok::simd
// (attention forward against the reference). Exits 1 on a failed check.
#include <suptok/simd.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

int main() {
  using suptok::matrix;
  constexpr suptok::index N = 24, p = 8, d = 4;
  suptok::heads<double> hs(2);  // two heads: W_Q, W_K, W_V (d, p), W_O (p, d); Eigen's Random
  for (suptok::head<double>& h : hs) {
    h.W_Q = 0.5 * matrix<double>::Random(d, p);
    h.W_K = 0.5 * matrix<double>::Random(d, p);
    h.W_V = 0.5 * matrix<double>::Random(d, p);
    h.W_O = 0.5 * matrix<double>::Random(p, d);
  }
  const matrix<double> U = matrix<double>::Random(N, p);  // N tokens, width p
  const suptok::attention_params params{suptok::mask::strict};

  // Reference path: b_t for t = 0..N-1 (0 for the trivial tokens t = 0, 1) and its largest value.
  const std::vector<double> b = suptok::barrier_per_token<double>(U, hs, {}, params);
  const auto worst = std::max_element(b.begin(), b.end());
  std::printf("reference: max_t b_t = %.6f at t = %td\n", *worst, worst - b.begin());

  // simd path: mu (N, p) against the reference, relative to max |mu|.
  suptok::attention_output<double> fast;
  suptok::attention_forward(suptok::simd{}, fast, U, hs, params);
  const matrix<double> ref = suptok::attention_forward<double>(U, hs, params).mu;
  const double err = (fast.mu - ref).cwiseAbs().maxCoeff() / ref.cwiseAbs().maxCoeff();
  std::printf("simd (%s): max |mu_simd - mu_ref| / max |mu_ref| = %.2e\n", xsimd::default_arch::name(), err);

  const bool ok = b.size() == std::size_t(N) && b[0] == 0 && std::isfinite(*worst) && err < 1e-12;
  std::printf("consumer: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
