// Tier 1/3: margins against independent decompositions: sigma from the eigenvalues of J^T J
// (SelfAdjointEigenSolver, float50), eigenvalue real parts of p = 2 blocks from the
// characteristic polynomial, and constructed blocks with known complex eigenvalues.
#include "barrier_checks.hpp"

#include <catch2/catch.hpp>

#include <Eigen/Eigenvalues>
#include <Eigen/LU>

using namespace suptok;

namespace {

struct reference_margin {
  float50 det, sigma_min, sigma_max, eig_margin;
};

// p = 2 only: sigma^2 = eig(J^T J); eig(J) = tr/2 +- sqrt(tr^2/4 - det).
reference_margin independent(const matrix<float50>& J) {
  const matrix<float50> JtJ = J.transpose() * J;
  const Eigen::SelfAdjointEigenSolver<matrix<float50>> es(JtJ);
  const float50 det = Eigen::FullPivLU<matrix<float50>>(J).determinant();
  const float50 half_tr = J.trace() / 2, disc = half_tr * half_tr - det;
  const float50 min_re = disc < 0 ? half_tr : half_tr - sqrt(disc);
  return {det, sqrt(es.eigenvalues()(0)), sqrt(es.eigenvalues()(1)), min_re};
}

}  // namespace

TEMPLATE_TEST_CASE("token margins match independent decompositions", "[barrier][margins]", double, float50) {
  using S = TestType;
  // Errors in eps of S (scale 1: O(1) blocks; log|det| on the scale 1/|det|, kappa on
  // sigma_max / sigma_min^2, their sensitivities): SVD and Schur are backward stable.
  for (const test::barrier_case& c : test::gradient_cases()) {
    const attention_params ap = test::case_params(c);
    const auto ms = token_margins<S>(test::case_U<S>(c), test::case_heads<S>(c), ap);
    const auto J = jacobian_blocks<float50>(test::case_U<float50>(c), test::case_heads<float50>(c), ap);
    for (std::size_t t = 0; t < J.size(); ++t) {
      const reference_margin r = independent(J[t]);
      const token_margin<S>& m = ms[t];
      INFO(c.name << ", t = " << t);
      CHECK(test::within_eps(m.det, r.det, 8, 1.0));  // bound 8 eps, measured 2.3
      CHECK(m.sign == (r.det > 0 ? 1 : -1));
      CHECK(test::within_eps(m.log_abs_det, float50(log(abs(r.det))), 8, to_double(1 / abs(r.det))));  // bound 8 eps, measured 2.4
      CHECK(test::within_eps(m.sigma_min, r.sigma_min, 16, 1.0));  // bound 16 eps, measured 4.6
      CHECK(test::within_eps(m.sigma_max, r.sigma_max, 8, 1.0));  // bound 8 eps, measured 1.7
      CHECK(test::within_eps(m.kappa, float50(r.sigma_max / r.sigma_min), 16,
                             to_double(r.sigma_max / (r.sigma_min * r.sigma_min))));  // bound 16 eps, measured 4.6
      CHECK(test::within_eps(m.eig_margin, r.eig_margin, 32, 1.0));  // a near-double eigenvalue loses digits (bound 32 eps, measured 9)
    }
  }
}

TEMPLATE_TEST_CASE("block margins of constructed blocks", "[barrier][margins]", double, float50) {
  using S = TestType;
  // J = Q B Q^T with Q orthogonal, B = [[a, -w, 0], [w, a, 0], [0, 0, c]]: eigenvalues a +- iw, c;
  // singular values sqrt(a^2 + w^2) (twice) and |c|; det = (a^2 + w^2) c.
  const matrix<S> Q = Eigen::HouseholderQR<matrix<S>>(test::random_matrix<S>(3, 3, 5)).householderQ();
  for (const auto& [a, w, cc] : {std::tuple{0.3, 0.8, 2.0}, std::tuple{1.5, 0.2, 0.4}, std::tuple{-0.5, 1.0, 0.1}}) {
    matrix<S> B = matrix<S>::Zero(3, 3);
    B(0, 0) = B(1, 1) = S(a);
    B(0, 1) = S(-w);
    B(1, 0) = S(w);
    B(2, 2) = S(cc);
    const matrix<S> J = Q * B * Q.transpose();
    const token_margin<S> m = block_margin<S>(J);
    const float50 A = float50(a), W = float50(w), C = float50(cc), r = sqrt(A * A + W * W);
    CHECK(test::within_eps(m.eig_margin, min_of(A, C), 4, 1.0));  // bound 4 eps, measured 1.1
    CHECK(test::within_eps(m.sigma_min, min_of(r, C), 4, 1.0));  // bound 4 eps, measured 0.7
    CHECK(test::within_eps(m.sigma_max, max_of(r, C), 8, 1.0));  // bound 8 eps, measured 3
    CHECK(test::within_eps(m.det, float50(r * r * C), 8, 1.0));  // bound 8 eps, measured 3.4
  }
  // An exactly singular block: sigma_min = 0, kappa = +inf, det = 0, log|det| = -inf.
  matrix<S> D = matrix<S>::Zero(2, 2);
  D(0, 0) = S(2);
  const token_margin<S> m = block_margin<S>(D);
  CHECK(to_double(m.sigma_min) == 0.0);
  CHECK(std::isinf(to_double(m.kappa)));
  CHECK(m.sign == 0);
  CHECK(std::isinf(to_double(m.log_abs_det)));
  CHECK(to_double(m.eig_margin) == 0.0);
}

TEST_CASE("trivial tokens have unit margins; eig_margin = 1 - max Re eig(sum_h V_h C_t A_h)", "[barrier][margins]") {
  const test::barrier_case c = test::gradient_cases()[2];  // strict
  const matrix<double> U = test::case_U<double>(c);
  const heads<double> hs = test::case_heads<double>(c);
  const auto ms = token_margins<double>(U, hs, test::case_params(c));
  for (int t = 0; t < 2; ++t) {
    CHECK(ms[t].sigma_min == 1.0);
    CHECK(ms[t].kappa == 1.0);
    CHECK(ms[t].eig_margin == 1.0);
    CHECK(ms[t].det == 1.0);
  }
  // strict: sum_h V_h C_t A_h = I - J_t; its eigenvalues through Eigen's EigenSolver (complex).
  const auto J = jacobian_blocks<double>(U, hs, test::case_params(c));
  for (std::size_t t = 2; t < J.size(); ++t) {
    const matrix<double> VCA = matrix<double>::Identity(2, 2) - J[t];
    const Eigen::EigenSolver<Eigen::MatrixXd> es(VCA);
    CHECK(test::within_eps(ms[t].eig_margin, 1 - es.eigenvalues().real().maxCoeff(), 4, 1.0));  // bound 4 eps, measured 1.3
  }
  CHECK_THROWS_AS(block_margin<double>(matrix<double>(2, 3)), error);
}
