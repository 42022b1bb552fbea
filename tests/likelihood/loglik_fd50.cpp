// log_likelihood_backward against central finite differences in float50 (gradient tier): both
// masks, two heads, both kinds of Psi, every block (U, W_Q, W_K, W_V, W_O) and the variances.
// Step h = 1e-15: truncation ~ h^2 |f'''| ~ 1e-30 times the conditioning of J_t (log |det J| has
// third derivatives ~ |J^{-1}|^3, up to ~1e3 here) and rounding ~ 1e-50 / h; 1e-20 relative keeps
// a wide margin while any analytic mistake (O(1) relative) fails by twenty orders of magnitude.
#include "likelihood_checks.hpp"

#include <catch2/catch.hpp>

#include <iostream>

using namespace suptok;

TEST_CASE("log_likelihood_backward matches float50 finite differences", "[likelihood][gradient]") {
  using S = float50;
  const suptok::index N = 4, p = 2;
  const auto U = test::random_matrix<S>(N, p, 301);
  const auto hs = test::random_heads<S>(2, p, 2, 2, 302, 0.6);
  vector<S> psi(p);
  psi << S(0.6), S(1.7);
  const S h = S(1e-15);
  for (const auto& params : {test::strict_params, test::inclusive_params})
    for (const auto& Psi : {noise_covariance<S>::isotropic(S(0.8)), noise_covariance<S>::diagonal(psi)}) {
      const char* kind = Psi.kind == noise_kind::isotropic ? "isotropic" : "diagonal";
      DYNAMIC_SECTION("mask " << to_string(params.causal_mask) << ", Psi " << kind) {
        const auto g = log_likelihood_backward<S>(U, hs, Psi, params);
        auto analytic = test::blocks_of(attention_gradients<S>{g.dU, g.dW});
        analytic.push_back(g.dPsi);
        auto fd = test::fd_gradient<S>(U, hs, h, [&](const matrix<S>& Uf, const heads<S>& hf) {
          return log_likelihood<S>(Uf, hf, Psi, params).total;
        });
        auto Psi_var = Psi;
        matrix<S> dPsi_fd(Psi.variance.size(), 1);
        for (suptok::index i = 0; i < Psi.variance.size(); ++i)
          dPsi_fd(i, 0) = test::central_difference(Psi_var.variance(i), h,
                                                   [&] { return log_likelihood<S>(U, hs, Psi_var, params).total; });
        fd.push_back(dPsi_fd);
        for (std::size_t k = 0; k < fd.size(); ++k) {
          INFO((k + 1 == fd.size() ? std::string("Psi") : test::block_name(k)));
          CHECK(test::max_rel_error(analytic[k], fd[k]) < 1e-20);
        }
        std::cout << "log_likelihood_backward float50 vs FD (" << to_string(params.causal_mask) << ", " << kind
                  << "): " << test::max_block_error(analytic, fd) << "\n";
      }
    }
}
