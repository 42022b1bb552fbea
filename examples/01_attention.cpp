// 01_attention: causal self-attention (docs/math.md section 1) with both masks, and its backward.
//
// Prints the attention weights of a small example under the strict mask (P(t) = {s < t}) and the
// inclusive mask (P(t) = {s <= t}), then compares the analytic gradient of L = sum G o mu with
// central finite differences computed in long double. Exits non-zero when a check fails.
#include <suptok/attention.hpp>

#include <cmath>
#include <cstdio>
#include <random>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("CHECK FAILED: %s\n", what);
    ++failures;
  }
}

template <class S>
suptok::matrix<S> random_matrix(suptok::index rows, suptok::index cols, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, 0.7);
  suptok::matrix<S> m(rows, cols);
  for (auto& x : m.reshaped()) x = S(normal(gen));
  return m;
}

template <class S>
suptok::heads<S> random_heads(suptok::index p, unsigned seed) {
  // Two heads of different widths: (d_k, d_v) = (2, 3) and (3, 1).
  return {{random_matrix<S>(2, p, seed), random_matrix<S>(2, p, seed + 1), random_matrix<S>(3, p, seed + 2),
           random_matrix<S>(p, 3, seed + 3)},
          {random_matrix<S>(3, p, seed + 4), random_matrix<S>(3, p, seed + 5), random_matrix<S>(1, p, seed + 6),
           random_matrix<S>(p, 1, seed + 7)}};
}

void print_weights(suptok::mask m) {
  using namespace suptok;
  // Four tokens in p = 2, one head with W_Q = W_K = W_V = W_O = I and temperature 1:
  // the logits are the dot products u_t . u_s and mu_t is the weighted mean of the past.
  const matrix<double> U = (matrix<double>(4, 2) << 1, 0, 1, 1, 0, 1, -1, 0.5).finished();
  const matrix<double> I = matrix<double>::Identity(2, 2);
  const heads<double> hs{{I, I, I, I}};
  const attention_output<double> out = attention_forward<double>(U, hs, {m, 1.0}, /*keep_weights=*/true);
  const matrix<double>& a = out.weights[0];  // (N, N)
  std::printf("\n%s mask: weights a_ts (row t, column s), lse_t and mu_t\n", to_string(m));
  std::printf("   t |      s=0      s=1      s=2      s=3 |      lse |   mu_t\n");
  for (suptok::index t = 0; t < 4; ++t) {
    std::printf("  %2ld |", static_cast<long>(t));
    double row_sum = 0;
    for (suptok::index s = 0; s < 4; ++s) {
      std::printf(" %8.5f", a(t, s));
      row_sum += a(t, s);
      if (s >= past_end(t, m)) check(a(t, s) == 0, "weights are 0 outside the past");
    }
    std::printf(" | %8.4f | (%7.4f, %7.4f)\n", out.lse[0](t), out.mu(t, 0), out.mu(t, 1));
    check(past_end(t, m) == 0 ? row_sum == 0 : std::abs(row_sum - 1) < 1e-15, "rows sum to 1 on the past");
  }
  if (m == mask::strict) {
    check(out.mu.row(0).isZero(0) && std::isinf(out.lse[0](0)) && out.lse[0](0) < 0,
          "strict: token 0 has an empty past (mu_0 = 0, lse_0 = -inf)");
    // t = 2 attends to u_0 and u_1 with logits 0 and 1: weights 1/(1+e), e/(1+e).
    check(std::abs(a(2, 1) - std::exp(1.0) / (1 + std::exp(1.0))) < 1e-15, "strict: a_21 = e/(1+e)");
  } else {
    check(a(0, 0) == 1, "inclusive: token 0 attends to itself only");
  }
}

}  // namespace

int main() {
  using namespace suptok;
  print_weights(mask::strict);
  print_weights(mask::inclusive);

  // Backward vs central differences: L = sum_ti G_ti mu_ti with random U (5, 3), G and H = 2 heads.
  // The analytic gradient is computed in double; the finite differences in long double
  // (step 1e-6: truncation ~1e-12, rounding ~1e-13), so the difference measures the double
  // backward's own error, about 1e-12 relative at most.
  const matrix<double> U = random_matrix<double>(5, 3, 1), G = random_matrix<double>(5, 3, 2);
  const heads<double> hs = random_heads<double>(3, 10);
  std::printf("\nbackward vs long double central differences (H = 2, N = 5, p = 3)\n");
  std::printf("  mask       max relative error\n");
  for (mask m : {mask::strict, mask::inclusive}) {
    const attention_params params{m, 0.0};  // temperature sqrt(d_k)
    const attention_gradients<double> g = attention_backward<double>(G, U, hs, params);

    matrix<long double> Ul = U.cast<long double>();
    heads<long double> hl = random_heads<long double>(3, 10);
    const matrix<long double> Gl = G.cast<long double>();
    const auto loss = [&] { return attention_forward<long double>(Ul, hl, params).mu.cwiseProduct(Gl).sum(); };
    double err = 0, scale = 0;
    const auto compare = [&](matrix<long double>& x, const matrix<double>& analytic) {
      for (suptok::index i = 0; i < x.rows(); ++i)
        for (suptok::index j = 0; j < x.cols(); ++j) {
          const long double x0 = x(i, j), h = 1e-6L;
          x(i, j) = x0 + h;
          const long double fp = loss();
          x(i, j) = x0 - h;
          const long double fm = loss();
          x(i, j) = x0;
          const double fd = static_cast<double>((fp - fm) / (2 * h));
          err = std::max(err, std::abs(analytic(i, j) - fd));
          scale = std::max(scale, std::abs(fd));
        }
    };
    compare(Ul, g.dU);
    for (std::size_t h = 0; h < hs.size(); ++h) {
      compare(hl[h].W_Q, g.dW[h].W_Q);
      compare(hl[h].W_K, g.dW[h].W_K);
      compare(hl[h].W_V, g.dW[h].W_V);
      compare(hl[h].W_O, g.dW[h].W_O);
    }
    std::printf("  %-9s  %.2e\n", to_string(m), err / scale);
    check(err / scale < 1e-9, "backward agrees with finite differences to 1e-9");
  }
  std::printf("\n%s\n", failures == 0 ? "all checks passed" : "SOME CHECKS FAILED");
  return failures == 0 ? 0 : 1;
}
