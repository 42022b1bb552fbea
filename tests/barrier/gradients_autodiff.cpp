// Tier 2: analytic barrier gradients vs Boost.Math forward-mode autodiff (dual<double>) through the
// whole forward (jacobian_blocks, pivoted-LU log-determinant, policy), along a random direction in
// (U, every W), for every case of test::gradient_cases() (continuation region included).
#include "barrier_checks.hpp"

#include <catch2/catch.hpp>

using namespace suptok;

namespace {

using D = dual<double>;

matrix<D> seeded(const matrix<double>& value, const matrix<double>& slope) {
  matrix<D> m(value.rows(), value.cols());
  for (suptok::index i = 0; i < m.rows(); ++i)
    for (suptok::index j = 0; j < m.cols(); ++j) m(i, j) = make_dual(value(i, j), slope(i, j));
  return m;
}

double dot(const matrix<double>& a, const matrix<double>& b) { return a.cwiseProduct(b).sum(); }

}  // namespace

TEST_CASE("barrier gradients match forward-mode autodiff along a random direction", "[barrier][gradient]") {
  for (const test::barrier_case& c : test::gradient_cases()) {
    const attention_params ap = test::case_params(c);
    const matrix<double> U = test::case_U<double>(c);
    const heads<double> hs = test::case_heads<double>(c);
    const matrix<double> dU = test::random_matrix<double>(U.rows(), U.cols(), 900);
    const heads<double> dW = test::random_heads<double>(2, 2, 2, 2, 910, 1.0);
    heads<D> hd(hs.size());
    for (std::size_t k = 0; k < hs.size(); ++k) {
      hd[k].W_Q = seeded(hs[k].W_Q, dW[k].W_Q);
      hd[k].W_K = seeded(hs[k].W_K, dW[k].W_K);
      hd[k].W_V = seeded(hs[k].W_V, dW[k].W_V);
      hd[k].W_O = seeded(hs[k].W_O, dW[k].W_O);
    }
    const D value = barrier_penalty<D>(seeded(U, dU), hd, c.bp, ap);
    const barrier_gradients<double> g = barrier_penalty_backward<double>(U, hs, c.bp, ap);
    double directional = dot(g.grad.dU, dU);
    for (std::size_t k = 0; k < hs.size(); ++k)
      directional += dot(g.grad.dW[k].W_Q, dW[k].W_Q) + dot(g.grad.dW[k].W_K, dW[k].W_K) +
                     dot(g.grad.dW[k].W_V, dW[k].W_V) + dot(g.grad.dW[k].W_O, dW[k].W_O);
    INFO(c.name << ": autodiff " << derivative(value) << ", analytic " << directional);
    // Both in double on O(1) blocks with kappa <= 30: agreement to ~100 eps of the sum's scale.
    CHECK(std::abs(derivative(value) - directional) < 1e-12 * std::max(1.0, std::abs(directional)));
    CHECK(static_cast<double>(value) == Approx(g.penalty).epsilon(1e-14));
  }
}
