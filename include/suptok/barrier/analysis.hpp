// suptok/barrier/analysis.hpp: one call for the per-token barrier geometry of a layer on a
// sequence (docs/math.md section 3), reference path: analyse(U, layer, options).
//
// Per token t (0-based):
//   sign, log_abs_det   det J_t = sign exp(log_abs_det), from one pivoted LU: of J_t (p, p) in the
//                       general form, of I - K_t (n, n) in the projected form (equal by Sylvester)
//   b                   the barrier b_t = f(det J_t) under options.barrier (policy.hpp)
//   sigma_min, kappa    sigma_min(J_t) and sigma_max / sigma_min of the (p, p) block J_t
//   signed_margin       sign(det J_t) sigma_min(J_t): the distance from J_t to the nearest singular
//                       matrix, negative on the infeasible side (det J_t < 0), so that sorting by it
//                       ranks infeasible tokens first, then feasible ones by closeness to the barrier
//   support             whether t is selected by options.support (applied to the signed margins)
// Totals: the penalty (mean b_t over the non-trivial tokens, as barrier_penalty), the number of
// support tokens and of infeasible tokens (det J_t <= 0).
//
// Margins: options.margins = estimate (default) takes sigma_min and sigma_max by inverse and power
// iteration on the LU already computed (barrier/singular_values.hpp; no SVD, O(n^2) per step);
// exact forms J_t and takes its SVD (Eigen::BDCSVD: divide and conquer, one-sided Jacobi below 16;
// O(p^3) per token). In the projected form
// J_t^{-1} x = x + W (I - K_t)^{-1} Y_t x (Woodbury), so no (p, p) factorisation is needed.
// Form: options.form = automatic picks the cheaper of the general (p, p) form and the projected form
// by the operation counts of choose_form below; either can be forced. Trivial tokens (strict mask,
// t < 2: J_t = I) are reported (det 1, margin 1) but never selected as support tokens unless
// options.include_trivial is set.
#pragma once

#include <string>
#include <vector>

#include <Eigen/LU>
#include <Eigen/SVD>

#include "../likelihood/projected.hpp"
#include "penalty.hpp"
#include "singular_values.hpp"
#include "support_tokens.hpp"

namespace suptok {

enum class margin_method { estimate, exact };

// Which tokens are support tokens: the k smallest signed margins, every signed margin <= delta, or
// the smallest set carrying a fraction q of the barrier (support_tokens.hpp).
struct support_rule {
  enum class kind { smallest, within, barrier_fraction } rule = kind::smallest;
  index k = 0;
  double delta = 0;
  double q = 0;

  static support_rule smallest(index k) { return {kind::smallest, k, 0, 0}; }
  static support_rule within(double delta) { return {kind::within, 0, delta, 0}; }
  static support_rule barrier_fraction(double q) { return {kind::barrier_fraction, 0, 0, q}; }
};

struct analysis_options {
  attention_params attention{};
  barrier_params barrier{extension::extended};
  jacobian_form form = jacobian_form::automatic;
  margin_method margins = margin_method::estimate;
  iteration_params iteration{};
  support_rule support = support_rule::within(0.1);
  bool include_trivial = false;
};

template <class S>
struct token_analysis {
  index position;
  int sign;            // sign of det J_t: -1, 0, +1
  S log_abs_det;       // log |det J_t|
  S b;                 // barrier b_t
  S signed_margin;     // sign(det J_t) sigma_min(J_t)
  S sigma_min;         // sigma_min(J_t)
  S kappa;             // sigma_max / sigma_min (+inf when singular)
  bool support;        // selected by the support rule
};

template <class S>
struct analysis {
  std::vector<token_analysis<S>> tokens;  // one row per position t = 0..N-1
  S penalty;                              // mean b_t over the non-trivial tokens
  index support_count = 0;
  index infeasible_count = 0;             // tokens with det J_t <= 0
  jacobian_form form = jacobian_form::general;  // the form that was used
};

namespace detail {

inline void validate_analysis(const analysis_options& o) {
  validate_params(o.attention, "options.attention");
  validate_barrier(o.barrier, "options.barrier");
  validate_form(o.form, "options.form");
  require(o.margins == margin_method::estimate || o.margins == margin_method::exact, "options.margins",
          "unknown margin method");
  validate_iteration(o.iteration, "options.iteration");
  const support_rule& r = o.support;
  require(r.rule == support_rule::kind::smallest || r.rule == support_rule::kind::within ||
              r.rule == support_rule::kind::barrier_fraction,
          "options.support", "unknown rule");
}

// sigma_min and sigma_max of J from its four operators (exact SVD of `explicit_J` when asked).
template <class S>
struct extreme_singular_values {
  S min, max;
};

template <class S, class Explicit, class Apply, class ApplyT, class Solve, class SolveT>
extreme_singular_values<S> singular_values_of(index n, int sign, const analysis_options& o, Explicit&& explicit_J,
                                              Apply&& apply, ApplyT&& apply_t, Solve&& solve, SolveT&& solve_t) {
  if (o.margins == margin_method::exact) {
    using dense = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
    const vector<S> s = Eigen::BDCSVD<dense>(dense(explicit_J())).singularValues();
    return {s(s.size() - 1), s(0)};
  }
  const S max = largest_singular_value<S>(n, apply, apply_t, o.iteration);
  if (sign == 0) return {S(0), max};
  return {smallest_singular_value<S>(n, solve, solve_t, o.iteration), max};
}

// The row of token t. sigma_max may round to +inf (a finite J_t whose norm exceeds the scalar's
// range; kappa is then +inf); a sigma_min that is not finite, or a NaN, is an error naming U.
template <class S>
token_analysis<S> token_row(index t, const signed_log_det<S>& ld, const extreme_singular_values<S>& sv,
                            const barrier_params& barrier) {
  const S inf = S(std::numeric_limits<double>::infinity());
  if (!is_finite(sv.min) || !(is_finite(sv.max) || sv.max == inf))
    throw error("U", message("the singular values of J_t of token ", t, " (0-based) left the range of the scalar type ",
                             "(sigma_min = ", to_double(sv.min), ", sigma_max = ", to_double(sv.max),
                             "); scale the sequence or the weights down, or use a wider scalar type"));
  return {t, ld.sign, ld.log_abs, barrier_from_log_det_unchecked(ld, barrier), S(ld.sign) * sv.min, sv.min,
          sv.min > S(0) ? sv.max / sv.min : inf, false};
}

// Marks the support tokens and fills the totals.
template <class S>
void finish_analysis(analysis<S>& r, const analysis_options& o) {
  const index N = static_cast<index>(r.tokens.size());
  const mask m = o.attention.causal_mask;
  const index first = o.include_trivial ? 0 : std::min(first_nontrivial(m), N);
  std::vector<S> margins, b;
  for (const token_analysis<S>& row : r.tokens) {
    margins.push_back(row.signed_margin);
    b.push_back(row.b);
    if (row.sign <= 0) ++r.infeasible_count;
  }
  const index counted = counted_tokens(N, m);
  r.penalty = counted == 0 ? S(0) : counted_sum<S>(b, m) / S(counted);
  const support_rule& rule = o.support;
  support_set<S> chosen;
  if (rule.rule == support_rule::kind::smallest)
    chosen = support_smallest<S>(margins, std::min(rule.k, N - first), first);
  else if (rule.rule == support_rule::kind::within)
    chosen = support_within<S>(margins, S(rule.delta), first);
  else
    chosen = support_barrier_fraction<S>(margins, b, rule.q, first);
  for (index t : chosen.positions) r.tokens[static_cast<std::size_t>(t)].support = true;
  r.support_count = static_cast<index>(chosen.positions.size());
}

template <class S>
void analyse_general(analysis<S>& r, const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                     const analysis_options& o) {
  const index p = U.cols();
  for_each_jacobian_block<S>(U, layer, o.attention, [&](index t, const matrix<S>& J) {
    const Eigen::PartialPivLU<matrix<S>> lu(J);
    const signed_log_det<S> ld = log_det<S>(lu);
    require_finite_log_det(ld, "U", t);
    const auto sv = singular_values_of<S>(
        p, ld.sign, o, [&] { return J; }, [&](const vector<S>& x) -> vector<S> { return J * x; },
        [&](const vector<S>& x) -> vector<S> { return J.transpose() * x; },
        [&](const vector<S>& x) -> vector<S> { return lu.solve(x); },
        [&](const vector<S>& x) -> vector<S> { return lu.transpose().solve(x); });
    r.tokens.push_back(token_row<S>(t, ld, sv, o.barrier));
  });
}

template <class S>
void analyse_projected(analysis<S>& r, const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                       const analysis_options& o) {
  const index p = U.cols();
  const projected_products<S> pp = projected_products_of(layer, o.attention);
  const matrix<S>& W = pp.W;  // (p, n)
  for_each_projected_block<S>(U, layer, o.attention, pp, true, [&](index t, const matrix<S>& K, const matrix<S>& Y) {
    const Eigen::PartialPivLU<matrix<S>> lu(matrix<S>::Identity(K.rows(), K.cols()) - K);  // I - K_t
    const signed_log_det<S> ld = log_det<S>(lu);
    require_finite_log_det(ld, "U", t);
    const auto sv = singular_values_of<S>(
        p, ld.sign, o, [&] { return matrix<S>(matrix<S>::Identity(p, p) - W * Y); },
        [&](const vector<S>& x) -> vector<S> { return x - W * (Y * x); },                      // J x
        [&](const vector<S>& x) -> vector<S> { return x - Y.transpose() * (W.transpose() * x); },  // J^T x
        [&](const vector<S>& x) -> vector<S> {  // J^{-1} x
          const vector<S> z = lu.solve(vector<S>(Y * x));
          return x + W * z;
        },
        [&](const vector<S>& x) -> vector<S> {  // J^{-T} x
          const vector<S> z = lu.transpose().solve(vector<S>(W.transpose() * x));
          return x + Y.transpose() * z;
        });
    r.tokens.push_back(token_row<S>(t, ld, sv, o.barrier));
  });
}

// Every argument of analyse(U, layer, options), named as the caller wrote it.
template <class S>
void validate_analyse_call(const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer, const analysis_options& o) {
  validate_analysis(o);
  validate_layer_attention<S>(U, layer, o.attention, "U", "options.attention");
  const support_rule& rule = o.support;
  require(rule.rule != support_rule::kind::smallest || rule.k >= 0, "options.support.k", "must be >= 0, got ",
          rule.k);
  require(rule.rule != support_rule::kind::within || (std::isfinite(rule.delta) && rule.delta >= 0),
          "options.support.delta", "must be finite and >= 0, got ", rule.delta);
  require(rule.rule != support_rule::kind::barrier_fraction || (std::isfinite(rule.q) && rule.q > 0 && rule.q <= 1),
          "options.support.q", "must lie in (0, 1], got ", rule.q);
}

// analyse's steps for a backend: validation, the form, the rows (the general form on the reference
// path; the projected form by `projected(r, U, layer, options)`), the support tokens and totals.
template <class S, class Projected>
analysis<S> analyse_with(const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer, const analysis_options& options,
                         Projected&& projected) {
  validate_analyse_call<S>(U, layer, options);
  analysis<S> r;
  r.tokens.reserve(static_cast<std::size_t>(U.rows()));
  r.form = resolve_form(options.form, U.rows(), layer);
  if (r.form == jacobian_form::projected)
    projected(r, U, layer, options);
  else
    analyse_general<S>(r, U, layer, options);
  finish_analysis<S>(r, options);
  return r;
}

}  // namespace detail

// The per-token table and totals of one layer on one sequence U (N, p).
template <class S>
analysis<S> analyse(const_ref<S> U, const layer<S>& layer, const analysis_options& options = {}) {
  return detail::analyse_with<S>(U, layer, options, detail::analyse_projected<S>);
}

// The same for a plain head stack.
template <class S>
analysis<S> analyse(const_ref<S> U, const heads<S>& heads, const analysis_options& options = {}) {
  detail::validate_attention<S>(U, heads, options.attention, "U", "options.attention");
  return analyse<S>(U, as_layer(heads), options);
}

}  // namespace suptok
