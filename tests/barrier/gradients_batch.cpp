// Batch and layer-stack penalties: pooled means and their gradients (double, central differences).
#include "barrier_checks.hpp"

#include <catch2/catch.hpp>

using namespace suptok;

namespace {

// Central differences in double: h = 1e-5 gives truncation ~h^2 |f'''| / 6 ~ 1e-10 x O(10) and
// rounding ~eps |f| / h ~ 1e-11, so 1e-7 relative is a safe bound for the analytic gradients.
constexpr double fd_tolerance = 1e-7;

}  // namespace

TEST_CASE("batch penalty: pooled mean over all non-trivial tokens, gradients", "[barrier][batch]") {
  const barrier_params bp{extension::extended, 1e-8, 0.3};
  const attention_params ap{mask::strict, 0};
  std::vector<matrix<double>> Us{test::random_matrix<double>(4, 2, 103), test::random_matrix<double>(6, 2, 104)};
  heads<double> hs = test::random_heads<double>(2, 2, 2, 2, 30, 0.5);
  // Pooled: (sum of the 2 + 4 counted b_t) / 6, which differs from the mean of the two means.
  double sum = 0, mean_of_means = 0;
  for (const auto& U : Us) {
    const std::vector<double> b = barrier_per_token<double>(U, hs, bp, ap);
    double s = 0;
    for (std::size_t t = 2; t < b.size(); ++t) s += b[t];
    sum += s;
    mean_of_means += s / double(b.size() - 2) / 2;
  }
  const double pooled = barrier_penalty_batch<double>(Us, hs, bp, ap);
  CHECK(test::within_eps(pooled, sum / 6, 4));  // a few roundings of O(1) sums: bound 4 eps, measured 0
  CHECK(std::abs(pooled - mean_of_means) > 1e-3);             // the two definitions do differ here
  const auto g = barrier_penalty_batch_backward<double>(Us, hs, bp, ap);
  CHECK(test::within_eps(g.penalty, pooled, 4));  // bound 4 eps, measured 0
  REQUIRE(g.grad.dU.size() == 2);
  const auto f = [&] { return barrier_penalty_batch<double>(Us, hs, bp, ap); };
  for (std::size_t b = 0; b < Us.size(); ++b) {
    matrix<double> fd(Us[b].rows(), 2);
    for (suptok::index i = 0; i < fd.rows(); ++i)
      for (suptok::index j = 0; j < 2; ++j) fd(i, j) = test::central_difference(Us[b](i, j), 1e-5, f);
    CHECK(test::max_rel_error(g.grad.dU[b], fd) < fd_tolerance);
  }
  matrix<double> dummy = Us[0];  // fd_gradients also perturbs a U; only its dW part is used here
  const auto fdw = test::fd_gradients<double>(dummy, hs, 1e-5, f);
  for (std::size_t k = 0; k < hs.size(); ++k) {
    CHECK(test::max_rel_error(g.grad.dW[k].W_Q, fdw.dW[k].W_Q) < fd_tolerance);
    CHECK(test::max_rel_error(g.grad.dW[k].W_K, fdw.dW[k].W_K) < fd_tolerance);
    CHECK(test::max_rel_error(g.grad.dW[k].W_V, fdw.dW[k].W_V) < fd_tolerance);
    CHECK(test::max_rel_error(g.grad.dW[k].W_O, fdw.dW[k].W_O) < fd_tolerance);
  }
}

TEST_CASE("layer penalty: pooled mean over layers and tokens, per-layer gradients", "[barrier][layers]") {
  const barrier_params bp{extension::clamp, 0.3, 1e-2};
  const attention_params ap{mask::inclusive, 0};
  matrix<double> U0 = test::random_matrix<double>(5, 2, 102), U1 = test::random_matrix<double>(3, 3, 7);
  heads<double> h0 = test::random_heads<double>(2, 2, 2, 2, 20, 0.5), h1 = test::random_heads<double>(1, 3, 2, 3, 5, 0.8);
  const std::vector<barrier_layer<double>> layers{{U0, h0}, {U1, h1}};
  double sum = 0;
  for (const auto& layer : layers)
    for (double b : barrier_per_token<double>(layer.U, layer.heads, bp, ap)) sum += b;  // inclusive: all 5 + 3 count
  const double value = barrier_penalty_layers<double>(layers, bp, ap);
  CHECK(test::within_eps(value, sum / 8, 4));  // bound 4 eps, measured 0.84
  const auto g = barrier_penalty_layers_backward<double>(layers, bp, ap);
  CHECK(test::within_eps(g.penalty, value, 4));  // bound 4 eps, measured 0
  REQUIRE(g.grad.size() == 2);
  const auto f = [&] { return barrier_penalty_layers<double>(layers, bp, ap); };
  CHECK(test::max_rel_error(g.grad[0], test::fd_gradients<double>(U0, h0, 1e-5, f)) < fd_tolerance);
  CHECK(test::max_rel_error(g.grad[1], test::fd_gradients<double>(U1, h1, 1e-5, f)) < fd_tolerance);
}

TEST_CASE("penalty of sequences without a non-trivial token is 0 with zero gradients", "[barrier][penalty]") {
  const barrier_params bp{extension::extended, 1e-8, 0.3};
  const matrix<double> U = test::random_matrix<double>(2, 2, 1);
  const heads<double> hs = test::random_heads<double>(1, 2, 2, 2, 3, 2.0);
  CHECK(barrier_penalty<double>(U, hs, bp, {mask::strict, 0}) == 0);
  const auto g = barrier_penalty_backward<double>(U, hs, bp, {mask::strict, 0});
  CHECK(g.penalty == 0);
  CHECK(g.grad.dU.norm() == 0);
  CHECK(g.grad.dW[0].W_Q.norm() == 0);
  // ... while under the inclusive mask both tokens count.
  CHECK(barrier_penalty<double>(U, hs, bp, {mask::inclusive, 0}) != 0);
}

TEST_CASE("layer validation errors name the layer", "[barrier][validation]") {
  const barrier_params bp{extension::extended, 1e-8, 0.3};
  const matrix<double> U = test::random_matrix<double>(4, 2, 1);
  const heads<double> good = test::random_heads<double>(1, 2, 2, 2, 3), bad = test::random_heads<double>(1, 3, 2, 2, 3);
  try {
    barrier_penalty_layers<double>({{U, good}, {U, bad}}, bp);
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.argument() == "layers[1].heads[0].W_Q");
  }
  CHECK_THROWS_AS(barrier_penalty_layers<double>({}, bp), error);
  // The attention parameters are shared by the layers: named once, as the argument `attention`.
  try {
    barrier_penalty_layers<double>({{U, good}}, bp, {mask::strict, -1.0});
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.argument() == "attention.temperature");
  }
}
