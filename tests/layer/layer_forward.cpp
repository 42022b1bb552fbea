// Layer attention (grouped-query heads, biases, rotary embeddings) in double: the forward against
// an independent naive evaluation of the definitions, the backward against forward-mode autodiff
// (dual<double>) along a random direction, the plain layer against the head-stack path, the two
// determinant forms against each other, and the validation of a layer.
#include "layer_checks.hpp"

#include <catch2/catch.hpp>

using namespace suptok;

namespace {

const std::vector<attention_params> masks{{mask::strict, 0}, {mask::inclusive, 0}};

}  // namespace

TEST_CASE("layer forward matches the naive definition", "[layer][reference]") {
  for (const auto& c : test::layer_cases)
    for (const auto& ap : masks) {
      DYNAMIC_SECTION(c.name << ", " << to_string(ap.causal_mask)) {
        const auto U = test::random_matrix<double>(6, 5, 11);
        const auto l = test::random_layer<double>(5, c, 12);
        const attention_output<double> out = attention_forward<double>(U, l, ap);
        std::vector<matrix<double>> ref_O;
        const matrix<double> ref = test::naive_layer_mu<double>(U, l, ap.causal_mask, &ref_O);
        // Sums of a few products of O(1) terms: a handful of roundings. Bound 8 eps relative to
        // the largest |mu| (the error in eps is compared with 0 at scale 1), measured 1.5; the
        // head outputs O^h relative to the largest |O^h|: bound 8, measured 1.4.
        CHECK(test::within_eps<double>(test::max_rel_error(out.mu, ref), 0.0, 8, 1.0));
        REQUIRE(out.head_outputs.size() == ref_O.size());
        for (std::size_t h = 0; h < ref_O.size(); ++h)
          CHECK(test::within_eps<double>(test::max_rel_error(out.head_outputs[h], ref_O[h]), 0.0, 8, 1.0));
      }
    }
}

TEST_CASE("layer backward matches dual<double> autodiff along a random direction", "[layer][gradient]") {
  using D = dual<double>;
  for (const auto& c : test::layer_cases)
    for (const auto& ap : masks) {
      DYNAMIC_SECTION(c.name << ", " << to_string(ap.causal_mask)) {
        const auto U = test::random_matrix<double>(6, 5, 21);
        auto l = test::random_layer<double>(5, c, 22);
        const auto dMu = test::random_matrix<double>(6, 5, 23);
        const layer_gradients<double> g = attention_backward<double>(dMu, U, l, ap);
        const auto dir = test::random_direction(U, l, 100);
        const double analytic = dir.dot(g.dU, g.dW);
        const matrix<D> mu = attention_forward<D>(dir.U, dir.l, ap).mu;
        double forward_mode = 0, scale = 0;
        for (suptok::index i = 0; i < mu.rows(); ++i)
          for (suptok::index j = 0; j < mu.cols(); ++j) {
            forward_mode += dMu(i, j) * derivative(mu(i, j));
            scale += std::abs(dMu(i, j) * derivative(mu(i, j)));
          }
        // Two evaluations of a sum of ~10^3 terms in different orders. Bound 8 eps of the sum of
        // magnitudes, measured up to 0.49.
        CHECK(test::within_eps(analytic, forward_mode, 8, scale));
      }
    }
}

TEST_CASE("projected_blocks_backward matches dual<double> autodiff along a random direction", "[layer][gradient]") {
  using D = dual<double>;
  for (const auto& c : test::layer_cases)
    for (const auto& ap : masks) {
      DYNAMIC_SECTION(c.name << ", " << to_string(ap.causal_mask)) {
        const suptok::index N = 6, p = 5, n = c.H_q * c.d_v;
        const auto U = test::random_matrix<double>(N, p, 26);
        const auto l = test::random_layer<double>(p, c, 27);
        std::vector<matrix<double>> dK;
        for (suptok::index t = 0; t < N; ++t) dK.push_back(test::random_matrix<double>(n, n, 28 + std::uint64_t(t)));
        const layer_gradients<double> g = projected_blocks_backward<double>(dK, U, l, ap);
        const auto dir = test::random_direction(U, l, 200);
        const std::vector<matrix<D>> K = projected_blocks<D>(dir.U, dir.l, ap);
        double forward_mode = 0, scale = 0;
        for (std::size_t t = 0; t < K.size(); ++t)
          for (suptok::index i = 0; i < n; ++i)
            for (suptok::index j = 0; j < n; ++j) {
              forward_mode += dK[t](i, j) * derivative(K[t](i, j));
              scale += std::abs(dK[t](i, j) * derivative(K[t](i, j)));
            }
        for (const auto& b : g.dW.b_V) CHECK(b.isZero(0));  // b_V and b_O do not enter K_t
        CHECK(g.dW.b_O.isZero(0));
        // The same derivative summed in different orders. Bound 8 eps of the larger of the two
        // sides' sums of |terms|, measured up to 0.63.
        scale = std::max(scale, dir.dot(g.dU, g.dW, true));
        CHECK(test::within_eps(dir.dot(g.dU, g.dW), forward_mode, 8, scale));
      }
    }
}

TEST_CASE("layer barrier gradients match dual<double> autodiff of the penalty, both forms", "[layer][gradient]") {
  using D = dual<double>;
  const barrier_params extended{extension::extended, 1e-8, 1.0};  // z0 = 1: tokens on both branches
  for (const auto& c : test::layer_cases)
    for (const auto& ap : masks)
      for (const barrier_params& bp : {barrier_params{}, extended}) {
        DYNAMIC_SECTION(c.name << ", " << to_string(ap.causal_mask) << ", " << to_string(bp.policy)) {
          const auto U = test::random_matrix<double>(7, 5, 24);
          const auto l = test::random_layer<double>(5, c, 25, 0.25);
          const auto dir = test::random_direction(U, l, 300);
          std::vector<layer_gradients<double>> by_form;
          for (const jacobian_form f : {jacobian_form::general, jacobian_form::projected}) {
            const auto g = barrier_penalty_backward<double>(U, l, bp, ap, f);
            CHECK(g.penalty == barrier_penalty<double>(U, l, bp, ap, f));
            for (const auto& b : g.grad.dW.b_V) CHECK(b.isZero(0));  // b_V and b_O do not enter J_t
            CHECK(g.grad.dW.b_O.isZero(0));
            const D forward_mode = barrier_penalty<D>(dir.U, dir.l, bp, ap, f);
            // The analytic gradient and autodiff through the forward (blocks, LU log-determinant,
            // policy) evaluate the same derivative in different orders. Bound 8 eps of the sum of
            // |gradient| |direction|, measured up to 2.7 over both forms.
            const double scale = dir.dot(g.grad.dU, g.grad.dW, true);
            CHECK(test::within_eps(dir.dot(g.grad.dU, g.grad.dW), derivative(forward_mode), 8, scale));
            by_form.push_back(g.grad);
          }
          // The two forms' gradients, entry by entry, relative to the largest entry of the
          // gradient: bound 64 eps, measured up to 22.7.
          CHECK(test::within_eps(test::max_gradient_difference(by_form[0], by_form[1]), 0.0, 64, 1.0));
        }
      }
}

TEST_CASE("a plain layer agrees with the head-stack path", "[layer][reference]") {
  for (const auto& ap : masks) {
    DYNAMIC_SECTION(to_string(ap.causal_mask)) {
      const auto U = test::random_matrix<double>(7, 4, 31);
      const auto hs = test::random_heads<double>(2, 4, 3, 2, 32);
      const layer<double> l = as_layer(hs);
      // Same operations in the same order for mu: bitwise.
      CHECK(attention_forward<double>(U, l, ap).mu == attention_forward<double>(U, hs, ap).mu);
      // J_t: the layer path forms g_ts from the keys and W_Q, the head-stack path from U A; a few
      // roundings apart. Bound 8 eps relative to max |J_t|, measured 0.96.
      const auto J = jacobian_blocks<double>(U, l, ap);
      const auto J_heads = jacobian_blocks<double>(U, hs, ap);
      for (std::size_t t = 0; t < J.size(); ++t)
        CHECK(test::within_eps<double>(test::max_rel_error(J[t], J_heads[t]), 0.0, 8, 1.0));
    }
  }
}

TEST_CASE("det(I - K_t) of the projected form equals det J_t", "[layer][reference]") {
  for (const auto& c : test::layer_cases)
    for (const auto& ap : masks) {
      DYNAMIC_SECTION(c.name << ", " << to_string(ap.causal_mask)) {
        const auto U = test::random_matrix<double>(6, 5, 41);
        const auto l = test::random_layer<double>(5, c, 42);
        const auto J = jacobian_blocks<double>(U, l, ap);
        const auto K = projected_blocks<double>(U, l, ap);
        for (std::size_t t = 0; t < J.size(); ++t) {
          const matrix<double> I_K = matrix<double>::Identity(K[t].rows(), K[t].cols()) - K[t];
          const signed_log_det<double> a = log_det<double>(J[t]), b = log_det<double>(I_K);
          CHECK(a.sign == b.sign);
          // log|det| of well-conditioned blocks: bound 16 eps absolute on log|det| (i.e. relative
          // on det), measured up to 4.0.
          CHECK(test::within_eps(b.log_abs, a.log_abs, 16, 1.0));
        }
      }
    }
}

TEST_CASE("layer validation names the argument", "[layer][validation]") {
  const auto U = test::random_matrix<double>(4, 5, 51);
  const auto base = test::random_layer<double>(5, test::layer_cases[2], 52);
  const auto fails_with = [&](layer<double> l, const std::string& name) {
    try {
      attention_forward<double>(U, l, {});
    } catch (const suptok::error& e) {
      CHECK(e.argument() == name);
      return;
    }
    FAIL("no error for " << name);
  };
  auto l = base;
  l.W_K.pop_back();  // 4 query heads, 1 key head but 2 value heads
  fails_with(l, "layer.W_V");
  l = base;
  l.W_K.push_back(l.W_K[0]);
  l.W_V.push_back(l.W_V[0]);  // 3 does not divide 4
  fails_with(l, "layer.W_K");
  l = base;
  l.W_O.pop_back();
  fails_with(l, "layer.W_O");
  l = base;
  l.W_Q[3].resize(3, 5);
  fails_with(l, "layer.W_Q[3]");
  l = base;
  l.b_V[1].resize(7);
  fails_with(l, "layer.b_V[1]");
  l = base;
  l.b_Q.pop_back();
  fails_with(l, "layer.b_Q");
  l = base;
  l.b_O(2) = std::numeric_limits<double>::quiet_NaN();
  fails_with(l, "layer.b_O");
  l = base;
  l.rope_theta = -1;
  fails_with(l, "layer.rope_theta");
  l = test::random_layer<double>(5, {"odd", 1, 1, 3, 2, false, 0}, 53);
  l.rope_theta = 10000;
  fails_with(l, "layer.W_K[0]");
}
