// The layer's Jacobian blocks J_t (general form) against forward-mode autodiff (dual<float50>)
// through an independent naive forward, for every variant and both masks; and the projected form's
// det(I - K_t) against det J_t in 50 digits; the barrier gradients of both forms against float50
// central differences.
#include "layer_checks.hpp"

#include <catch2/catch.hpp>

using namespace suptok;
using S = float50;
using D = dual<S>;

TEST_CASE("layer jacobian_blocks match dual<float50> autodiff of the naive forward", "[layer][gradient]") {
  const suptok::index N = 5, p = 4;
  for (const auto& c : test::layer_cases)
    for (const mask m : {mask::strict, mask::inclusive}) {
      DYNAMIC_SECTION(c.name << ", " << to_string(m)) {
        const auto U = test::random_matrix<S>(N, p, 61);
        const auto l = test::random_layer<S>(p, c, 62, 0.7);
        const layer<D> ld = test::cast<D>(l);
        const auto J = jacobian_blocks<S>(U, l, {m, 0});
        const auto K = projected_blocks<S>(U, l, {m, 0});
        double worst = 0, worst_det = 0;
        for (suptok::index t = 0; t < N; ++t) {
          matrix<S> ad(p, p);
          for (suptok::index j = 0; j < p; ++j) {
            matrix<D> Ud = test::cast<D>(U);
            Ud(t, j) = make_dual<S>(U(t, j), S(1));
            const matrix<D> E = Ud - test::naive_layer_mu<D>(Ud, ld, m);
            for (suptok::index i = 0; i < p; ++i) ad(i, j) = derivative(E(t, i));
          }
          const auto k = static_cast<std::size_t>(t);
          worst = std::max(worst, test::max_rel_error(J[k], ad));
          const matrix<S> I_K = matrix<S>::Identity(K[k].rows(), K[k].cols()) - K[k];
          const S det_J = J[k].determinant(), det_K = I_K.determinant();
          worst_det = std::max(worst_det, std::abs(to_double((det_K - det_J) / (abs(det_J) + S(1)))));
        }
        // 50-digit rounding over O(N p d) operations: bounds 128 and 64 eps of float50, relative to
        // max |J_t| and to |det J_t| + 1 (the error in eps is compared with 0 at scale 1);
        // measured up to 21 and 6.9.
        CHECK(test::within_eps<S>(worst, 0.0, 128, 1.0));
        CHECK(test::within_eps<S>(worst_det, 0.0, 64, 1.0));
      }
    }
}

TEST_CASE("layer barrier gradients: float50 central differences, and double against float50", "[layer][gradient]") {
  const suptok::index N = 6, p = 4;
  const barrier_params bp{extension::extended, 1e-8, 0.5};
  for (const auto& c : test::layer_cases)
    for (const mask m : {mask::strict, mask::inclusive})
      for (const jacobian_form f : {jacobian_form::general, jacobian_form::projected}) {
        DYNAMIC_SECTION(c.name << ", " << to_string(m) << ", " << to_string(f)) {
          const attention_params ap{m, 0};
          const auto U = test::random_matrix<S>(N, p, 63);
          const auto l = test::random_layer<S>(p, c, 64, 0.5);
          const auto g = barrier_penalty_backward<S>(U, l, bp, ap, f);
          const auto dir = test::random_direction(U, l, 400);
          // (U, l) + x * direction
          const auto shifted = [&](const S& x) {
            layer<S> lx = l;
            std::size_t k = 0;
            test::for_each_block(lx, [&](auto& b) { b += x * dir.dW[k++]; });
            return barrier_penalty<S>(matrix<S>(U + x * dir.dU), lx, bp, ap, f);
          };
          const S h = S(1e-15);
          const S fd = (shifted(h) - shifted(-h)) / (S(2) * h);
          // Truncation h^2 ~ 1e-30 and rounding 1e-50 / h = 1e-35, relative: bound 1e-12 eps of
          // double (2.2e-28) of the sum of |gradient| |direction|, measured 1.3e-14.
          const S magnitudes = dir.dot(g.grad.dU, g.grad.dW, true);
          CHECK(test::within_eps<double>(dir.dot(g.grad.dU, g.grad.dW), fd, 1e-12, to_double(magnitudes)));
          // The same gradient in double, relative to the largest entry of the whole gradient, in eps
          // of double: bound 64, measured up to 12.5 (general) and 46.3 (projected, multi-query,
          // whose blocks I - K_t are 9 x 9 for p = 4).
          const auto gd = barrier_penalty_backward<double>(test::cast<double>(U), test::cast<double>(l), bp, ap, f);
          CHECK(test::within_eps<double>(test::max_gradient_difference(gd.grad, g.grad), 0.0, 64, 1.0));
        }
      }
}
