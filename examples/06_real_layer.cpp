// 06_real_layer: the barrier geometry of a GPT-2-small-shaped attention layer (p = 768, H = 12,
// d_k = d_v = 64, biases on Q, K, V and O, inclusive mask, tau = 8) on a structured sequence
// (docs/layers.md, docs/math.md sections 2.3 and 3).
//
// Weights are seeded normals near the scale of GPT-2's initialisation (standard deviation 0.02):
// W_Q, W_K, W_V of standard deviation 0.05, W_O 0.01, biases 0.02, so that the moment term of
// J_t is of order one and some tokens come close to the barrier. The sequence (N = 32) is layer-normalised embeddings drawn from a vocabulary of 12 random vectors, repeating
// a motif of period 7 with a few one-off tokens, and one coordinate of magnitude 20 in every token
// (a "massive activation", as trained GPT-2 layers have). Prints the per-token table of
// analyse() (head and tail), the support tokens (the 6 smallest signed margins), the totals, and
// the time of each form on the reference path and of the fast path (suptok::simd, when built:
// the same analysis, checked against the reference's).
//
// Self-checking: analyse() picks the projected form at this width; J_t depends only on the
// tokens up to t, so the general (p, p) form, run on the first 4 tokens, must give the same sign,
// log|det J_t| (to 1e-9 absolute) as the projected form on the whole sequence, and the estimated
// signed margins must agree with the exact (SVD) ones to 1e-4 relative (measured 7.8e-6: the two
// smallest singular values of these blocks are close, so the inverse iteration converges slowly).
// The fast path's analysis (projected form, double and float) must agree with the reference's:
// in double b_t within 1e-12 absolute and the signed margins within 1e-6 relative (measured 1.4e-14
// and 2.9e-15: both run the same iteration on the same operator, factored differently) with the
// same support tokens; in float b_t within 1e-4 (measured 8.2e-6) and six support tokens.
#include <suptok/barrier.hpp>
#if SUPTOK_EXAMPLE_SIMD
#include <suptok/simd.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

namespace {

using suptok::matrix;

matrix<double> normal_matrix(suptok::index rows, suptok::index cols, std::mt19937_64& gen, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  matrix<double> m(rows, cols);
  for (suptok::index r = 0; r < rows; ++r)
    for (suptok::index c = 0; c < cols; ++c) m(r, c) = normal(gen);
  return m;
}

suptok::layer<double> gpt2_shaped_layer(std::mt19937_64& gen) {
  const suptok::index p = 768, H = 12, d = 64;
  suptok::layer<double> l;
  for (suptok::index h = 0; h < H; ++h) {
    l.W_Q.push_back(normal_matrix(d, p, gen, 0.05));
    l.W_K.push_back(normal_matrix(d, p, gen, 0.05));
    l.W_V.push_back(normal_matrix(d, p, gen, 0.05));
    l.W_O.push_back(normal_matrix(p, d, gen, 0.01));
    l.b_Q.push_back(normal_matrix(d, 1, gen, 0.02));
    l.b_K.push_back(normal_matrix(d, 1, gen, 0.02));
    l.b_V.push_back(normal_matrix(d, 1, gen, 0.02));
  }
  l.b_O = normal_matrix(p, 1, gen, 0.02);
  return l;
}

// N layer-normalised tokens: a motif of period 7 over a vocabulary of 12 vectors, one-off tokens
// at a few positions, and coordinate 447 set to 20 in every token.
matrix<double> structured_sequence(suptok::index N, std::mt19937_64& gen) {
  const suptok::index p = 768;
  const matrix<double> vocab = normal_matrix(12, p, gen, 1.0);
  const int motif[7] = {0, 1, 2, 3, 1, 4, 5};
  matrix<double> U(N, p);
  for (suptok::index t = 0; t < N; ++t) {
    const bool one_off = t == 11 || t == 20 || t == 27;
    U.row(t) = vocab.row(one_off ? 6 + t % 6 : motif[t % 7]);
    const double mean = U.row(t).mean();
    U.row(t).array() -= mean;
    U.row(t) /= std::sqrt(U.row(t).squaredNorm() / double(p));
    U(t, 447) = 20.0;
  }
  return U;
}

int failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("CHECK FAILED: %s\n", what);
    ++failures;
  }
}

template <class To>
suptok::layer<To> cast_layer(const suptok::layer<double>& l) {
  suptok::layer<To> r;
  for (auto [to, from] : {std::pair{&r.W_Q, &l.W_Q}, {&r.W_K, &l.W_K}, {&r.W_V, &l.W_V}, {&r.W_O, &l.W_O}})
    for (const matrix<double>& m : *from) to->push_back(m.cast<To>());
  for (auto [to, from] : {std::pair{&r.b_Q, &l.b_Q}, {&r.b_K, &l.b_K}, {&r.b_V, &l.b_V}})
    for (const suptok::vector<double>& v : *from) to->push_back(v.cast<To>());
  r.b_O = l.b_O.cast<To>();
  r.rope_theta = l.rope_theta;
  return r;
}

template <class F>
double seconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void print_row(const suptok::token_analysis<double>& r) {
  std::printf("%5ld %5d %12.5f %10.5f %12.5f %10.5f %9.3f %s\n", long(r.position), r.sign, r.log_abs_det, r.b,
              r.signed_margin, r.sigma_min, r.kappa, r.support ? "support" : "");
}

}  // namespace

int main() {
  std::mt19937_64 gen(2602);
  const suptok::layer<double> l = gpt2_shaped_layer(gen);
  const matrix<double> U = structured_sequence(32, gen);

  suptok::analysis_options o;
  o.attention = {suptok::mask::inclusive, 0};  // tau = sqrt(64) = 8
  o.support = suptok::support_rule::smallest(6);
  suptok::analysis<double> full;
  const double t_projected = seconds([&] { full = suptok::analyse<double>(U, l, o); });
  std::printf("GPT-2-shaped layer: p = 768, H = 12, d = 64, biases, inclusive mask; N = %ld tokens\n", long(U.rows()));
  std::printf("form chosen: %s\n\n", suptok::to_string(full.form));
  std::printf("%5s %5s %12s %10s %12s %10s %9s\n", "t", "sign", "log|det J|", "b_t", "signed marg", "sigma_min",
              "kappa");
  for (std::size_t t = 0; t < full.tokens.size(); ++t)
    if (t < 8 || t + 8 >= full.tokens.size()) print_row(full.tokens[t]);
    else if (t == 8) std::printf("  ...\n");
  std::printf("\nsupport tokens (6 smallest signed margins):");
  for (const auto& r : full.tokens)
    if (r.support) std::printf(" %ld", long(r.position));
  std::printf("\npenalty %.6f, support %ld, infeasible %ld\n", full.penalty, long(full.support_count),
              long(full.infeasible_count));

  // The general form on a prefix, with exact margins, against the projected form.
  const suptok::index prefix = 4;
  suptok::analysis_options general = o;
  general.form = suptok::jacobian_form::general;
  general.margins = suptok::margin_method::exact;
  general.support = suptok::support_rule::smallest(0);
  suptok::analysis<double> check_rows;
  const double t_general = seconds([&] { check_rows = suptok::analyse<double>(U.topRows(prefix), l, general); });
  double logdet_diff = 0, margin_diff = 0;
  for (suptok::index t = 0; t < prefix; ++t) {
    const auto &a = full.tokens[std::size_t(t)], &e = check_rows.tokens[std::size_t(t)];
    check(a.sign == e.sign, "same sign of det J_t in both forms");
    logdet_diff = std::max(logdet_diff, std::abs(a.log_abs_det - e.log_abs_det));
    margin_diff = std::max(margin_diff, std::abs(a.signed_margin - e.signed_margin) / std::abs(e.signed_margin));
  }
  std::printf("\nfirst %ld tokens, projected (estimated margins) vs general (exact SVD): log|det J_t| %.1e absolute, "
              "signed margin %.1e relative\n", long(prefix), logdet_diff, margin_diff);
  check(logdet_diff <= 1e-9, "log|det J_t| agrees between the forms (1e-9)");
  check(margin_diff <= 1e-4, "estimated signed margin agrees with the exact SVD of the general form (1e-4)");
  check(full.form == suptok::jacobian_form::projected, "the projected form is chosen at this width");
  check(full.support_count == 6, "six support tokens");
#if SUPTOK_EXAMPLE_SIMD
  // The fast path: the same analysis in the projected form, double and float.
  suptok::analysis<double> fast;
  suptok::analysis<float> fast_float;
  const suptok::layer<float> l_float = cast_layer<float>(l);
  const matrix<float> U_float = U.cast<float>();
  const double t_fast = seconds([&] { fast = suptok::analyse(suptok::simd{}, U, l, o); });
  const double t_float = seconds([&] { fast_float = suptok::analyse(suptok::simd{}, U_float, l_float, o); });
  double b_diff = 0, fast_margin_diff = 0, float_diff = 0;
  bool same_support = true;
  for (std::size_t t = 0; t < full.tokens.size(); ++t) {
    const auto &a = fast.tokens[t], &r = full.tokens[t];
    b_diff = std::max(b_diff, std::abs(a.b - r.b));
    fast_margin_diff = std::max(fast_margin_diff, std::abs(a.signed_margin - r.signed_margin) / std::abs(r.signed_margin));
    float_diff = std::max(float_diff, std::abs(double(fast_float.tokens[t].b) - r.b));
    same_support = same_support && a.support == r.support;
  }
  std::printf("fast path (suptok::simd) against the reference: b_t %.1e absolute, signed margin %.1e relative "
              "(double); b_t %.1e absolute (float)\n", b_diff, fast_margin_diff, float_diff);
  check(b_diff <= 1e-12, "simd b_t agrees with the reference in double (1e-12)");
  check(fast_margin_diff <= 1e-6, "simd signed margins agree with the reference's estimates in double (1e-6)");
  check(same_support, "simd picks the same support tokens");
  check(float_diff <= 1e-4, "simd b_t in float agrees with the reference (1e-4)");
  check(fast_float.support_count == 6, "six support tokens in float");
  std::printf("time, fast path (analysis): %.3f s in double, %.3f s in float for %ld tokens\n", t_fast, t_float,
              long(U.rows()));
#else
  std::printf("fast path: not built (suptok::simd needs xsimd)\n");
#endif
  std::printf("time, reference path: projected form %.2f s for %ld tokens (%.1f ms per token);\n", t_projected,
              long(U.rows()), 1e3 * t_projected / double(U.rows()));
  std::printf("general form with exact SVD margins %.2f s for the first %ld tokens (%.0f ms per token)\n", t_general,
              long(prefix), 1e3 * t_general / double(prefix));
  std::printf("%s\n", failures == 0 ? "06_real_layer: all checks passed" : "06_real_layer: CHECKS FAILED");
  return failures == 0 ? 0 : 1;
}
