// Tier 2: analytic barrier gradients vs Boost.Math forward-mode autodiff (dual<double>) through the
// whole forward (jacobian_blocks, pivoted-LU log-determinant, policy), along a random direction in
// (U, every W), for every case of test::gradient_cases() (continuation region included), at the
// default temperature sqrt(d_k) and at two others (the temperature scales every logit).
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
  for (const double tau : {0.0, 0.7, 2.5})
  for (const test::barrier_case& c : test::gradient_cases()) {
    const attention_params ap{c.m, tau};
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
    INFO(c.name << ", temperature " << tau << ": autodiff " << derivative(value) << ", analytic " << directional);
    if (tau != 0) {  // the temperature is used: the penalty differs from the default one (by 3.3e-4 at least)
      CHECK(std::abs(g.penalty - barrier_penalty<double>(U, hs, c.bp, test::case_params(c))) > 1e-5);
    }
    // Both in double on O(1) blocks with kappa <= 30, on the scale 1: bound 16 eps, measured 2.9;
    // the values: the same operations in another scalar type (bound 2 eps, measured 0).
    CHECK(test::within_eps(derivative(value), directional, 16, 1.0));
    CHECK(test::within_eps(value, g.penalty, 2));
  }
}
