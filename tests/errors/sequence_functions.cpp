// Every function of one sequence and a head stack or a layer (docs/errors.md: the likelihood and
// barrier tables, token_margins, analyse; the layer forms of the attention) against every defect
// of its shared arguments: the attention parameters (named as that function's parameter:
// `params`, `attention` beside barrier parameters, `options.attention` in analyse), the sequence
// `U`, the head stack `heads` / `heads[h].*` and the layer `layer.*`. The head-stack attention
// forward and backward are covered by tests/attention/validation.cpp and are not repeated.
#include "error_cases.hpp"

#include <utility>

using namespace suptok;
using namespace suptok::errors_test;

namespace {

// A function under test: its name, the name of its attention parameters in errors, and the call on
// (U, weights, attention parameters) with every other argument valid for U (4, 3).
template <class W>
struct entry_point {
  std::string name;
  std::string params_name;
  std::function<void(const M&, const W&, const attention_params&)> call;
};

std::vector<entry_point<heads<double>>> head_stack_functions() {
  using W = heads<double>;
  const auto Psi = noise_covariance<double>::isotropic(1.0);
  const std::vector<M> dJ(4, M::Identity(3, 3));
  return {
      {"jacobian_blocks", "params", [](const M& U, const W& w, const attention_params& ap) { jacobian_blocks<double>(U, w, ap); }},
      {"residuals", "params", [](const M& U, const W& w, const attention_params& ap) { residuals<double>(U, w, ap); }},
      {"jacobian_blocks_backward", "params",
       [dJ](const M& U, const W& w, const attention_params& ap) { jacobian_blocks_backward<double>(dJ, U, w, ap); }},
      {"log_likelihood", "params",
       [Psi](const M& U, const W& w, const attention_params& ap) { log_likelihood<double>(U, w, Psi, ap); }},
      {"log_likelihood_backward", "params",
       [Psi](const M& U, const W& w, const attention_params& ap) { log_likelihood_backward<double>(U, w, Psi, ap); }},
      {"token_margins", "params", [](const M& U, const W& w, const attention_params& ap) { token_margins<double>(U, w, ap); }},
      {"barrier_per_token", "attention",
       [](const M& U, const W& w, const attention_params& ap) { barrier_per_token<double>(U, w, extended, ap); }},
      {"barrier_penalty", "attention",
       [](const M& U, const W& w, const attention_params& ap) { barrier_penalty<double>(U, w, extended, ap); }},
      {"barrier_penalty_backward", "attention",
       [](const M& U, const W& w, const attention_params& ap) { barrier_penalty_backward<double>(U, w, extended, ap); }},
      {"analyse (heads)", "options.attention",
       [](const M& U, const W& w, const attention_params& ap) {
         analysis_options o;
         o.attention = ap;
         analyse<double>(U, w, o);
       }},
  };
}

std::vector<entry_point<layer<double>>> layer_functions() {
  using W = layer<double>;
  const std::vector<M> dJ(4, M::Identity(3, 3));
  return {
      {"attention_forward (layer)", "params",
       [](const M& U, const W& w, const attention_params& ap) { attention_forward<double>(U, w, ap, true); }},
      {"attention_backward (layer)", "params",
       [](const M& U, const W& w, const attention_params& ap) { attention_backward<double>(M::Ones(4, 3), U, w, ap); }},
      {"jacobian_blocks (layer)", "params", [](const M& U, const W& w, const attention_params& ap) { jacobian_blocks<double>(U, w, ap); }},
      {"residuals (layer)", "params", [](const M& U, const W& w, const attention_params& ap) { residuals<double>(U, w, ap); }},
      {"projected_blocks", "params", [](const M& U, const W& w, const attention_params& ap) { projected_blocks<double>(U, w, ap); }},
      {"jacobian_blocks_backward (layer)", "params",
       [dJ](const M& U, const W& w, const attention_params& ap) { jacobian_blocks_backward<double>(dJ, U, w, ap); }},
      {"barrier_per_token (layer)", "attention",
       [](const M& U, const W& w, const attention_params& ap) { barrier_per_token<double>(U, w, extended, ap); }},
      {"barrier_penalty (layer)", "attention",
       [](const M& U, const W& w, const attention_params& ap) { barrier_penalty<double>(U, w, extended, ap); }},
      {"barrier_penalty_backward (layer)", "attention",
       [](const M& U, const W& w, const attention_params& ap) { barrier_penalty_backward<double>(U, w, extended, ap); }},
      {"analyse (layer)", "options.attention",
       [](const M& U, const W& w, const attention_params& ap) {
         analysis_options o;
         o.attention = ap;
         analyse<double>(U, w, o);
       }},
  };
}

// A defect: a description, the modified (U, weights, params) and the name the error must carry
// (a name starting with '.' is appended to the function's params_name).
template <class W>
struct defect {
  std::string what;
  M U;
  W weights;
  attention_params params;
  std::string argument;
};

template <class W>
std::vector<defect<W>> shared_defects(const W& w) {
  const M U = seq();
  const attention_params ok{mask::strict, 0};
  return {
      {"unknown mask", U, w, {static_cast<mask>(5), 0}, ".causal_mask"},
      {"negative temperature", U, w, {mask::inclusive, -1}, ".temperature"},
      {"NaN temperature", U, w, {mask::strict, NaN}, ".temperature"},
      {"infinite temperature", U, w, {mask::strict, inf}, ".temperature"},
      {"N = 0", M(0, 3), w, ok, "U"},
      {"p = 0", M(4, 0), w, ok, "U"},
      {"NaN in U", with_entry(U, 2, 1, NaN), w, ok, "U"},
      {"-inf in U", with_entry(U, 3, 0, -inf), w, ok, "U"},
      {"params before U", M(0, 3), w, {mask::strict, -1}, ".temperature"},
  };
}

std::vector<defect<heads<double>>> head_defects() {
  using W = heads<double>;
  const M U = seq();
  const W hs = stack();
  auto defects = shared_defects(hs);
  const auto add = [&](std::string what, auto change, std::string argument) {
    W h = hs;
    change(h);
    defects.push_back({std::move(what), U, h, {}, std::move(argument)});
  };
  add("no heads", [](W& h) { h.clear(); }, "heads");
  add("W_Q of p = 4", [](W& h) { h[1].W_Q = M::Ones(2, 4); }, "heads[1].W_Q");
  add("d_k = 0", [](W& h) {
    h[0].W_Q = M(0, 3);
    h[0].W_K = M(0, 3);
  }, "heads[0].W_Q");
  add("W_K with 3 rows, d_k = 2", [](W& h) { h[1].W_K = M::Ones(3, 3); }, "heads[1].W_K");
  add("W_V of p = 2", [](W& h) { h[0].W_V = M::Ones(3, 2); }, "heads[0].W_V");
  add("d_v = 0", [](W& h) {
    h[1].W_V = M(0, 3);
    h[1].W_O = M(3, 0);
  }, "heads[1].W_V");
  add("W_O of (2, 3), (3, 3) expected", [](W& h) { h[0].W_O = M::Ones(2, 3); }, "heads[0].W_O");
  add("NaN in W_Q", [](W& h) { h[1].W_Q(1, 2) = NaN; }, "heads[1].W_Q");
  add("inf in W_K", [](W& h) { h[0].W_K(0, 0) = inf; }, "heads[0].W_K");
  add("NaN in W_V", [](W& h) { h[1].W_V(2, 1) = NaN; }, "heads[1].W_V");
  add("-inf in W_O", [](W& h) { h[0].W_O(2, 2) = -inf; }, "heads[0].W_O");
  defects.push_back({"U before heads", M(4, 0), W{}, {}, "U"});
  return defects;
}

std::vector<defect<layer<double>>> layer_defects() {
  using W = layer<double>;
  const M U = seq();
  const W base = gqa_layer();
  auto defects = shared_defects(base);
  const auto add = [&](std::string what, auto change, std::string argument) {
    W l = base;
    change(l);
    defects.push_back({std::move(what), U, l, {}, std::move(argument)});
  };
  add("no query heads", [](W& l) { l.W_Q.clear(); }, "layer.W_Q");
  add("no key heads", [](W& l) { l.W_K.clear(); }, "layer.W_K");
  add("3 key heads for 4 query heads", [](W& l) { l.W_K.push_back(l.W_K[0]); }, "layer.W_K");
  add("3 value heads for 2 key heads", [](W& l) { l.W_V.push_back(l.W_V[0]); }, "layer.W_V");
  add("3 output blocks for 4 query heads", [](W& l) { l.W_O.pop_back(); }, "layer.W_O");
  add("NaN rotary base", [](W& l) { l.rope_theta = NaN; }, "layer.rope_theta");
  add("negative rotary base", [](W& l) { l.rope_theta = -1; }, "layer.rope_theta");
  add("d_k = 0", [](W& l) { l.W_K[1] = M(0, 3); }, "layer.W_K[1]");
  add("odd d_k with rotary embeddings", [](W& l) { l.W_K[0] = M::Ones(3, 3); }, "layer.W_K[0]");
  add("W_K of p = 4", [](W& l) {
    l.rope_theta = 0;
    l.W_K[0] = M::Ones(2, 4);
  }, "layer.W_K[0]");
  add("inf in W_K", [](W& l) { l.W_K[1](1, 1) = inf; }, "layer.W_K[1]");
  add("d_v = 0", [](W& l) { l.W_V[1] = M(0, 3); }, "layer.W_V[1]");
  add("W_V of p = 4", [](W& l) { l.W_V[0] = M::Ones(3, 4); }, "layer.W_V[0]");
  add("NaN in W_V", [](W& l) { l.W_V[1](2, 2) = NaN; }, "layer.W_V[1]");
  add("W_Q with d_k = 4 in a d_k = 2 group", [](W& l) { l.W_Q[2] = M::Ones(4, 3); }, "layer.W_Q[2]");
  add("NaN in W_Q", [](W& l) { l.W_Q[3](0, 1) = NaN; }, "layer.W_Q[3]");
  add("W_O with d_v = 2", [](W& l) { l.W_O[1] = M::Ones(3, 2); }, "layer.W_O[1]");
  add("-inf in W_O", [](W& l) { l.W_O[0](2, 0) = -inf; }, "layer.W_O[0]");
  add("3 query biases for 4 heads", [](W& l) { l.b_Q.pop_back(); }, "layer.b_Q");
  add("NaN in b_Q", [](W& l) { l.b_Q[0](1) = NaN; }, "layer.b_Q[0]");
  add("3 key biases for 2 heads", [](W& l) { l.b_K.push_back(l.b_K[0]); }, "layer.b_K");
  add("b_K of 3 entries, d_k = 2", [](W& l) { l.b_K[1] = V::Ones(3); }, "layer.b_K[1]");
  add("1 value bias for 2 heads", [](W& l) { l.b_V.pop_back(); }, "layer.b_V");
  add("inf in b_V", [](W& l) { l.b_V[0](2) = inf; }, "layer.b_V[0]");
  add("b_O of 2 entries, p = 3", [](W& l) { l.b_O = V::Ones(2); }, "layer.b_O");
  add("NaN in b_O", [](W& l) { l.b_O(0) = NaN; }, "layer.b_O");
  defects.push_back({"U before the layer", M(4, 0), W{}, {}, "U"});
  return defects;
}

template <class W>
void check_all(const std::vector<entry_point<W>>& functions, const std::vector<defect<W>>& defects, const W& valid) {
  for (const auto& f : functions) {
    check_valid(f.name, [&] { f.call(seq(), valid, attention_params{mask::strict, 0}); });
    check_valid(f.name + ", inclusive mask, tau = 2", [&] { f.call(seq(), valid, attention_params{mask::inclusive, 2}); });
    std::vector<error_case> cases;
    for (const auto& d : defects) {
      const std::string argument = d.argument[0] == '.' ? f.params_name + d.argument : d.argument;
      cases.push_back({f.name + ": " + d.what, argument, [&f, &d] { f.call(d.U, d.weights, d.params); }});
    }
    check_cases(cases);
  }
}

}  // namespace

TEST_CASE("functions of a sequence and a head stack name the bad argument", "[errors][heads]") {
  check_all(head_stack_functions(), head_defects(), stack());
}

TEST_CASE("functions of a sequence and a layer name the bad argument", "[errors][layer]") {
  check_all(layer_functions(), layer_defects(), gqa_layer());
}
