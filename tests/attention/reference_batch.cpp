// Reference tier, second part: batch functions, permutation invariance of mu_t in the past
// embeddings (no position signal), and stability at large logits. Every scalar type.
#include "attention_checks.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <numeric>

using namespace suptok;

// The batch functions run the per-sequence code on each sequence, so outputs and input gradients
// are exactly equal to single calls. The batch weight gradient is the sum of the single ones;
// only the association of that sum may differ: 4 eps on its scale.
TEMPLATE_TEST_CASE("attention batch functions equal per-sequence calls", "[attention][reference][batch]",
                   SUPTOK_REAL_SCALARS) {
  using S = TestType;
  const std::vector<matrix<S>> Us{test::random_matrix<S>(3, 3, 51), test::random_matrix<S>(5, 3, 52),
                                  test::random_matrix<S>(1, 3, 53)};
  const std::vector<matrix<S>> dMus{test::random_matrix<S>(3, 3, 61), test::random_matrix<S>(5, 3, 62),
                                    test::random_matrix<S>(1, 3, 63)};
  const heads<S> hs = test::mixed_heads<S>(3, 71);
  for (mask m : {mask::strict, mask::inclusive}) {
    const attention_params params{m, 0.0};
    const auto outs = attention_forward_batch<S>(Us, hs, params, true);
    REQUIRE(outs.size() == 3);
    const auto grads = attention_backward_batch<S>(dMus, Us, hs, params);
    REQUIRE(grads.dU.size() == 3);
    heads<S> dW_sum = detail::zero_like(hs);
    for (std::size_t b = 0; b < 3; ++b) {
      const auto one = attention_forward<S>(Us[b], hs, params, true);
      CHECK(outs[b].mu == one.mu);
      REQUIRE(outs[b].weights.size() == 2);
      CHECK(outs[b].weights[1] == one.weights[1]);
      CHECK(outs[b].lse[0] == one.lse[0]);
      const auto g = attention_backward<S>(dMus[b], Us[b], hs, params);
      CHECK(grads.dU[b] == g.dU);
      for (std::size_t h = 0; h < 2; ++h) {
        dW_sum[h].W_Q += g.dW[h].W_Q;
        dW_sum[h].W_K += g.dW[h].W_K;
        dW_sum[h].W_V += g.dW[h].W_V;
        dW_sum[h].W_O += g.dW[h].W_O;
      }
    }
    const double tol = 4 * test::epsilon_of<S>();
    for (std::size_t h = 0; h < 2; ++h) {
      CHECK(test::max_rel_error(grads.dW[h].W_Q, dW_sum[h].W_Q) <= tol);
      CHECK(test::max_rel_error(grads.dW[h].W_K, dW_sum[h].W_K) <= tol);
      CHECK(test::max_rel_error(grads.dW[h].W_V, dW_sum[h].W_V) <= tol);
      CHECK(test::max_rel_error(grads.dW[h].W_O, dW_sum[h].W_O) <= tol);
    }
  }
}

// The cpu forms may write their output over an input: a layer applied in place
// (out.mu passed as U) and a gradient buffer reused as dMu give exactly the results of calls
// with separate buffers.
TEST_CASE("attention cpu forms allow the output to alias an input", "[attention][reference]") {
  using S = double;
  const heads<S> hs = test::mixed_heads<S>(3, 81);
  const matrix<S> U = test::random_matrix<S>(6, 3, 82);
  const matrix<S> dMu = test::random_matrix<S>(6, 3, 83);
  for (mask m : {mask::strict, mask::inclusive}) {
    const attention_params params{m, 0.0};
    const auto expected = attention_forward<S>(U, hs, params);
    attention_output<S> out;
    out.mu = U;
    attention_forward<S>(cpu{}, out, out.mu, hs, params);
    CHECK(out.mu == expected.mu);

    const auto expected_grads = attention_backward<S>(dMu, U, hs, params);
    attention_gradients<S> grads;
    grads.dU = dMu;
    attention_backward<S>(cpu{}, grads, grads.dU, U, hs, params);
    CHECK(grads.dU == expected_grads.dU);
  }
}

// Without a position signal mu_t depends on the past only as a multiset: permuting the tokens at
// positions < t leaves mu_t unchanged up to the reordering of the softmax sums (16 eps relative,
// N = 7). The same permutation does change earlier outputs (mu_1 under the strict mask is
// V u_0), which shows the check is not vacuous.
TEMPLATE_TEST_CASE("attention mu_t is invariant to permutations of the past", "[attention][reference]",
                   SUPTOK_REAL_SCALARS) {
  using S = TestType;
  const suptok::index N = 7, t = N - 1;
  const matrix<S> U = test::random_matrix<S>(N, 3, 81);
  const heads<S> hs = test::mixed_heads<S>(3, 91);
  std::vector<suptok::index> perm(static_cast<std::size_t>(t));
  std::iota(perm.begin(), perm.end(), suptok::index(0));
  std::reverse(perm.begin(), perm.end());
  std::rotate(perm.begin(), perm.begin() + 2, perm.end());  // 3 2 1 0 5 4: no fixed point
  matrix<S> P = U;
  for (suptok::index s = 0; s < t; ++s) P.row(s) = U.row(perm[static_cast<std::size_t>(s)]);
  for (mask m : {mask::strict, mask::inclusive}) {
    const auto ref = attention_forward<S>(U, hs, {m, 0.0});
    const auto out = attention_forward<S>(P, hs, {m, 0.0});
    const matrix<S> ref_t = ref.mu.row(t), out_t = out.mu.row(t);
    CHECK(test::max_rel_error(out_t, ref_t) <= 16 * test::epsilon_of<S>());
    const matrix<S> ref_1 = ref.mu.row(1), out_1 = out.mu.row(1);
    CHECK(test::max_rel_error(out_1, ref_1) > 1e-3);
  }
}

// Large logits. W_Q = W_K = 100 I, V = I, tau = 1: l_ts = 1e4 u_t . u_s, so the logits are of
// order +-1e4 (exp overflows or underflows in every built-in type). Each row's largest logit beats
// the next one by at least 2500, so the softmax equals the hard max to far below eps:
// mu_t = u_argmax exactly up to rounding (4 eps), lse_t = the largest logit (4 eps relative).
// The strict row t = 1 has a single logit of -1e4 (a naive softmax gives 0/0 there), and the
// second sequence has a row whose logits are all negative.
TEMPLATE_TEST_CASE("attention is stable at large logits", "[attention][reference][stability]",
                   SUPTOK_REAL_SCALARS) {
  using S = TestType;
  using std::abs;
  const std::vector<matrix<double>> sequences{
      (matrix<double>(5, 2) << 1, 0, -1, 0.5, 0.5, 1, -1, -1, 0, -1.5).finished(),
      (matrix<double>(4, 1) << 1, 2, -1, -3).finished()};
  for (const matrix<double>& Ud : sequences) {
    const suptok::index N = Ud.rows(), p = Ud.cols();
    const matrix<S> U = test::cast<S>(Ud);
    const matrix<S> I = matrix<S>::Identity(p, p);
    const heads<S> hs{head<S>{S(100) * I, S(100) * I, I, I}};
    for (mask m : {mask::strict, mask::inclusive}) {
      const attention_params params{m, 1.0};
      const auto out = attention_forward<S>(U, hs, params, true);
      for (suptok::index t = 0; t < N; ++t) {
        const suptok::index end = past_end(t, m);
        if (end == 0) {
          CHECK(out.mu.row(t).isZero(0));
          CHECK(out.lse[0](t) == -std::numeric_limits<S>::infinity());
          continue;
        }
        std::vector<double> logits;
        for (suptok::index s = 0; s < end; ++s) logits.push_back(1e4 * Ud.row(t).dot(Ud.row(s)));
        const suptok::index best = std::max_element(logits.begin(), logits.end()) - logits.begin();
        std::vector<double> sorted = logits;
        std::sort(sorted.rbegin(), sorted.rend());
        if (sorted.size() > 1) REQUIRE(sorted[0] - sorted[1] >= 2500);  // the case is what it claims
        for (suptok::index i = 0; i < p; ++i) {
          REQUIRE(is_finite(out.mu(t, i)));
          CHECK(to_double(abs(out.mu(t, i) - U(best, i))) <= 4 * test::epsilon_of<S>());
        }
        REQUIRE(is_finite(out.lse[0](t)));
        const double top = logits[static_cast<std::size_t>(best)];
        CHECK(to_double(abs(out.lse[0](t) - S(top))) <= 4 * test::epsilon_of<S>() * std::abs(top));
        CHECK(out.weights[0](t, best) == S(1));
      }
      // The backward is finite, and with saturated (0/1) weights the logits get no gradient:
      // dl_ts = a_ts (da_ts - da_t,best) = 0, so dW_Q and dW_K vanish (to eps: the non-best weights
      // are exp(-2500) or smaller, exactly 0 in float and double).
      const auto g = attention_backward<S>(matrix<S>::Ones(N, p), U, hs, params);
      for (suptok::index i = 0; i < N; ++i)
        for (suptok::index j = 0; j < p; ++j) CHECK(is_finite(g.dU(i, j)));
      CHECK(to_double(g.dW[0].W_Q.cwiseAbs().maxCoeff()) <= test::epsilon_of<S>());
      CHECK(to_double(g.dW[0].W_K.cwiseAbs().maxCoeff()) <= test::epsilon_of<S>());
      CHECK(is_finite(g.dW[0].W_V.sum()));
    }
  }
}
