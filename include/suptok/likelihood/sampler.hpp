// suptok/likelihood/sampler.hpp: sampling the latent-noise model (docs/math.md section 6), reference path.
//
// Given eps (N, p), token by token (t = 0..N-1, past u_0..u_{t-1} already solved), find u_t with
//   f(u_t) := u_t - mu_t(u_0..u_{t-1}, u_t) - eps_t = 0,     f'(u_t) = J_t   (p, p)
// mu_t and J_t of a candidate u_t are the attention output and Jacobian block at t of the
// sequence (u_0..u_{t-1}, u_t): one attention pass over t + 1 rows (reference cost O(t p^2 + t^2)).
//   p > 1: Newton u <- u - lambda J_t^{-1} f(u), with backtracking lambda = 1, 1/2, 1/4, ... until
//          |f| decreases (at most 40 halvings).
//   p = 1: boost::math::tools::newton_raphson_iterate inside a bracket [lo, hi] where f changes
//          sign, found by doubling a window around the start u_t = eps_t (strict mask: mu_t is
//          bounded, so a bracket always exists; none found is reported as not converged).
// Convergence: |f(u_t)|_2 <= tol (1 + |eps_t|_2 + |u_t|_2), tol = options.tolerance or, when 0,
// 64 epsilon of S. Inside the barrier (det J_t > 0 everywhere) the root is unique and Newton finds
// it; outside there may be several roots or none. Non-convergence is reported per token, never
// thrown, and the sequence continues from the best iterate; det_sign says on which side of the
// fold the solution lies. all_roots_1d lists every root of a p = 1 token in a bracket (grid scan
// for sign changes, each refined by TOMS 748); a root where f touches zero without changing sign
// (a tangency, exactly on the fold) can be missed.
#pragma once

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include <Eigen/LU>
#include <boost/math/tools/roots.hpp>
#include <boost/math/tools/toms748_solve.hpp>

#include "jacobian.hpp"
#include "logdet.hpp"

namespace suptok {

struct sampler_options {
  int max_iterations = 100;  // Newton iterations per token
  double tolerance = 0;      // relative residual tolerance; 0 selects 64 epsilon of the scalar
};

template <class S>
struct token_solve {
  int iterations = 0;      // Newton steps taken
  S residual_norm = S(0);  // |u_t - mu_t - eps_t|_2 at the returned u_t
  bool converged = false;  // residual_norm within the tolerance
  int det_sign = 0;        // sign of det J_t at the returned u_t (+1 inside the barrier)
};

template <class S>
struct sample_result {
  matrix<S> U;                          // (N, p) the solved sequence
  std::vector<token_solve<S>> tokens;   // (N) one report per token

  bool converged() const {
    return std::all_of(tokens.begin(), tokens.end(), [](const token_solve<S>& r) { return r.converged; });
  }
};

namespace detail {

// mu_t and J_t of the last row t = Ut.rows() - 1 of Ut (t + 1, p).
template <class S>
void last_token_map(vector<S>& mu, matrix<S>& J, const matrix<S>& Ut, const heads<S>& heads,
                    const attention_params& params) {
  const index t = Ut.rows() - 1, p = Ut.cols();
  mu.setZero(p);
  J.setIdentity(p, p);
  head_pass<S> pass;
  for (const head<S>& w : heads) {
    head_forward<S>(pass, Ut, w, params);
    mu.noalias() += w.W_O * pass.O.row(t).transpose();     // (p)
    const matrix<S> A = logit_matrix(w, pass.tau);          // (p, p)
    const matrix<S> UA = Ut * A;                            // (t + 1, p)
    J.noalias() -= value_matrix(w) * query_moment<S>(t, Ut, pass.a, UA, A, params.causal_mask);
  }
}

// The validated-argument check shared by sample() and all_roots_1d().
template <class S>
void validate_sampler(const heads<S>& heads, const attention_params& params, const sampler_options& options) {
  validate_params(params);
  require(!heads.empty(), "heads", "at least one head is required");
  validate_heads(heads, heads[0].W_Q.cols());
  require(options.max_iterations > 0, "options.max_iterations", "must be positive, got ", options.max_iterations);
  require(std::isfinite(options.tolerance) && options.tolerance >= 0, "options.tolerance",
          "must be finite and non-negative, got ", options.tolerance);
}

template <class S>
S relative_tolerance(const sampler_options& options) {
  return options.tolerance > 0 ? S(options.tolerance) : S(64) * std::numeric_limits<S>::epsilon();
}

// Row t of Ut is the unknown; Ut holds the solved past above it. Returns the report.
template <class S>
token_solve<S> solve_token(matrix<S>& Ut, const vector<S>& eps_t, const heads<S>& heads, const attention_params& params,
                           const sampler_options& options) {
  const index t = Ut.rows() - 1, p = Ut.cols();
  const S tol = relative_tolerance<S>(options);
  vector<S> mu;
  matrix<S> J;
  // f(u) = u - mu_t(u) - eps_t at u = row t of Ut
  auto residual = [&](const vector<S>& u) -> vector<S> {
    Ut.row(t) = u.transpose();
    last_token_map<S>(mu, J, Ut, heads, params);
    return u - mu - eps_t;
  };
  token_solve<S> r;
  vector<S> u = eps_t;
  if (p == 1) {
    using std::abs;
    auto f1 = [&](const S& x) { return residual(vector<S>::Constant(1, x))(0); };
    S width = S(1) + abs(eps_t(0));
    S lo = u(0) - width, hi = u(0) + width;
    bool bracketed = false;
    for (int k = 0; k < 200 && !bracketed; ++k) {  // width doubles: up to 2^200 (1 + |eps_t|)
      bracketed = (f1(lo) < S(0)) != (f1(hi) < S(0));  // a sign change (either orientation)
      if (!bracketed) {
        width *= S(2);
        lo = u(0) - width;
        hi = u(0) + width;
      }
    }
    if (bracketed) {
      boost::uintmax_t iterations = static_cast<boost::uintmax_t>(options.max_iterations);
      try {
        u(0) = boost::math::tools::newton_raphson_iterate(
            [&](const S& x) {
              const S fx = f1(x);
              return std::make_pair(fx, J(0, 0));
            },
            u(0), lo, hi, std::numeric_limits<S>::digits - 3, iterations);
      } catch (const boost::math::evaluation_error&) {
        iterations = static_cast<boost::uintmax_t>(options.max_iterations);  // reported as not converged below
      }
      r.iterations = static_cast<int>(iterations);
    }
  } else {
    vector<S> f = residual(u);
    S norm = f.norm();
    for (; r.iterations < options.max_iterations; ++r.iterations) {
      if (norm <= tol * (S(1) + eps_t.norm() + u.norm())) break;
      if (log_det<S>(J).sign == 0) break;  // singular Jacobian: no Newton step
      const vector<S> step = J.partialPivLu().solve(f);  // (p)
      S lambda = S(1);
      bool accepted = false;
      for (int k = 0; k < 40 && !accepted; ++k, lambda *= S(0.5)) {
        const vector<S> trial = u - lambda * step;
        const vector<S> f_trial = residual(trial);
        if (f_trial.norm() < norm) {
          u = trial;
          f = f_trial;
          norm = f.norm();
          accepted = true;
        }
      }
      if (!accepted) break;  // no descent along the Newton direction: stalled
    }
  }
  const vector<S> f = residual(u);  // leaves row t = u and J = J_t(u)
  r.residual_norm = f.norm();
  r.converged = r.residual_norm <= tol * (S(1) + eps_t.norm() + u.norm());
  r.det_sign = log_det<S>(J).sign;
  return r;
}

}  // namespace detail

// Solves u_t - mu_t(u_0..u_t) = eps_t for t = 0..N-1 given eps (N, p). Never throws for
// non-convergence: see sample_result::tokens and sample_result::converged().
template <class S>
sample_result<S> sample(const_ref<S> eps, const heads<S>& heads, const attention_params& params = {},
                        const sampler_options& options = {}) {
  detail::validate_sampler<S>(heads, params, options);
  detail::validate_sequence<S>(eps, "eps");
  detail::require(eps.cols() == heads[0].W_Q.cols(), "eps", "expected p = ", heads[0].W_Q.cols(), " columns, got ",
                  eps.cols());
  const index N = eps.rows(), p = eps.cols();
  sample_result<S> out;
  out.U.setZero(N, p);
  for (index t = 0; t < N; ++t) {
    matrix<S> Ut = out.U.topRows(t + 1);  // (t + 1, p): solved past, row t is the unknown
    out.tokens.push_back(detail::solve_token<S>(Ut, eps.row(t).transpose(), heads, params, options));
    out.U.row(t) = Ut.row(t);
  }
  return out;
}

// Every root u_t in [lo, hi] of u_t - mu_t(past, u_t) = eps_t for p = 1, where past (t, 1) holds
// u_0..u_{t-1} (t may be 0). The bracket is scanned on `grid` equal intervals; each sign change
// is refined by TOMS 748 to full precision (grid points where f is exactly 0 count as roots).
// Returned in increasing order.
template <class S>
std::vector<S> all_roots_1d(const_ref<S> past, const S& eps_t, const heads<S>& heads, const S& lo, const S& hi,
                            const attention_params& params = {}, int grid = 4096) {
  detail::validate_sampler<S>(heads, params, sampler_options{});
  detail::require(heads[0].W_Q.cols() == 1, "heads", "all_roots_1d needs p = 1, got p = ", heads[0].W_Q.cols());
  detail::require_shape(past, past.rows(), 1, "past");
  detail::require_finite(past, "past");
  detail::require(is_finite(eps_t), "eps_t", "must be finite");
  detail::require(is_finite(lo) && is_finite(hi) && lo < hi, "lo", "need finite lo < hi, got [", to_double(lo), ", ",
                  to_double(hi), "]");
  detail::require(grid > 0, "grid", "must be positive, got ", grid);
  const index t = past.rows();
  matrix<S> Ut(t + 1, 1);
  Ut.topRows(t) = past;
  vector<S> mu;
  matrix<S> J;
  auto f = [&](const S& x) {
    Ut(t, 0) = x;
    detail::last_token_map<S>(mu, J, Ut, heads, params);
    return x - mu(0) - eps_t;
  };
  std::vector<S> roots;
  S x0 = lo, f0 = f(lo);
  if (f0 == S(0)) roots.push_back(x0);
  for (int k = 1; k <= grid; ++k) {
    const S x1 = k == grid ? hi : lo + (hi - lo) * S(k) / S(grid);
    const S f1 = f(x1);
    if (f1 == S(0)) {
      roots.push_back(x1);
    } else if ((f0 < S(0) && S(0) < f1) || (S(0) < f0 && f1 < S(0))) {  // a sign change (a NaN is none)
      boost::uintmax_t iterations = 200;
      const auto br = boost::math::tools::toms748_solve(
          f, x0, x1, f0, f1, boost::math::tools::eps_tolerance<S>(std::numeric_limits<S>::digits - 3), iterations);
      roots.push_back((br.first + br.second) / S(2));
    }
    x0 = x1;
    f0 = f1;
  }
  return roots;
}

}  // namespace suptok
