// The barrier table of docs/errors.md beyond the shared arguments (sequence_functions.cpp): the
// barrier parameters `barrier.*` of every function that takes them (checked first, both eps and
// z0 whatever the policy), the batch and layer-stack forms, one block, the scalar forms, the
// support-token rules, the p = 1 normalisation functions, and the infeasible tokens that the
// exact policy's gradients report during the computation.
#include "error_cases.hpp"

using namespace suptok;
using namespace suptok::errors_test;

namespace {

// Invalid barrier parameters and the name each must produce.
struct bad_barrier {
  std::string what;
  barrier_params barrier;
  std::string argument;
};
const std::vector<bad_barrier> bad_barriers = {
    {"unknown policy", {static_cast<extension>(3), 1e-8, 1e-2}, "barrier.policy"},
    {"eps = 0 under clamp", {extension::clamp, 0, 1e-2}, "barrier.eps"},
    {"NaN eps under extended", {extension::extended, NaN, 1e-2}, "barrier.eps"},
    {"infinite z0 under exact", {extension::exact, 1e-8, inf}, "barrier.z0"},
    {"negative z0 under clamp", {extension::clamp, 1e-8, -1}, "barrier.z0"},
};

// One head, p = 1, strict mask: J_2 = 1 - V A var(u_0, u_1) = 1 - 2 * 1 * 1 = -1 for
// U = (1, -1, 0), so token 2 is infeasible.
heads<double> folding_head() { return scalar_heads(1, 1, 2, 1); }
M folding_sequence() {
  M U(3, 1);
  U << 1, -1, 0;
  return U;
}

}  // namespace

TEST_CASE("barrier parameters are checked first by every function that takes them", "[errors][barrier]") {
  const M U = seq();
  const heads<double> hs = stack();
  const layer<double> l = gqa_layer();
  const std::vector<M> Us{seq(4, 3, 1), seq(3, 3, 2)};
  const M J = M::Identity(3, 3);
  const std::vector<barrier_layer<double>> layers{{U, hs}};
  // Each call also has a bad sequence or block where it takes one: the barrier is reported first.
  const M bad_U = M(0, 3);
  const std::vector<M> bad_Us{};
  const std::vector<barrier_layer<double>> no_layers{};
  const std::vector<std::pair<std::string, std::function<void(const barrier_params&)>>> functions = {
      {"barrier_per_token", [&](const barrier_params& b) { barrier_per_token<double>(bad_U, hs, b); }},
      {"barrier_penalty", [&](const barrier_params& b) { barrier_penalty<double>(bad_U, hs, b); }},
      {"barrier_penalty_backward", [&](const barrier_params& b) { barrier_penalty_backward<double>(bad_U, hs, b); }},
      {"barrier_per_token (layer)", [&](const barrier_params& b) { barrier_per_token<double>(bad_U, l, b); }},
      {"barrier_penalty (layer)", [&](const barrier_params& b) { barrier_penalty<double>(bad_U, l, b); }},
      {"barrier_penalty_backward (layer)", [&](const barrier_params& b) { barrier_penalty_backward<double>(bad_U, l, b); }},
      {"barrier_penalty_batch", [&](const barrier_params& b) { barrier_penalty_batch<double>(bad_Us, hs, b); }},
      {"barrier_penalty_batch_backward", [&](const barrier_params& b) { barrier_penalty_batch_backward<double>(bad_Us, hs, b); }},
      {"barrier_penalty_layers", [&](const barrier_params& b) { barrier_penalty_layers<double>(no_layers, b); }},
      {"barrier_penalty_layers_backward", [&](const barrier_params& b) { barrier_penalty_layers_backward<double>(no_layers, b); }},
      {"barrier_block", [&](const barrier_params& b) { barrier_block<double>(M(2, 3), b); }},
      {"barrier_block_backward", [&](const barrier_params& b) { barrier_block_backward<double>(M(2, 3), b); }},
      {"barrier_from_log_det", [&](const barrier_params& b) { barrier_from_log_det(signed_log_det<double>{7, 0.0}, b); }},
      {"barrier_slope", [&](const barrier_params& b) { barrier_slope(NaN, b); }},
      {"barrier_value", [&](const barrier_params& b) { barrier_value(0.5, b); }},
  };
  std::vector<error_case> cases;
  for (const auto& f : functions)
    for (const bad_barrier& bad : bad_barriers)
      cases.push_back({f.first + ": " + bad.what, bad.argument, [&f, &bad] { f.second(bad.barrier); }});
  check_cases(cases);
  // barrier_value checks z before the barrier parameters.
  check_cases({{"barrier_value: NaN z before a bad policy", "z",
                [] { barrier_value(NaN, barrier_params{static_cast<extension>(3), 1e-8, 1e-2}); }}});
  check_valid("barrier_penalty_layers", [&] { barrier_penalty_layers<double>(layers, extended); });
  check_valid("barrier_block", [&] { barrier_block<double>(J, extended); });
}

TEST_CASE("the layer penalty functions name an unknown form", "[errors][barrier]") {
  const M U = seq();
  const layer<double> l = gqa_layer();
  const auto bad = static_cast<jacobian_form>(5);
  check_valid("both forms", [&] {
    for (const jacobian_form f : {jacobian_form::general, jacobian_form::projected, jacobian_form::automatic})
      barrier_penalty_backward<double>(U, l, extended, {}, f);
  });
  check_cases({
      {"barrier_per_token", "form", [&] { barrier_per_token<double>(U, l, extended, {}, bad); }},
      {"barrier_penalty", "form", [&] { barrier_penalty<double>(U, l, extended, {}, bad); }},
      {"barrier_penalty_backward", "form", [&] { barrier_penalty_backward<double>(U, l, extended, {}, bad); }},
      {"U before the form", "U", [&] { barrier_per_token<double>(M(0, 3), l, extended, {}, bad); }},
  });
}

TEST_CASE("batch and layer-stack penalties name the batch, the layers and their arguments", "[errors][barrier]") {
  const heads<double> hs = stack();
  // barrier_layer holds references: every sequence and head stack of a stack is a named object.
  const M U0 = seq(4, 3, 1), U1 = seq(3, 3, 2), U_nan = with_entry(seq(3, 3, 2), 0, 0, NaN), empty(0, 3);
  const M U_wide = seq(5, 4, 3);
  const heads<double> no_heads;
  const std::vector<M> Us{U0, U1};
  const heads<double> wide = stack(4);  // heads of p = 4
  heads<double> bad_v = hs;
  bad_v[0].W_V = M::Ones(3, 2);
  check_valid("barrier_penalty_batch", [&] { barrier_penalty_batch<double>(Us, hs, extended); });
  check_valid("barrier_penalty_layers_backward",
              [&] { barrier_penalty_layers_backward<double>({{U0, hs}, {U_wide, wide}}, extended); });
  std::vector<error_case> cases;
  for (bool backward : {false, true}) {
    const std::string tag = backward ? " (backward)" : "";
    const auto batch = [backward, &hs](std::vector<M> Us, attention_params ap = {}) -> std::function<void()> {
      return [=, &hs] {
        if (backward)
          barrier_penalty_batch_backward<double>(Us, hs, extended, ap);
        else
          barrier_penalty_batch<double>(Us, hs, extended, ap);
      };
    };
    const auto stack_of = [backward](std::vector<barrier_layer<double>> layers,
                                     attention_params ap = {}) -> std::function<void()> {
      return [=] {
        if (backward)
          barrier_penalty_layers_backward<double>(layers, extended, ap);
        else
          barrier_penalty_layers<double>(layers, extended, ap);
      };
    };
    const std::vector<error_case> more = {
        {"batch: empty" + tag, "Us", batch({})},
        {"batch: unknown mask" + tag, "attention.causal_mask", batch(Us, {static_cast<mask>(4), 0})},
        {"batch: NaN temperature" + tag, "attention.temperature", batch(Us, {mask::strict, NaN})},
        {"batch: sequence 1 of p = 2" + tag, "Us[1]", batch({U0, seq(3, 2, 4)})},
        {"batch: NaN in sequence 1" + tag, "Us[1]", batch({U0, U_nan})},
        {"batch: empty sequence 0" + tag, "Us[0]", batch({empty, U1})},
        {"batch: no heads" + tag, "heads",
         [backward, Us] {
           if (backward)
             barrier_penalty_batch_backward<double>(Us, heads<double>{}, extended);
           else
             barrier_penalty_batch<double>(Us, heads<double>{}, extended);
         }},
        {"layers: none" + tag, "layers", stack_of({})},
        {"layers: none before bad attention" + tag, "layers", stack_of({}, {mask::strict, -1})},
        {"layers: unknown mask" + tag, "attention.causal_mask", stack_of({{U0, hs}}, {static_cast<mask>(4), 0})},
        {"layers: negative temperature" + tag, "attention.temperature", stack_of({{U0, hs}, {U1, hs}}, {mask::strict, -2})},
        {"layers: empty U of layer 1" + tag, "layers[1].U", stack_of({{U0, hs}, {empty, hs}})},
        {"layers: NaN in U of layer 1" + tag, "layers[1].U", stack_of({{U0, hs}, {U_nan, hs}})},
        {"layers: no heads in layer 0" + tag, "layers[0].heads", stack_of({{U0, no_heads}})},
        {"layers: W_V of p = 2 in layer 1" + tag, "layers[1].heads[0].W_V", stack_of({{U0, hs}, {U1, bad_v}})},
        {"layers: heads of p = 4 on U of p = 3" + tag, "layers[0].heads[0].W_Q", stack_of({{U0, wide}})},
    };
    cases.insert(cases.end(), more.begin(), more.end());
  }
  check_cases(cases);
}

TEST_CASE("exact policy: the gradients name the sequence of an infeasible token", "[errors][barrier]") {
  const barrier_params exact{extension::exact, 1e-8, 1e-2};
  const M U = folding_sequence();
  const heads<double> hs = folding_head();
  REQUIRE(jacobian_blocks<double>(U, hs)[2](0, 0) == -1.0);
  const M feasible = M::Constant(3, 1, 0.25);  // equal tokens: J_2 = 1
  const M U_long = M::Constant(4, 1, 0.25);
  const layer<double> l = as_layer(hs);
  const std::vector<M> Us{feasible, U};
  check_valid("the values are +inf, not errors", [&] {
    CHECK(barrier_penalty<double>(U, hs, exact) == inf);
    CHECK(barrier_penalty_batch<double>(Us, hs, exact) == inf);
  });
  const auto names_token_2 = [](std::function<void()> call) { return saying("token 2 (0-based) is infeasible", call); };
  check_cases({
      {"penalty backward", "U", names_token_2([&] { barrier_penalty_backward<double>(U, hs, exact); })},
      {"penalty backward (layer)", "U", names_token_2([&] { barrier_penalty_backward<double>(U, l, exact); })},
      {"penalty backward (layer, projected form)", "U",
       names_token_2([&] { barrier_penalty_backward<double>(U, l, exact, {}, jacobian_form::projected); })},
      {"batch backward, sequence 1", "Us[1]", names_token_2([&] { barrier_penalty_batch_backward<double>(Us, hs, exact); })},
      {"layers backward, layer 1", "layers[1].U",
       names_token_2([&] { barrier_penalty_layers_backward<double>({{U_long, hs}, {U, hs}}, exact); })},
      {"one block of det -1", "J", [&] { barrier_block_backward<double>(M::Constant(1, 1, -1), exact); }},
      {"one singular block", "J", [&] { barrier_block_backward<double>(M::Zero(2, 2), exact); }},
  });
}

// Finite inputs whose attention logits overflow a double (|u| ~ 1e200, logits ~ 1e400): every
// function that forms J_t itself names the sequence and says which J_t is not finite, instead of
// returning NaN (docs/errors.md, "Non-finite values").
TEST_CASE("an overflowing J_t names its sequence", "[errors][barrier]") {
  const M U = seq(), huge = 1e200 * seq(4, 3, 12);
  const heads<double> hs = stack();
  const layer<double> l = as_layer(hs);
  const auto Psi = noise_covariance<double>::isotropic(1.0);
  REQUIRE(!jacobian_blocks<double>(huge, hs)[3].allFinite());
  const auto not_finite = [](std::function<void()> call) {
    return saying(") is not finite: the finite inputs overflowed", call);
  };
  check_cases({
      {"barrier_per_token", "U", not_finite([&] { barrier_per_token<double>(huge, hs, extended); })},
      {"barrier_penalty (layer)", "U", not_finite([&] { barrier_penalty<double>(huge, l, extended); })},
      {"barrier_penalty_backward", "U", not_finite([&] { barrier_penalty_backward<double>(huge, hs, extended); })},
      {"batch, sequence 1", "Us[1]",
       not_finite([&] { barrier_penalty_batch<double>(std::vector<M>{U, huge}, hs, extended); })},
      {"batch backward, sequence 1", "Us[1]",
       not_finite([&] { barrier_penalty_batch_backward<double>(std::vector<M>{U, huge}, hs, extended); })},
      {"layers, layer 1", "layers[1].U", not_finite([&] { barrier_penalty_layers<double>({{U, hs}, {huge, hs}}, extended); })},
      {"layers backward, layer 1", "layers[1].U",
       not_finite([&] { barrier_penalty_layers_backward<double>({{U, hs}, {huge, hs}}, extended); })},
      {"token_margins", "U", not_finite([&] { token_margins<double>(huge, hs); })},
      {"analyse", "U", not_finite([&] { analyse<double>(huge, l); })},
      {"log_likelihood", "U", not_finite([&] { log_likelihood<double>(huge, hs, Psi); })},
      {"log_likelihood_backward", "U", not_finite([&] { log_likelihood_backward<double>(huge, hs, Psi); })},
  });
}

TEST_CASE("block functions name J; the scalar forms name ld and z", "[errors][barrier]") {
  const M nonsquare = M::Ones(2, 3), empty(0, 0), with_nan = with_entry(M::Identity(2, 2), 1, 0, NaN);
  std::vector<error_case> cases;
  const std::vector<std::pair<std::string, std::function<void(const M&)>>> functions = {
      {"barrier_block", [](const M& J) { barrier_block<double>(J, extended); }},
      {"barrier_block_backward", [](const M& J) { barrier_block_backward<double>(J, extended); }},
      {"cofactor", [](const M& J) { cofactor<double>(J); }},
      {"block_margin", [](const M& J) { block_margin<double>(J); }},
  };
  for (const auto& f : functions) {
    check_valid(f.first, [&f] { f.second(M::Identity(2, 2)); });
    cases.push_back({f.first + ": (2, 3)", "J", [&f, &nonsquare] { f.second(nonsquare); }});
    cases.push_back({f.first + ": (0, 0)", "J", [&f, &empty] { f.second(empty); }});
    cases.push_back({f.first + ": NaN entry", "J", [&f, &with_nan] { f.second(with_nan); }});
    cases.push_back({f.first + ": -inf entry", "J", [&f] { f.second(M::Constant(1, 1, -inf)); }});
  }
  cases.push_back({"barrier_from_log_det: sign 0 is valid, sign -3 is not", "ld",
                   [] { barrier_from_log_det(signed_log_det<double>{-3, 0.0}, extended); }});
  cases.push_back({"barrier_from_log_det: +inf log|det|", "ld",
                   [] { barrier_from_log_det(signed_log_det<double>{1, inf}, extended); }});
  cases.push_back({"barrier_value: -inf z", "z", [] { barrier_value(-inf, extended); }});
  cases.push_back({"barrier_slope: negative z, exact", "z",
                   [] { barrier_slope(-0.5, barrier_params{extension::exact, 1e-8, 1e-2}); }});
  check_cases(cases);
  check_valid("barrier_slope: negative z, clamp", [] { barrier_slope(-0.5, barrier_params{extension::clamp, 1e-8, 1e-2}); });
}

TEST_CASE("support-token rules name margins, first and their parameter", "[errors][barrier][support]") {
  const std::vector<double> margins{0.5, -0.1, 0.2, 0.9}, b{1, 2, 3, 4};
  const std::vector<double> nan_at_2{0.5, -0.1, NaN, 0.9}, inf_at_3{0.5, -0.1, 0.2, inf};
  check_cases({
      {"smallest: NaN margin", "margins[2]", [&] { support_smallest(nan_at_2, 1); }},
      {"smallest: negative first", "first", [&] { support_smallest(margins, 1, -1); }},
      {"smallest: k beyond the eligible tokens", "k", [&] { support_smallest(margins, 3, 2); }},
      {"smallest: margins before k", "margins[3]", [&] { support_smallest(inf_at_3, -1); }},
      {"within: inf margin", "margins[3]", [&] { support_within(inf_at_3, 0.1); }},
      {"within: first beyond N", "first", [&] { support_within(margins, 0.1, 5); }},
      {"within: NaN delta", "delta", [&] { support_within(margins, NaN); }},
      {"fraction: NaN margin", "margins[2]", [&] { support_barrier_fraction(nan_at_2, b, 0.5); }},
      {"fraction: negative first", "first", [&] { support_barrier_fraction(margins, b, 0.5, -2); }},
      {"fraction: -inf b", "b[0]", [&] { support_barrier_fraction(margins, std::vector<double>{-inf, 2, 3, 4}, 0.5); }},
      {"fraction: NaN q", "q", [&] { support_barrier_fraction(margins, b, NaN); }},
  });
  check_valid("fraction: +inf b", [&] { support_barrier_fraction(margins, std::vector<double>{inf, 2, 3, 4}, 0.5); });
}

TEST_CASE("the p = 1 normalisation functions name params, past, heads and u", "[errors][barrier][normalisation]") {
  const M past = (M(2, 1) << 1, -1).finished();
  const heads<double> hs = scalar_heads(1, 1, 0.5, 1);
  heads<double> wide = hs;
  wide[0].W_Q = M::Ones(1, 2);  // p = 2
  heads<double> nan_o = hs;
  nan_o[0].W_O(0, 0) = NaN;
  const attention_params strict{mask::strict, 1};
  std::vector<error_case> cases;
  const std::vector<std::pair<std::string, std::function<void(const M&, const heads<double>&, double, attention_params)>>>
      functions = {
          {"p1_jacobian", [](const M& p, const heads<double>& h, double u, attention_params ap) { p1_jacobian(p, h, u, ap); }},
          {"p1_residual", [](const M& p, const heads<double>& h, double u, attention_params ap) { p1_residual(p, h, u, ap); }},
      };
  for (const auto& entry : functions) {
    const std::string& name = entry.first;
    const auto f = entry.second;
    check_valid(name, [&] { f(past, hs, 0.3, strict); });
    cases.push_back({name + ": inclusive mask", "params.causal_mask", [&, f] { f(past, hs, 0.3, {mask::inclusive, 1}); }});
    cases.push_back({name + ": unknown mask", "params.causal_mask", [&, f] { f(past, hs, 0.3, {static_cast<mask>(3), 1}); }});
    cases.push_back({name + ": NaN temperature", "params.temperature", [&, f] { f(past, hs, 0.3, {mask::strict, NaN}); }});
    cases.push_back({name + ": empty past", "past", [&, f] { f(M(0, 1), hs, 0.3, strict); }});
    cases.push_back({name + ": past of 2 columns", "past", [&, f] { f(M::Ones(2, 2), hs, 0.3, strict); }});
    cases.push_back({name + ": inf in past", "past", [&, f] { f(with_entry(past, 0, 0, inf), hs, 0.3, strict); }});
    cases.push_back({name + ": no heads", "heads", [&, f] { f(past, heads<double>{}, 0.3, strict); }});
    cases.push_back({name + ": W_Q of p = 2", "heads[0].W_Q", [&, f] { f(past, wide, 0.3, strict); }});
    cases.push_back({name + ": NaN in W_O", "heads[0].W_O", [&, f] { f(past, nan_o, 0.3, strict); }});
    cases.push_back({name + ": NaN u", "u", [&, f] { f(past, hs, NaN, strict); }});
    cases.push_back({name + ": heads before u", "heads[0].W_O", [&, f] { f(past, nan_o, inf, strict); }});
  }
  cases.push_back({"p1_normalisation: NaN in W_O", "heads[0].W_O", [&] { p1_normalisation(past, nan_o, 1.0, strict); }});
  cases.push_back({"p1_normalisation: infinite sigma", "sigma", [&] { p1_normalisation(past, hs, inf, strict); }});
  cases.push_back({"p1_normalisation: NaN tolerance", "opts.tolerance",
                   [&] { p1_normalisation(past, hs, 1.0, strict, {101, NaN}); }});
  check_cases(cases);
}
