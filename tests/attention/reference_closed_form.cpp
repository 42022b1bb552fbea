// Reference tier: hand-computed cases of docs/math.md section 1 in closed form, for every scalar type.
//
// The hand case: N = 3, p = 2, one head, temperature 1, U = [1 0; 1 1; 0 1],
// W_Q = W_K = I (d_k = 2), W_V = diag(1, 2), W_O = [0 1; 1 0] (so V = W_O W_V = [0 2; 1 0],
// V u = (2 u_y, u_x)). The logits are l_ts = u_t . u_s:
//   l = [1 1 0; 1 2 1; 0 1 1]
// strict:    t = 0: empty past, mu_0 = 0, lse_0 = -inf
//            t = 1: a_10 = 1, mu_1 = V u_0 = (0, 1), lse_1 = 1
//            t = 2: a_20 = 1/(1+e), a_21 = e/(1+e), mu_2 = V (1, e/(1+e)) = (2e/(1+e), 1),
//                   lse_2 = log(1+e)
// inclusive: t = 0: a_00 = 1, mu_0 = V u_0 = (0, 1), lse_0 = 1
//            t = 1: a_10 = 1/(1+e), a_11 = e/(1+e), mu_1 = (2e/(1+e), 1), lse_1 = 1 + log(1+e)
//            t = 2: Z = 1+2e, a_2 = (1, e, e)/Z, ubar_2 = ((1+e)/Z, 2e/Z), mu_2 = (4e/Z, (1+e)/Z),
//                   lse_2 = log(1+2e)
// Every value is a few correctly rounded operations away from the closed form, so the tolerance is
// 8 eps(S) on values of order 1.
#include "attention_checks.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using namespace suptok;

namespace {

template <class S>
matrix<S> mat(suptok::index rows, suptok::index cols, std::initializer_list<double> v) {
  matrix<S> m(rows, cols);
  auto it = v.begin();
  for (suptok::index r = 0; r < rows; ++r)
    for (suptok::index c = 0; c < cols; ++c) m(r, c) = S(*it++);
  return m;
}

template <class S>
struct hand_case {
  matrix<S> U = mat<S>(3, 2, {1, 0, 1, 1, 0, 1});
  heads<S> hs{head<S>{mat<S>(2, 2, {1, 0, 0, 1}), mat<S>(2, 2, {1, 0, 0, 1}), mat<S>(2, 2, {1, 0, 0, 2}),
                      mat<S>(2, 2, {0, 1, 1, 0})}};
};

template <class S>
bool close(const S& a, const S& b, double k) {
  using std::abs;
  return to_double(abs(a - b)) <= k * test::epsilon_of<S>() * std::max(1.0, to_double(abs(b)));
}

}  // namespace

TEMPLATE_TEST_CASE("attention_forward: hand-computed case, strict mask", "[attention][reference]",
                   SUPTOK_REAL_SCALARS) {
  using S = TestType;
  using std::exp;
  using std::log;
  hand_case<S> c;
  const auto out = attention_forward<S>(c.U, c.hs, {mask::strict, 1.0}, true);
  const S e = exp(S(1));

  // mu_0 is exactly zero (empty past) and lse_0 is exactly -inf.
  CHECK(out.mu(0, 0) == S(0));
  CHECK(out.mu(0, 1) == S(0));
  CHECK(out.lse[0](0) == -std::numeric_limits<S>::infinity());
  CHECK(close<S>(out.mu(1, 0), S(0), 8));
  CHECK(close<S>(out.mu(1, 1), S(1), 8));
  CHECK(close<S>(out.mu(2, 0), S(2) * e / (S(1) + e), 8));
  CHECK(close<S>(out.mu(2, 1), S(1), 8));
  CHECK(close<S>(out.lse[0](1), S(1), 8));
  CHECK(close<S>(out.lse[0](2), log(S(1) + e), 8));

  // The head output O = a Vv before W_O, with Vv = U W_V^T = [1 0; 1 2; 0 2]:
  // O_0 = 0, O_1 = Vv_0 = (1, 0), O_2 = (Vv_0 + e Vv_1) / (1 + e) = (1, 2e / (1 + e)).
  REQUIRE(out.head_outputs.size() == 1);
  const matrix<S>& O = out.head_outputs[0];
  REQUIRE(O.rows() == 3);
  REQUIRE(O.cols() == 2);
  CHECK(O.row(0).isZero(0));
  CHECK(close<S>(O(1, 0), S(1), 8));
  CHECK(close<S>(O(1, 1), S(0), 8));
  CHECK(close<S>(O(2, 0), S(1), 8));
  CHECK(close<S>(O(2, 1), S(2) * e / (S(1) + e), 8));

  const matrix<S>& a = out.weights[0];
  REQUIRE(a.rows() == 3);
  REQUIRE(a.cols() == 3);
  CHECK(a.row(0).isZero(0));  // exact zeros
  CHECK(a(1, 0) == S(1));     // a single past token gets weight exactly 1
  CHECK(close<S>(a(2, 0), S(1) / (S(1) + e), 8));
  CHECK(close<S>(a(2, 1), e / (S(1) + e), 8));
  CHECK(a(1, 1) == S(0));
  CHECK(a(1, 2) == S(0));
  CHECK(a(2, 2) == S(0));
}

TEMPLATE_TEST_CASE("attention_forward: hand-computed case, inclusive mask", "[attention][reference]",
                   SUPTOK_REAL_SCALARS) {
  using S = TestType;
  using std::exp;
  using std::log;
  hand_case<S> c;
  const auto out = attention_forward<S>(c.U, c.hs, {mask::inclusive, 1.0}, true);
  const S e = exp(S(1));
  const S Z = S(1) + S(2) * e;

  // Token 0 attends to itself only.
  CHECK(out.weights[0](0, 0) == S(1));
  CHECK(close<S>(out.mu(0, 0), S(0), 8));
  CHECK(close<S>(out.mu(0, 1), S(1), 8));
  CHECK(close<S>(out.lse[0](0), S(1), 8));
  CHECK(close<S>(out.mu(1, 0), S(2) * e / (S(1) + e), 8));
  CHECK(close<S>(out.mu(1, 1), S(1), 8));
  CHECK(close<S>(out.lse[0](1), S(1) + log(S(1) + e), 8));
  CHECK(close<S>(out.mu(2, 0), S(4) * e / Z, 8));
  CHECK(close<S>(out.mu(2, 1), (S(1) + e) / Z, 8));
  CHECK(close<S>(out.lse[0](2), log(Z), 8));

  const matrix<S>& a = out.weights[0];
  CHECK(a(0, 1) == S(0));
  CHECK(a(0, 2) == S(0));
  CHECK(a(1, 2) == S(0));
  CHECK(close<S>(a(1, 0), S(1) / (S(1) + e), 8));
  CHECK(close<S>(a(1, 1), e / (S(1) + e), 8));
  CHECK(close<S>(a(2, 0), S(1) / Z, 8));
  CHECK(close<S>(a(2, 1), e / Z, 8));
  CHECK(close<S>(a(2, 2), e / Z, 8));
}

// The default temperature is sqrt(d_k): duplicating the rows of W_Q and W_K (d_k = 4) doubles
// every dot product, and tau = sqrt(4) = 2 halves it again, so the result equals the hand case
// with temperature 1 (the same closed forms, 8 eps).
TEMPLATE_TEST_CASE("attention_forward: default temperature sqrt(d_k)", "[attention][reference]",
                   SUPTOK_REAL_SCALARS) {
  using S = TestType;
  hand_case<S> c;
  heads<S> wide = c.hs;
  wide[0].W_Q = mat<S>(4, 2, {1, 0, 0, 1, 1, 0, 0, 1});
  wide[0].W_K = wide[0].W_Q;
  CHECK(temperature_of(wide[0], attention_params{}) == S(2));
  CHECK(temperature_of(wide[0], attention_params{mask::strict, 0.5}) == S(0.5));
  for (mask m : {mask::strict, mask::inclusive}) {
    const auto ref = attention_forward<S>(c.U, c.hs, {m, 1.0});
    const auto out = attention_forward<S>(c.U, wide, {m, 0.0});
    CHECK(test::max_rel_error(out.mu, ref.mu) <= 8 * test::epsilon_of<S>());
    // A non-default temperature changes the result (tau = 4 flattens the weights).
    const auto flat = attention_forward<S>(c.U, wide, {m, 4.0});
    CHECK(test::max_rel_error(flat.mu, ref.mu) > 1e-3);
  }
}

// Multi-head output is the sum of single-head outputs (H = 2 with different d_k and d_v); lse of
// each head is that head's own lse. The only difference is one extra rounding per entry in the
// sum: 4 eps on the scale of mu.
TEMPLATE_TEST_CASE("attention_forward: multi-head output is the sum of the heads", "[attention][reference]",
                   SUPTOK_REAL_SCALARS) {
  using S = TestType;
  const matrix<S> U = test::random_matrix<S>(5, 3, 11);
  const heads<S> hs = test::mixed_heads<S>(3, 21);
  for (mask m : {mask::strict, mask::inclusive}) {
    const attention_params params{m, 0.0};
    const auto both = attention_forward<S>(U, hs, params);
    const auto h0 = attention_forward<S>(U, heads<S>{hs[0]}, params);
    const auto h1 = attention_forward<S>(U, heads<S>{hs[1]}, params);
    const matrix<S> sum = h0.mu + h1.mu;
    CHECK(test::max_rel_error(both.mu, sum) <= 4 * test::epsilon_of<S>());
    REQUIRE(both.lse.size() == 2);
    CHECK(both.lse[0] == h0.lse[0]);
    CHECK(both.lse[1] == h1.lse[0]);
    CHECK(both.weights.empty());  // not requested
  }
}

// keep_weights: H matrices (N, N); each row is a probability vector on the past and exactly 0
// outside it; mu = sum_h a_h U W_V^T W_O^T (the weights are the ones that produced mu).
// Row sums are within N eps of 1; mu within 16 eps (a different association of the products).
TEMPLATE_TEST_CASE("attention_forward: kept weights", "[attention][reference]", SUPTOK_REAL_SCALARS) {
  using S = TestType;
  using std::abs;
  const suptok::index N = 6;
  const matrix<S> U = test::random_matrix<S>(N, 3, 12);
  const heads<S> hs = test::mixed_heads<S>(3, 31);
  for (mask m : {mask::strict, mask::inclusive}) {
    const auto out = attention_forward<S>(U, hs, {m, 0.0}, true);
    REQUIRE(out.weights.size() == 2);
    matrix<S> mu = matrix<S>::Zero(N, 3);
    for (std::size_t h = 0; h < 2; ++h) {
      const matrix<S>& a = out.weights[h];
      REQUIRE(a.rows() == N);
      REQUIRE(a.cols() == N);
      for (suptok::index t = 0; t < N; ++t) {
        const suptok::index end = past_end(t, m);
        S row_sum = S(0);
        for (suptok::index s = 0; s < N; ++s) {
          if (s < end) {
            CHECK(a(t, s) > S(0));
            row_sum += a(t, s);
          } else {
            CHECK(a(t, s) == S(0));
          }
        }
        if (end > 0) CHECK(to_double(abs(row_sum - S(1))) <= N * test::epsilon_of<S>());
      }
      mu += a * U * hs[h].W_V.transpose() * hs[h].W_O.transpose();
    }
    CHECK(test::max_rel_error(out.mu, mu) <= 16 * test::epsilon_of<S>());
  }
}

// The tagged form writes into a caller-owned output and gives the same result as the value form
// (the same code path: exactly equal), resizing an output of the wrong shape.
TEMPLATE_TEST_CASE("attention_forward: tagged form into an existing output", "[attention][reference]",
                   SUPTOK_REAL_SCALARS) {
  using S = TestType;
  const matrix<S> U = test::random_matrix<S>(4, 3, 13);
  const heads<S> hs = test::mixed_heads<S>(3, 41);
  attention_output<S> out;
  out.mu = matrix<S>::Ones(7, 7);
  out.weights.resize(5);
  attention_forward<S>(cpu{}, out, U, hs, {mask::inclusive, 0.0}, false);
  const auto ref = attention_forward<S>(U, hs, {mask::inclusive, 0.0});
  CHECK(out.mu == ref.mu);
  CHECK(out.weights.empty());
  REQUIRE(out.lse.size() == 2);
  CHECK(out.lse[1] == ref.lse[1]);
}
