// simd attention forward against the reference (same precision, and double for float) over the
// shape sweep of simd_checks.hpp, both masks; mu, lse and the head outputs.
#include "simd_checks.hpp"

#include <catch2/catch.hpp>

#include <cstdio>

namespace suptok {  // inside the namespace: `index` would clash with ::index of <strings.h>

namespace {

struct forward_errors {
  double mu = 0, lse = 0, O = 0;   // simd vs reference in the same precision, in eps of S
  double mu_hi = 0, ref_hi = 0;    // simd and reference vs the double reference (float only)
};

template <class S>
void compare_forward(forward_errors& e, index N, index p, index H, mask m, double head_scale, std::uint64_t seed) {
  const double eps = test::epsilon_of<S>();
  const matrix<S> U = test::random_matrix<S>(N, p, seed, 1.0);
  const heads<S> hs = test::random_heads<S>(H, p, test::sweep_dk(p), test::sweep_dv(p), seed + 1, head_scale);
  const attention_params params{m, 0};
  attention_output<S> fast;
  attention_forward(simd{}, fast, U, hs, params);
  const attention_output<S> ref = attention_forward<S>(U, hs, params);
  REQUIRE(fast.weights.empty());
  REQUIRE(fast.lse.size() == std::size_t(H));
  const double mu_scale = test::mu_term_scale(U, hs);
  e.mu = std::max(e.mu, test::err_eps(fast.mu, ref.mu, eps, mu_scale));
  REQUIRE(fast.head_outputs.size() == std::size_t(H));
  for (index h = 0; h < H; ++h) {
    e.lse = std::max(e.lse, test::err_eps(fast.lse[h], ref.lse[h], eps));
    e.O = std::max(e.O, test::err_eps(fast.head_outputs[h], ref.head_outputs[h], eps));
  }
  if constexpr (std::is_same_v<S, float>) {
    const attention_output<double> hi = attention_forward<double>(test::cast<double>(U), test::cast<double>(hs), params);
    e.mu_hi = std::max(e.mu_hi, test::err_eps(fast.mu, hi.mu, eps, mu_scale));
    e.ref_hi = std::max(e.ref_hi, test::err_eps(ref.mu, hi.mu, eps, mu_scale));
  }
}

}  // namespace

// Tolerances, in units of eps of S in the measure of simd_checks.hpp (measured worst cases in
// docs/simd.md): the simd and reference paths round differently (tiled online softmax, other
// summation orders), each with an error of a few eps: measured mu 4.0 / 2.5 eps (float / double),
// lse 3.3 / 7.8 eps, the head outputs O 5.7 / 7.7 eps (on the scale of max |O^h|); against the double reference the float simd path 2.8 eps, the float
// reference 3.6 eps. k = 16 leaves a margin of 2 to 4.
TEMPLATE_TEST_CASE("simd attention forward matches the reference over the shape sweep", "[simd][forward]", float,
                   double) {
  using S = TestType;
  const test::omp_threads one(1);
  forward_errors e;
  std::uint64_t seed = 1000;
  for (mask m : test::sweep_masks)
    for (index H : test::sweep_H)
      for (index p : test::sweep_p)
        for (index N : test::sweep_N)
          if (seed += 10; test::sweep_checks(N)) compare_forward<S>(e, N, p, H, m, test::sweep_head_scale(p), seed);
  std::printf("simd forward <%s>: mu %.2f eps, lse %.2f eps, O %.2f eps; vs double: simd %.2f eps, reference %.2f eps\n",
              sizeof(S) == 4 ? "float" : "double", e.mu, e.lse, e.O, e.mu_hi, e.ref_hi);
  CHECK(e.mu <= 16);
  CHECK(e.lse <= 16);
  CHECK(e.O <= 16);
  if (std::is_same_v<S, float>) {
    CHECK(e.mu_hi <= 16);
    CHECK(e.ref_hi <= 16);
  }
}

// Large logits (standard deviation about 16): the online softmax rescales the running sums many
// times. The weights' relative error grows like |l| eps: measured mu 22 / 28 eps (float / double),
// k = 64; lse 4.1 / 8.1 eps, k = 32; against the double reference the float simd path 25 eps and
// the float reference 20 eps, k = 64. The head outputs, on the scale of max |O^h| (smaller than
// mu's scale of sums of |terms|): measured 190 eps in both precisions, k = 512.
TEMPLATE_TEST_CASE("simd attention forward is stable for large logits", "[simd][forward]", float, double) {
  using S = TestType;
  const test::omp_threads one(1);
  forward_errors e;
  std::uint64_t seed = 5000;
  for (mask m : test::sweep_masks)
    for (index N : {1, 64, 65, 200}) compare_forward<S>(e, N, 17, 3, m, 16 / std::sqrt(17.0), seed += 10);
  std::printf("simd forward, large logits <%s>: mu %.2f eps, lse %.2f eps, O %.2f eps; vs double: simd %.2f, "
              "reference %.2f\n",
              sizeof(S) == 4 ? "float" : "double", e.mu, e.lse, e.O, e.mu_hi, e.ref_hi);
  CHECK(e.mu <= 64);
  CHECK(e.lse <= 32);
  CHECK(e.O <= 512);
  if (std::is_same_v<S, float>) {
    CHECK(e.mu_hi <= 64);
    CHECK(e.ref_hi <= 64);
  }
}

// A massive activation: coordinate 0 of every token is offset by 300 and W_K's column 0 is made
// orthogonal to W_Q's, so that the offset's share of the logits cancels in exact arithmetic while
// the products Q_tc K_sc stay of order 300^2 |W|^2 (what a trained model's attention sink can look
// like). The logits then carry the rounding of those products. Measured in double (an ad hoc run
// against the long double reference): both paths err by 35-75 eps of max|lse|, the scale of the
// sweeps, but by at most 2 eps of cond_t + 1, where cond_t = max_{s in P(t)} sum_c |Q_tc K_sc| / tau
// is the size of the dot products behind lse_t. docs/simd.md states the lse accuracy on that
// scale; here in float against the double reference: measured simd 1.65 eps, reference 1.51 eps, k = 8.
TEST_CASE("simd attention forward: lse accuracy set by the size of the dot products (massive activations)",
          "[simd][forward][hard]") {
  using S = float;
  const test::omp_threads one(1);
  double simd_err = 0, ref_err = 0;
  std::uint64_t seed = 5600;
  for (mask m : test::sweep_masks)
    for (index p : {16, 64}) {
      matrix<S> U = test::random_matrix<S>(200, p, seed += 10);
      U.col(0).array() += S(300);
      heads<S> hs = test::random_heads<S>(1, p, p, p, seed + 1, 0.5 / std::sqrt(double(p)));
      const auto q0 = hs[0].W_Q.col(0);
      auto k0 = hs[0].W_K.col(0);
      k0 -= q0 * (q0.dot(k0) / q0.squaredNorm());
      const attention_params params{m, 0};
      attention_output<S> fast;
      attention_forward(simd{}, fast, U, hs, params);
      const attention_output<S> ref = attention_forward<S>(U, hs, params);
      const matrix<double> Ud = test::cast<double>(U);
      const heads<double> hd = test::cast<double>(hs);
      const attention_output<double> hi = attention_forward<double>(Ud, hd, params);
      const matrix<double> Q = (Ud * hd[0].W_Q.transpose()).cwiseAbs() / std::sqrt(double(p));
      const matrix<double> K = (Ud * hd[0].W_K.transpose()).cwiseAbs();
      for (index t = 0; t < U.rows(); ++t) {
        const index past = past_end(t, m);
        if (past == 0) continue;
        const double cond = (K.topRows(past) * Q.row(t).transpose()).maxCoeff();
        const double unit = test::epsilon_of<S>() * (cond + 1);
        simd_err = std::max(simd_err, std::abs(double(fast.lse[0](t)) - hi.lse[0](t)) / unit);
        ref_err = std::max(ref_err, std::abs(double(ref.lse[0](t)) - hi.lse[0](t)) / unit);
      }
    }
  std::printf("simd forward, massive activations <float>: lse vs double on the dot-product scale: simd %.2f eps, "
              "reference %.2f eps\n",
              simd_err, ref_err);
  CHECK(simd_err <= 8);
  CHECK(ref_err <= 8);
}

TEST_CASE("simd batch forward equals the reference batch for sequences of different lengths", "[simd][forward]") {
  using S = float;
  const index p = 7;
  const heads<S> hs = test::random_heads<S>(3, p, 5, 9, 77, test::sweep_head_scale(p));
  const std::vector<matrix<S>> Us = {test::random_matrix<S>(1, p, 1), test::random_matrix<S>(65, p, 2),
                                     test::random_matrix<S>(130, p, 3)};
  const attention_params params{mask::inclusive, 1.7};
  std::vector<attention_output<S>> fast;
  attention_forward_batch(simd{}, fast, Us, hs, params);
  const std::vector<attention_output<S>> ref = attention_forward_batch<S>(Us, hs, params);
  REQUIRE(fast.size() == Us.size());
  for (std::size_t b = 0; b < Us.size(); ++b) {
    CHECK(test::err_eps(fast[b].mu, ref[b].mu, test::epsilon_of<S>(), test::mu_term_scale(Us[b], hs)) <= 16);
    for (std::size_t h = 0; h < hs.size(); ++h)
      CHECK(test::err_eps(fast[b].lse[h], ref[b].lse[h], test::epsilon_of<S>()) <= 16);
  }
}

TEST_CASE("simd forward: the empty past of the strict mask gives mu = 0 and lse = -inf", "[simd][forward]") {
  const matrix<double> U = test::random_matrix<double>(70, 4, 9);
  const heads<double> hs = test::random_heads<double>(2, 4, 3, 5, 10);
  attention_output<double> out;
  attention_forward(simd{}, out, U, hs, {mask::strict, 0});
  CHECK(out.mu.row(0).isZero(0));
  for (const vector<double>& lse : out.lse) CHECK(std::isinf(lse(0)));
  CHECK(out.mu.allFinite());
}

}  // namespace suptok
