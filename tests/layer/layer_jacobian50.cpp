// The layer's Jacobian blocks J_t (general form) against forward-mode autodiff (dual<float50>)
// through an independent naive forward, for every variant and both masks; and the projected form's
// det(I - K_t) against det J_t in 50 digits.
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
        // 50-digit rounding over O(N p d) operations. Bounds 1e4 eps of float50 (about 1e-45),
        // measured below 1e-47.
        const double eps50 = test::epsilon_of<S>();
        CHECK(worst <= 1e4 * eps50);
        CHECK(worst_det <= 1e4 * eps50);
      }
    }
}
