// suptok/barrier/normalisation.hpp: the normalisation integral of the conditional density of one
// token for p = 1 (docs/math.md section 3, "Normalisation"), by Boost.Math quadrature. double only.
//
// p = 1, strict mask, fixed past u_1..u_n (rows of `past`, (n, 1)), new token u = u_{n+1}:
//   e(u)  = u - mu_{n+1}(u)                   residual (attention/forward.hpp)
//   J(u)  = d e / d u                         the last Jacobian block (likelihood/jacobian.hpp)
//   I     = int_R N(e(u); 0, sigma^2) |J(u)| du
// I = 1 when J > 0 everywhere (e is then a bijection of R), I > 1 when J changes sign (the map
// folds and I counts preimages). With two past tokens and one head, J = 1 - V A C(u),
// C <= (u_1 - u_2)^2 / 4, so the barrier holds for all u exactly when V A (u_1 - u_2)^2 / 4 < 1.
//
// Method. J differs from 1 only where the logits u A_h (u_s - u_r) are O(1):
//   |u| <= R_J = 50 / min_h(|A_h| d_min),  d_min = smallest nonzero |u_s - u_r|
// (beyond, the weights saturate to e^-50 and J - 1 is below 1e-20). J is scanned on a uniform
// grid over [-R_J, R_J]; sign changes are refined by TOMS 748, and every grid-local minimum of J
// with 0 < J < 0.1 (maximum with -0.1 < J < 0) is refined by Brent's minimiser, so that a dip
// below zero between two grid points is not missed. The zeros of J (kinks of |J|) and +-L,
// L = max(R_J, M + 40 sigma), M = sum_h |V_h| max_s |u_s| >= |mu|, split the line: finite pieces by
// adaptive Gauss-Kronrod (61 points), the two tails [L, inf), (-inf, -L] by exp_sinh.
// Caveats: the grid must resolve the features of J (width about 1 / (|A| max |u_s - u_r|)); the
// default 20001 points do for d_max / d_min up to about 400.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

#include <boost/math/quadrature/exp_sinh.hpp>
#include <boost/math/quadrature/gauss_kronrod.hpp>
#include <boost/math/tools/minima.hpp>
#include <boost/math/tools/roots.hpp>
#include <boost/math/tools/toms748_solve.hpp>

#include "../attention/forward.hpp"
#include "../likelihood/jacobian.hpp"

namespace suptok {

struct normalisation_options {
  int grid = 20001;          // scan points over [-R_J, R_J]
  double tolerance = 1e-13;  // relative tolerance of each quadrature piece
};

struct normalisation_report {
  double integral = 0;        // int N(e(u); 0, sigma^2) |J(u)| du
  double error_estimate = 0;  // sum of the quadrature error estimates of the pieces
  double min_J = 0;           // min over u of J(u)
  double argmin_J = 0;        // where it is attained
  std::vector<double> zeros;  // the zeros of J, increasing (empty inside the barrier)
};

namespace detail {

inline void validate_p1(const Eigen::Ref<const matrix<double>>& past, const heads<double>& heads,
                        const attention_params& params) {
  validate_params(params);
  require(params.causal_mask == mask::strict, "params.causal_mask",
          "the normalisation integral is defined for the strict mask (bounded mu) only");
  validate_sequence<double>(past, "past");
  require(past.cols() == 1, "past", "p = 1 expected, got ", past.cols(), " columns");
  validate_heads(heads, 1);
}

// The sequence (past; u), (n + 1, 1).
inline matrix<double> with_token(const Eigen::Ref<const matrix<double>>& past, double u) {
  matrix<double> U(past.rows() + 1, 1);
  U.topRows(past.rows()) = past;
  U(past.rows(), 0) = u;
  return U;
}

}  // namespace detail

// J(u) of the new token u after `past` (p = 1, strict mask).
inline double p1_jacobian(const Eigen::Ref<const matrix<double>>& past, const heads<double>& heads, double u,
                          const attention_params& params = {}) {
  detail::validate_p1(past, heads, params);
  detail::require(std::isfinite(u), "u", "must be finite, got ", u);
  return jacobian_blocks<double>(detail::with_token(past, u), heads, params).back()(0, 0);
}

// e(u) = u - mu(u) of the new token u after `past` (p = 1, strict mask).
inline double p1_residual(const Eigen::Ref<const matrix<double>>& past, const heads<double>& heads, double u,
                          const attention_params& params = {}) {
  detail::validate_p1(past, heads, params);
  detail::require(std::isfinite(u), "u", "must be finite, got ", u);
  return u - attention_forward<double>(detail::with_token(past, u), heads, params).mu(past.rows(), 0);
}

// The normalisation integral of N(e(u); 0, sigma^2) |J(u)| over the real line, with the minimum
// and the zeros of J.
inline normalisation_report p1_normalisation(const Eigen::Ref<const matrix<double>>& past, const heads<double>& heads,
                                             double sigma, const attention_params& params = {},
                                             const normalisation_options& opts = {}) {
  using boost::math::tools::brent_find_minima;
  detail::validate_p1(past, heads, params);
  detail::require(std::isfinite(sigma) && sigma > 0, "sigma", "must be finite and > 0, got ", sigma);
  detail::require(opts.grid >= 3, "opts.grid", "at least 3 points, got ", opts.grid);
  detail::require(std::isfinite(opts.tolerance) && opts.tolerance > 0, "opts.tolerance", "must be > 0, got ",
                  opts.tolerance);
  const auto J = [&](double u) {
    return jacobian_blocks<double>(detail::with_token(past, u), heads, params).back()(0, 0);
  };
  const auto e = [&](double u) {
    return u - attention_forward<double>(detail::with_token(past, u), heads, params).mu(past.rows(), 0);
  };
  const double norm = 1 / (sigma * std::sqrt(2 * std::numbers::pi));
  const auto density = [&](double u) {
    const double r = e(u) / sigma;
    return norm * std::exp(-0.5 * r * r) * std::abs(J(u));
  };

  // Scales: R_J (where J differs from 1) and L (where the Gaussian mass lies).
  const index n = past.rows();
  double d_min = std::numeric_limits<double>::infinity(), u_max = 0, a_min = std::numeric_limits<double>::infinity(),
         M = 0;
  for (index s = 0; s < n; ++s) {
    u_max = std::max(u_max, std::abs(past(s, 0)));
    for (index r = 0; r < s; ++r)
      if (past(s, 0) != past(r, 0)) d_min = std::min(d_min, std::abs(past(s, 0) - past(r, 0)));
  }
  for (const head<double>& w : heads) {
    const double A = std::abs(detail::logit_matrix(w, temperature_of(w, params))(0, 0));
    if (A > 0) a_min = std::min(a_min, A);
    M += std::abs(detail::value_matrix(w)(0, 0)) * u_max;
  }
  const double R_J = std::isfinite(d_min) && std::isfinite(a_min) ? 50 / (a_min * d_min) : 1.0;
  const double L = std::max(R_J, M + 40 * sigma);

  // Scan J, find its minimum and zeros.
  normalisation_report rep;
  const int bits = std::numeric_limits<double>::digits / 2;
  const int K = opts.grid;
  std::vector<double> x(K), y(K);
  for (int i = 0; i < K; ++i) {
    x[i] = -R_J + 2 * R_J * i / (K - 1);
    y[i] = J(x[i]);
  }
  const auto root = [&](double a, double b) {
    std::uintmax_t it = 200;
    const auto ab = boost::math::tools::toms748_solve(J, a, b, boost::math::tools::eps_tolerance<double>(50), it);
    return 0.5 * (ab.first + ab.second);
  };
  const auto flip = [&](double u) { return -J(u); };
  const double dip = 0.1;  // grid minima below this (maxima above -dip) are refined
  int i_min = 0;
  for (int i = 0; i < K; ++i) {
    if (y[i] < y[i_min]) i_min = i;
    if (y[i] == 0) rep.zeros.push_back(x[i]);
    if (i + 1 < K && ((y[i] < 0 && y[i + 1] > 0) || (y[i] > 0 && y[i + 1] < 0)))
      rep.zeros.push_back(root(x[i], x[i + 1]));
    if (i > 0 && i + 1 < K && y[i] > 0 && y[i] < dip && y[i] < y[i - 1] &&
        y[i] <= y[i + 1]) {  // a dip below 0 in between?
      const auto m = brent_find_minima(J, x[i - 1], x[i + 1], bits);
      if (m.second < 0) rep.zeros.insert(rep.zeros.end(), {root(x[i - 1], m.first), root(m.first, x[i + 1])});
    }
    if (i > 0 && i + 1 < K && y[i] < 0 && y[i] > -dip && y[i] > y[i - 1] && y[i] >= y[i + 1]) {  // a bump above 0?
      const auto m = brent_find_minima(flip, x[i - 1], x[i + 1], bits);
      if (m.second < 0) rep.zeros.insert(rep.zeros.end(), {root(x[i - 1], m.first), root(m.first, x[i + 1])});
    }
  }
  std::sort(rep.zeros.begin(), rep.zeros.end());
  const auto m = brent_find_minima(J, x[std::max(i_min - 1, 0)], x[std::min(i_min + 1, K - 1)], bits);
  rep.argmin_J = m.first;
  rep.min_J = m.second;

  // Integrate piecewise between the kinks, tails by exp_sinh.
  std::vector<double> cuts{-L};
  for (double z : rep.zeros)
    if (z > -L && z < L) cuts.push_back(z);
  cuts.push_back(L);
  for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
    double err = 0;
    rep.integral += boost::math::quadrature::gauss_kronrod<double, 61>::integrate(density, cuts[k], cuts[k + 1], 20,
                                                                                 opts.tolerance, &err);
    rep.error_estimate += err;
  }
  boost::math::quadrature::exp_sinh<double> tail;  // integrates over (0, inf)
  for (const double side : {1.0, -1.0}) {
    double err = 0;
    rep.integral += tail.integrate([&](double t) { return density(side * (L + t)); }, opts.tolerance, &err);
    rep.error_estimate += err;
  }
  return rep;
}

}  // namespace suptok
