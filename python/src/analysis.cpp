// python/src/analysis.cpp: analyse() (barrier/analysis.hpp) of a layer on each sequence of a batch,
// float and double, as one table (native.hpp).
#include <suptok/barrier/analysis.hpp>

#include "to_library.hpp"

namespace suptok_python {

namespace {

template <class S>
suptok::layer<S> layer_of(const weights<S>& w) {
  suptok::layer<S> l;
  l.W_Q = w.W_Q;
  l.W_K = w.W_K;
  l.W_V = w.W_V;
  l.W_O = w.W_O;
  l.b_Q = w.b_Q;
  l.b_K = w.b_K;
  l.b_V = w.b_V;
  l.b_O = w.b_O;
  l.rope_theta = w.rope_theta;
  return l;
}

suptok::support_rule support_of(const analysis_settings& s) {
  suptok::detail::require(s.support == "smallest" || s.support == "within" || s.support == "mass", "support",
                          "expected the rule 'k', 'delta' or 'mass', got '", s.support, "'");
  if (s.support == "smallest") {
    suptok::detail::require(s.support_value >= 0 && s.support_value == double(suptok::index(s.support_value)),
                            "support", "k must be a non-negative integer, got ", s.support_value);
    return suptok::support_rule::smallest(suptok::index(s.support_value));
  }
  return s.support == "within" ? suptok::support_rule::within(s.support_value)
                               : suptok::support_rule::barrier_fraction(s.support_value);
}

suptok::analysis_options options_of(const analysis_settings& s) {
  suptok::analysis_options o;
  o.attention = attention_params_of(s);
  o.barrier = barrier_params_of(s);
  suptok::detail::require(s.margins == "estimate" || s.margins == "exact", "margins",
                          "expected 'estimate' or 'exact', got '", s.margins, "'");
  o.margins = s.margins == "exact" ? suptok::margin_method::exact : suptok::margin_method::estimate;
  suptok::detail::require(s.form == "automatic" || s.form == "general" || s.form == "projected", "form",
                          "expected 'automatic', 'general' or 'projected', got '", s.form, "'");
  o.form = s.form == "general"     ? suptok::jacobian_form::general
           : s.form == "projected" ? suptok::jacobian_form::projected
                                   : suptok::jacobian_form::automatic;
  o.support = support_of(s);
  o.include_trivial = s.include_trivial;
  return o;
}

}  // namespace

template <class S>
analysis_table<S> analyse(const std::vector<matrix<S>>& Us, const weights<S>& w, const analysis_settings& s) {
  const suptok::analysis_options o = options_of(s);
  const suptok::layer<S> l = layer_of(w);
  analysis_table<S> t;
  S penalty_sum = S(0);
  for (const matrix<S>& U : Us) {
    const suptok::analysis<S> r = suptok::analyse<S>(U, l, o);
    for (const suptok::token_analysis<S>& row : r.tokens) {
      t.position.push_back(row.position);
      t.sign.push_back(row.sign);
      t.log_det.push_back(row.log_abs_det);
      t.b.push_back(row.b);
      t.signed_margin.push_back(row.signed_margin);
      t.sigma_min.push_back(row.sigma_min);
      t.kappa.push_back(row.kappa);
      t.support.push_back(row.support ? 1 : 0);
    }
    const std::int64_t counted = suptok::detail::counted_tokens(U.rows(), o.attention.causal_mask);
    penalty_sum += r.penalty * S(counted);  // pooled: the mean over every counted token of the batch
    t.counted_tokens += counted;
    t.support_count += r.support_count;
    t.infeasible_count += r.infeasible_count;
    t.form = suptok::to_string(r.form);
  }
  t.penalty = t.counted_tokens == 0 ? S(0) : penalty_sum / S(t.counted_tokens);
  return t;
}

template analysis_table<float> analyse<float>(const std::vector<matrix<float>>&, const weights<float>&,
                                              const analysis_settings&);
template analysis_table<double> analyse<double>(const std::vector<matrix<double>>&, const weights<double>&,
                                                const analysis_settings&);

}  // namespace suptok_python
