// suptok/likelihood/loglik.hpp: the log-likelihood of the latent-noise model (docs/math.md section 2)
// and its gradients, reference path.
//
//   ell_t = log N(e_t; 0, Psi) + log |det J_t|                                  t = 0..N-1
//   log N(e; 0, Psi) = -p/2 log(2 pi) - 1/2 sum_i log psi_i - 1/2 sum_i e_i^2 / psi_i
//   log p(U) = sum_t ell_t
// with e = U - mu (residuals.hpp, (N, p)), J_t (p, p) from jacobian.hpp and log |det J_t| from a
// pivoted LU (logdet.hpp). Psi is noise_covariance (noise.hpp): sigma^2 I or diag(psi).
//
// Gradients of the total, each line differentiating the forward line quoted beside it:
//   -1/2 sum_i e_ti^2 / psi_i   ->  de_t = -e_t / psi                        (N, p)
//   e = U - mu                  ->  dU += de,  dMu = -de -> attention_backward
//   log |det J_t|               ->  dJ_t = J_t^{-T} -> jacobian_blocks_backward
//   Psi (variances)             ->  dpsi_i = sum_t (e_ti^2 / psi_i - 1) / (2 psi_i)   (diagonal)
//                                   dsigma^2 = sum_t (|e_t|^2 / sigma^2 - p) / (2 sigma^2)  (isotropic)
// Singular J_t: the value is -inf for that token and the total (never NaN); the gradient does not
// exist there and log_likelihood_backward throws suptok::error (argument "U") naming the token.
#pragma once

#include <limits>

#include <Eigen/LU>

#include "../attention/backward.hpp"
#include "jacobian.hpp"
#include "jacobian_backward.hpp"
#include "logdet.hpp"
#include "noise.hpp"
#include "residuals.hpp"

namespace suptok {

template <class S>
struct log_likelihood_value {
  vector<S> gaussian;     // (N): log N(e_t; 0, Psi)
  vector<S> log_abs_det;  // (N): log |det J_t| (-inf where J_t is singular)
  vector<S> per_token;    // (N): ell_t = gaussian + log_abs_det
  S total;                // sum_t ell_t
};

template <class S>
struct log_likelihood_gradients {
  matrix<S> dU;    // (N, p)
  heads<S> dW;     // same shapes as the heads
  vector<S> dPsi;  // same shape as Psi.variance: d total / d sigma^2, or d total / d psi_i
};

namespace detail {

// log N(e_t; 0, Psi) for every row of E (N, p).
template <class S>
vector<S> gaussian_log_density(const matrix<S>& E, const noise_covariance<S>& Psi) {
  using std::acos;
  using std::log;
  const index N = E.rows(), p = E.cols();
  const S log_2pi = log(S(2) * acos(S(-1)));
  S log_det_psi = S(0);
  for (index i = 0; i < p; ++i) log_det_psi += log(Psi(i));
  vector<S> g(N);
  for (index t = 0; t < N; ++t) {
    S quad = S(0);
    for (index i = 0; i < p; ++i) quad += E(t, i) * E(t, i) / Psi(i);
    g(t) = -S(0.5) * (S(p) * log_2pi + log_det_psi + quad);
  }
  return g;
}

}  // namespace detail

// Per-token and total log-likelihood of one sequence U (N, p).
template <class S>
log_likelihood_value<S> log_likelihood(const_ref<S> U, const heads<S>& heads, const noise_covariance<S>& Psi,
                                       const attention_params& params = {}) {
  detail::validate_attention<S>(U, heads, params);
  detail::validate_noise<S>(Psi, U.cols());
  const index N = U.rows();
  log_likelihood_value<S> r;
  r.gaussian = detail::gaussian_log_density<S>(detail::residuals_unchecked<S>(U, heads, params), Psi);
  const auto J = jacobian_blocks<S>(U, heads, params);
  r.log_abs_det.resize(N);
  for (index t = 0; t < N; ++t) {
    const signed_log_det<S> ld = log_det<S>(J[static_cast<std::size_t>(t)]);
    detail::require_finite_log_det(ld, "U", t);
    r.log_abs_det(t) = ld.log_abs;
  }
  r.per_token = r.gaussian + r.log_abs_det;
  r.total = r.per_token.sum();
  return r;
}

// Gradients of log_likelihood(...).total with respect to U, every W and the variances of Psi.
// Throws suptok::error (argument "U") when some J_t is singular: the total is -inf there.
template <class S>
log_likelihood_gradients<S> log_likelihood_backward(const_ref<S> U, const heads<S>& heads,
                                                    const noise_covariance<S>& Psi,
                                                    const attention_params& params = {}) {
  detail::validate_attention<S>(U, heads, params);
  detail::validate_noise<S>(Psi, U.cols());
  const index N = U.rows(), p = U.cols();
  const matrix<S> E = detail::residuals_unchecked<S>(U, heads, params);  // (N, p)
  // -1/2 sum_i e_ti^2 / psi_i
  matrix<S> dE(N, p);
  for (index t = 0; t < N; ++t)
    for (index i = 0; i < p; ++i) dE(t, i) = -E(t, i) / Psi(i);
  // log |det J_t|
  const auto J = jacobian_blocks<S>(U, heads, params);
  std::vector<matrix<S>> dJ(J.size());
  for (std::size_t t = 0; t < J.size(); ++t) {
    const signed_log_det<S> ld = log_det<S>(J[t]);
    detail::require_finite_log_det(ld, "U", index(t));
    detail::require(ld.sign != 0, "U", "J_", t,
                    " is singular: the log-likelihood is -inf and has no gradient");
    dJ[t] = J[t].partialPivLu().inverse().transpose();  // (p, p)
  }
  log_likelihood_gradients<S> g;
  attention_gradients<S> gJ = detail::jacobian_blocks_backward_unchecked<S>(dJ, U, heads, params);
  g.dW = std::move(gJ.dW);
  // e = U - mu: dU += dE, and mu's backward with dMu = -dE (weight gradients accumulate into g.dW)
  matrix<S> dU_mu;  // (N, p)
  detail::attention_backward_accumulate<S>(dU_mu, g.dW, -dE, U, heads, params);
  g.dU = gJ.dU + dE + dU_mu;
  // Psi
  if (Psi.kind == noise_kind::isotropic) {
    const S s2 = Psi.variance(0);
    g.dPsi = vector<S>::Constant(1, (E.squaredNorm() / s2 - S(N * p)) / (S(2) * s2));
  } else {
    g.dPsi.resize(p);
    for (index i = 0; i < p; ++i)
      g.dPsi(i) = (E.col(i).squaredNorm() / Psi.variance(i) - S(N)) / (S(2) * Psi.variance(i));
  }
  return g;
}

}  // namespace suptok
