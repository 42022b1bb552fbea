// The log-likelihood: value against a direct computation (reference tier), gradients with respect
// to U, every W and Psi (both kinds) against finite differences (gradient tier), in double and
// long double; validation errors.
#include "likelihood_checks.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>

using namespace suptok;

namespace {

// The log-likelihood computed directly: explicit Gaussian density of e_t = u_t - mu_t and
// log |det J_t| from Eigen's determinant (not the pivoted-LU path of the library).
template <class S>
S direct_log_likelihood(const matrix<S>& U, const heads<S>& hs, const matrix<S>& Psi_full, const attention_params& params) {
  const matrix<S> E = U - attention_forward<S>(U, hs, params).mu;
  const auto J = jacobian_blocks<S>(U, hs, params);
  const suptok::index p = U.cols();
  const S pi = std::acos(S(-1));
  S total = 0;
  for (suptok::index t = 0; t < U.rows(); ++t) {
    const vector<S> e = E.row(t).transpose();
    total += -S(0.5) * (S(p) * std::log(S(2) * pi) + std::log(Psi_full.determinant()) +
                        e.dot(Psi_full.inverse() * e)) +
             std::log(std::abs(J[static_cast<std::size_t>(t)].determinant()));
  }
  return total;
}

}  // namespace

TEMPLATE_TEST_CASE("log_likelihood value against a direct computation", "[likelihood][reference]", double,
                   long double) {
  using S = TestType;
  const auto U = test::random_matrix<S>(7, 3, 101);
  const auto hs = test::random_heads<S>(2, 3, 2, 3, 102, 0.6);
  vector<S> psi(3);
  psi << S(0.5), S(1.5), S(2);
  for (const auto& params : {test::strict_params, test::inclusive_params})
    for (const auto& Psi : {noise_covariance<S>::isotropic(S(0.7)), noise_covariance<S>::diagonal(psi)}) {
      const matrix<S> Psi_full = Psi.kind == noise_kind::isotropic ? matrix<S>(S(0.7) * matrix<S>::Identity(3, 3))
                                                                   : matrix<S>(psi.asDiagonal());
      const auto ll = log_likelihood<S>(U, hs, Psi, params);
      const S direct = direct_log_likelihood<S>(U, hs, Psi_full, params);
      // Same formula evaluated two ways (LU vs cofactor determinant, diagonal vs inverse): sums of
      // O(N p) terms of size O(10), so 1e3 epsilon relative.
      CHECK(std::abs(to_double(ll.total - direct)) <= 1e3 * test::epsilon_of<S>() * std::abs(to_double(direct)));
      CHECK(std::abs(to_double(ll.total - ll.per_token.sum())) <= 1e2 * test::epsilon_of<S>() * std::abs(to_double(direct)));
      CHECK(to_double((ll.gaussian + ll.log_abs_det - ll.per_token).cwiseAbs().maxCoeff()) == 0.0);
      if (params.causal_mask == mask::strict) {  // J_0 = J_1 = I: log |det| = 0 exactly up to rounding
        CHECK(std::abs(to_double(ll.log_abs_det(0))) < 1e2 * test::epsilon_of<S>());
        CHECK(std::abs(to_double(ll.log_abs_det(1))) < 1e2 * test::epsilon_of<S>());
      }
    }
}

TEST_CASE("log_likelihood of a singular J_t is -inf; its gradient throws", "[likelihood][reference]") {
  // Inclusive mask, one head with V = I: J_0 = I - V = 0.
  heads<double> hs(1);
  hs[0].W_Q = matrix<double>::Identity(2, 2);
  hs[0].W_K = matrix<double>::Identity(2, 2);
  hs[0].W_V = matrix<double>::Identity(2, 2);
  hs[0].W_O = matrix<double>::Identity(2, 2);
  const auto U = test::random_matrix<double>(3, 2, 5);
  const auto Psi = noise_covariance<double>::isotropic(1.0);
  const auto ll = log_likelihood<double>(U, hs, Psi, test::inclusive_params);
  CHECK(std::isinf(ll.log_abs_det(0)));
  CHECK(ll.log_abs_det(0) < 0);
  CHECK(std::isinf(ll.total));
  CHECK(ll.total < 0);
  CHECK_THROWS_AS(log_likelihood_backward<double>(U, hs, Psi, test::inclusive_params), suptok::error);
}

// The reference gradient is computed in long double by central differences with h = eps^(1/3):
// truncation and rounding both ~ eps^(2/3) ~ 5e-13 relative, times the conditioning of the
// problem: under the inclusive mask J_0 = I - sum_h V_h is close to singular for these weights
// and the third derivatives of log |det J_0| are large (measured FD error 2e-9 there, 1e-11 under
// the strict mask), so the long double check is 1e-8; loglik_fd50.cpp repeats it in float50 at
// 1e-20. The analytic double gradient must match the analytic long double one to 1e-8 (the
// issue's requirement; it measures about 2e-14, printed).
TEST_CASE("log_likelihood_backward against finite differences", "[likelihood][gradient]") {
  using L = long double;
  const suptok::index N = 6, p = 3;
  const auto U = test::random_matrix<L>(N, p, 201);
  const auto hs = test::random_heads<L>(2, p, 2, 2, 202, 0.6);
  vector<L> psi(p);
  psi << L(0.6), L(1.3), L(2.1);
  const L h = std::cbrt(std::numeric_limits<L>::epsilon());
  for (const auto& params : {test::strict_params, test::inclusive_params})
    for (const auto& Psi : {noise_covariance<L>::isotropic(L(0.8)), noise_covariance<L>::diagonal(psi)}) {
      const char* kind = Psi.kind == noise_kind::isotropic ? "isotropic" : "diagonal";
      DYNAMIC_SECTION("mask " << to_string(params.causal_mask) << ", Psi " << kind) {
        const auto g = log_likelihood_backward<L>(U, hs, Psi, params);
        auto analytic = test::blocks_of(attention_gradients<L>{g.dU, g.dW});
        analytic.push_back(g.dPsi);
        auto fd = test::fd_gradient<L>(U, hs, h, [&](const matrix<L>& Uf, const heads<L>& hf) {
          return log_likelihood<L>(Uf, hf, Psi, params).total;
        });
        auto Psi_var = Psi;
        matrix<L> dPsi_fd(Psi.variance.size(), 1);
        for (suptok::index i = 0; i < Psi.variance.size(); ++i)
          dPsi_fd(i, 0) = test::central_difference(Psi_var.variance(i), h,
                                                   [&] { return log_likelihood<L>(U, hs, Psi_var, params).total; });
        fd.push_back(dPsi_fd);
        for (std::size_t k = 0; k < fd.size(); ++k) {
          INFO((k + 1 == fd.size() ? std::string("Psi") : test::block_name(k)) << " error "
                                                                               << test::max_rel_error(analytic[k], fd[k]));
          CHECK(test::max_rel_error(analytic[k], fd[k]) < 1e-8);
        }
        const auto gd = log_likelihood_backward<double>(
            test::cast<double>(U), test::cast<double>(hs),
            {Psi.kind, Psi.variance.template cast<double>()}, params);
        auto analytic_d = test::blocks_of(attention_gradients<double>{gd.dU, gd.dW});
        analytic_d.push_back(gd.dPsi);
        const double err_fd = test::max_block_error(analytic, fd);
        const double err_d = test::max_block_error(analytic_d, analytic);
        std::cout << "log_likelihood_backward (" << to_string(params.causal_mask) << ", " << kind
                  << "): long double vs FD " << err_fd << ", double vs long double " << err_d << "\n";
        CHECK(err_d < 1e-8);
      }
    }
}

TEST_CASE("log_likelihood validates Psi and the sequence", "[likelihood][validation]") {
  const auto U = test::random_matrix<double>(4, 3, 1);
  const auto hs = test::random_heads<double>(1, 3, 2, 2, 2);
  auto arg = [&](const noise_covariance<double>& Psi) {
    try {
      log_likelihood<double>(U, hs, Psi);
    } catch (const suptok::error& e) {
      return e.argument();
    }
    return std::string("no error");
  };
  CHECK(arg(noise_covariance<double>::isotropic(0.0)) == "Psi.variance");
  CHECK(arg(noise_covariance<double>::isotropic(-1.0)) == "Psi.variance");
  CHECK(arg(noise_covariance<double>::isotropic(std::nan(""))) == "Psi.variance");
  CHECK(arg(noise_covariance<double>::diagonal(vector<double>::Ones(2))) == "Psi.variance");
  CHECK(arg(noise_covariance<double>{noise_kind::isotropic, vector<double>::Ones(3)}) == "Psi.variance");
  CHECK(arg(noise_covariance<double>::diagonal(vector<double>::Ones(3))) == "no error");
  vector<double> bad = vector<double>::Ones(3);
  bad(2) = std::numeric_limits<double>::infinity();
  CHECK(arg(noise_covariance<double>::diagonal(bad)) == "Psi.variance");
  CHECK(arg(noise_covariance<double>{static_cast<noise_kind>(7), vector<double>::Ones(1)}) == "Psi.kind");
  matrix<double> Unan = U;
  Unan(1, 1) = std::nan("");
  CHECK_THROWS_WITH(log_likelihood<double>(Unan, hs, noise_covariance<double>::isotropic(1.0)),
                    Catch::Contains("U"));
  CHECK_THROWS_AS(log_likelihood_backward<double>(Unan, hs, noise_covariance<double>::isotropic(1.0)), suptok::error);
  CHECK_THROWS_AS(residuals<double>(Unan, hs), suptok::error);
  CHECK_THROWS_AS(jacobian_blocks_backward<double>(test::random_blocks<double>(3, 3, 1), U, hs), suptok::error);
  std::vector<matrix<double>> dJ = test::random_blocks<double>(4, 3, 1);
  dJ[2] = matrix<double>::Zero(3, 2);
  try {
    jacobian_blocks_backward<double>(dJ, U, hs);
    FAIL("no error");
  } catch (const suptok::error& e) {
    CHECK(e.argument() == "dJ[2]");
  }
}

TEST_CASE("residuals and residuals_batch", "[likelihood][reference]") {
  const auto hs = test::random_heads<double>(2, 3, 2, 2, 7);
  const std::vector<matrix<double>> Us{test::random_matrix<double>(4, 3, 8), test::random_matrix<double>(6, 3, 9)};
  const auto E = residuals_batch<double>(Us, hs);
  REQUIRE(E.size() == 2);
  for (std::size_t b = 0; b < 2; ++b) {
    // Both are U - mu from the same forward: identical bits.
    CHECK((E[b] - residuals<double>(Us[b], hs)).cwiseAbs().maxCoeff() == 0.0);
    CHECK((E[b] - (Us[b] - attention_forward<double>(Us[b], hs).mu)).cwiseAbs().maxCoeff() == 0.0);
  }
  CHECK((E[0].row(0) - Us[0].row(0)).cwiseAbs().maxCoeff() == 0.0);  // strict mask: e_0 = u_0
}
