// The log-likelihood: value against a direct computation (reference tier), gradients with respect
// to U, every W and Psi (both kinds) against finite differences (gradient tier), in double and
// long double; validation errors.
#include "likelihood_checks.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>

using namespace suptok;

namespace {

// An independent log-likelihood, from the definitions of docs/math.md sections 1-2 with no call into
// the library: mu_t by explicit softmax loops, J_t = I - d mu_t / d u_t by forward-mode autodiff
// through those loops, det J_t by the rule of Sarrus (p = 3) and the Gaussian log-density of
// e_t = u_t - mu_t with a diagonal Psi written out.

// mu_t = sum_h W_O^h sum_{s in P(t)} a_ts W_V^h u_s, a_ts = softmax_s(q_t . k_s / sqrt(d_k)).
template <class T>
std::vector<T> direct_mu(const matrix<T>& U, const heads<T>& hs, suptok::index t, mask m) {
  using std::exp;
  using std::sqrt;
  const suptok::index p = U.cols(), end = m == mask::strict ? t : t + 1;
  std::vector<T> mu(static_cast<std::size_t>(p), T(0));
  for (const head<T>& h : hs) {
    if (end == 0) break;  // strict mask, t = 0: an empty past, mu_0 = 0
    const suptok::index d_k = h.W_Q.rows(), d_v = h.W_V.rows();
    const auto proj = [&](const matrix<T>& W, suptok::index s, suptok::index r) {
      T x(0);
      for (suptok::index j = 0; j < p; ++j) x += W(r, j) * U(s, j);
      return x;
    };
    std::vector<T> logit(static_cast<std::size_t>(end));
    T top(0);
    for (suptok::index s = 0; s < end; ++s) {
      T l(0);
      for (suptok::index r = 0; r < d_k; ++r) l += proj(h.W_Q, t, r) * proj(h.W_K, s, r);
      logit[s] = l / sqrt(T(d_k));
      if (s == 0 || top < logit[s]) top = logit[s];
    }
    T z(0);
    std::vector<T> o(static_cast<std::size_t>(d_v), T(0));
    for (suptok::index s = 0; s < end; ++s) {
      const T w = exp(logit[s] - top);
      z += w;
      for (suptok::index c = 0; c < d_v; ++c) o[c] += w * proj(h.W_V, s, c);
    }
    for (suptok::index i = 0; i < p; ++i)
      for (suptok::index c = 0; c < d_v; ++c) mu[i] += h.W_O(i, c) * o[c] / z;
  }
  return mu;
}

template <class S>
struct direct_terms {
  std::vector<S> gaussian, log_abs_det;
  S total = 0;
};

template <class S>
direct_terms<S> direct_log_likelihood(const matrix<S>& U, const heads<S>& hs, const vector<S>& psi, mask m) {
  using std::log;
  using D = dual<S>;
  const suptok::index N = U.rows(), p = U.cols();
  REQUIRE(p == 3);  // Sarrus
  heads<D> hd(hs.size());
  for (std::size_t k = 0; k < hs.size(); ++k) {
    hd[k].W_Q = hs[k].W_Q.template cast<D>();
    hd[k].W_K = hs[k].W_K.template cast<D>();
    hd[k].W_V = hs[k].W_V.template cast<D>();
    hd[k].W_O = hs[k].W_O.template cast<D>();
  }
  const S two_pi = S(2) * std::acos(S(-1));
  direct_terms<S> r;
  for (suptok::index t = 0; t < N; ++t) {
    const std::vector<S> mu = direct_mu<S>(U, hs, t, m);
    S g = -S(0.5) * S(p) * log(two_pi);
    for (suptok::index i = 0; i < p; ++i) {
      const S e = U(t, i) - mu[i];
      g -= S(0.5) * (log(psi(i)) + e * e / psi(i));
    }
    matrix<S> J(p, p);  // J(i, j) = delta_ij - d mu_t,i / d u_t,j
    for (suptok::index j = 0; j < p; ++j) {
      matrix<D> Ud = U.template cast<D>();
      Ud(t, j) = make_dual<S>(U(t, j), S(1));
      const std::vector<D> mud = direct_mu<D>(Ud, hd, t, m);
      for (suptok::index i = 0; i < p; ++i) J(i, j) = (i == j ? S(1) : S(0)) - derivative(mud[i]);
    }
    const S det = J(0, 0) * J(1, 1) * J(2, 2) + J(0, 1) * J(1, 2) * J(2, 0) + J(0, 2) * J(1, 0) * J(2, 1) -
                  J(0, 2) * J(1, 1) * J(2, 0) - J(0, 1) * J(1, 0) * J(2, 2) - J(0, 0) * J(1, 2) * J(2, 1);
    r.gaussian.push_back(g);
    r.log_abs_det.push_back(log(det < 0 ? -det : det));
    r.total += g + r.log_abs_det.back();
  }
  return r;
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
      const vector<S> psi_full = Psi.kind == noise_kind::isotropic ? vector<S>(vector<S>::Constant(3, S(0.7))) : psi;
      const auto ll = log_likelihood<S>(U, hs, Psi, params);
      const direct_terms<S> direct = direct_log_likelihood<S>(U, hs, psi_full, params.causal_mask);
      INFO("mask " << to_string(params.causal_mask) << ", Psi " << (Psi.kind == noise_kind::isotropic ? "iso" : "diag"));
      // Per token, the Gaussian term and log |det J_t| (scale 1: log |det J_t| is 0 for the strict
      // mask's J_0 = J_1 = I and small elsewhere), then the total (sums of O(N p) terms of O(1)).
      for (suptok::index t = 0; t < U.rows(); ++t) {
        INFO("t = " << t);
        CHECK(test::within_eps(ll.gaussian(t), direct.gaussian[t], 16));  // bound 16 eps, measured 2.9
        CHECK(test::within_eps(ll.log_abs_det(t), direct.log_abs_det[t], 16, 1.0));  // measured 2.6
        CHECK(test::within_eps(ll.per_token(t), direct.gaussian[t] + direct.log_abs_det[t], 16));  // measured 2.8
      }
      CHECK(test::within_eps(ll.total, direct.total, 4));  // bound 4 eps, measured 0.9
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
// the strict mask), so the long double check is 1e-8 (measured 2.2e-9 inclusive, 1.5e-11 strict);
// loglik_fd50.cpp repeats it in float50. The analytic double gradient must match the analytic
// long double one: bound 256 eps of double (5.7e-14), measured 90 eps (2e-14, printed).
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
        CHECK(err_d <= 256 * test::epsilon_of<double>());
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
