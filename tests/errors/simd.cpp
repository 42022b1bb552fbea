// The simd forms of docs/errors.md's attention and barrier tables, beyond tests/simd: the names
// tests/simd does not reach (the mask, W_Q, W_V, dMus[b], the batch barrier's Us and Us[b],
// barrier.policy, the heads of barrier_workspace_bytes, an infeasible sequence of a batch), and
// "validated before anything is written": every output argument of a call that threw is exactly
// as it was (docs/errors.md says this follows from the code; here it is checked).
#include <suptok/simd.hpp>

#include "error_cases.hpp"
#include "instances_simd.hpp"  // the simd kernels, compiled once in suptok_test_simd_instances

using namespace suptok;
using namespace suptok::errors_test;

namespace {

// Output arguments filled with values no call would produce.
attention_output<double> sentinel_output() {
  attention_output<double> out;
  out.mu = M::Constant(2, 2, 7);
  out.lse = {V::Constant(2, 7)};
  return out;
}
bool is_sentinel(const attention_output<double>& out) {
  return out.mu == M::Constant(2, 2, 7) && out.lse.size() == 1 && out.lse[0] == V::Constant(2, 7) &&
         out.head_outputs.empty() && out.weights.empty();
}

}  // namespace

TEST_CASE("simd attention: names, and outputs untouched on error", "[errors][simd]") {
  const M U = seq(), dMu = seq(4, 3, 99);
  const heads<double> hs = stack();
  const attention_params ok{};
  heads<double> wide_q = hs, no_v = hs, nan_k = hs;
  wide_q[0].W_Q = M::Ones(2, 4);
  no_v[1].W_V = M(0, 3);
  no_v[1].W_O = M(3, 0);
  nan_k[1].W_K(0, 1) = NaN;
  struct bad {
    std::string what, argument;
    M U, dMu;
    heads<double> hs;
    attention_params params;
  };
  const std::vector<bad> cases = {
      {"unknown mask", "params.causal_mask", U, dMu, hs, {static_cast<mask>(3), 0}},
      {"infinite temperature", "params.temperature", U, dMu, hs, {mask::inclusive, inf}},
      {"p = 0", "U", M(4, 0), M(4, 0), hs, ok},
      {"no heads", "heads", U, dMu, {}, ok},
      {"W_Q of p = 4", "heads[0].W_Q", U, dMu, wide_q, ok},
      {"d_v = 0", "heads[1].W_V", U, dMu, no_v, ok},
      {"NaN in W_K", "heads[1].W_K", U, dMu, nan_k, ok},
      {"dMu of (3, 3)", "dMu", U, M::Ones(3, 3), hs, ok},
      {"inf in dMu", "dMu", U, with_entry(dMu, 0, 2, inf), hs, ok},
  };
  std::vector<error_case> table;
  std::vector<attention_output<double>> outs(cases.size(), sentinel_output());
  std::vector<attention_gradients<double>> grads(cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const bad& c = cases[i];
    grads[i].dU = M::Constant(1, 1, 7);
    if (c.argument != "dMu")
      table.push_back({"forward: " + c.what, c.argument, [&c, &out = outs[i]] { attention_forward(simd{}, out, c.U, c.hs, c.params); }});
    table.push_back({"backward: " + c.what, c.argument,
                     [&c, &g = grads[i]] { attention_backward(simd{}, g, c.dMu, c.U, c.hs, c.params); }});
  }
  check_cases(table);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << cases[i].what);
    CHECK(is_sentinel(outs[i]));
    CHECK(grads[i].dU == M::Constant(1, 1, 7));
    CHECK(grads[i].dW.empty());
  }

  // The batch forms.
  const std::vector<M> Us{U, seq(2, 3, 5)}, with_nan{U, with_entry(seq(2, 3, 5), 1, 1, NaN)};
  const std::vector<M> dMus{dMu, M::Ones(2, 3)}, wrong_dMu{dMu, M::Ones(2, 2)};
  std::vector<attention_output<double>> batch_out(1, sentinel_output());
  attention_batch_gradients<double> batch_grads;
  batch_grads.dU = {M::Constant(1, 1, 7)};
  check_cases({
      {"forward batch: NaN in sequence 1", "Us[1]", [&] { attention_forward_batch(simd{}, batch_out, with_nan, hs); }},
      {"forward batch: unknown mask", "params.causal_mask",
       [&] { attention_forward_batch(simd{}, batch_out, Us, hs, {static_cast<mask>(3), 0}); }},
      {"backward batch: dMus[1] of (2, 2)", "dMus[1]", [&] { attention_backward_batch(simd{}, batch_grads, wrong_dMu, Us, hs); }},
      {"backward batch: no heads", "heads", [&] { attention_backward_batch(simd{}, batch_grads, dMus, Us, heads<double>{}); }},
  });
  CHECK(batch_out.size() == 1);
  CHECK(is_sentinel(batch_out[0]));
  CHECK(batch_grads.dU.size() == 1);
  CHECK(batch_grads.dU[0] == M::Constant(1, 1, 7));
  CHECK(batch_grads.dW.empty());
}

// The saved forward output taken by attention_backward (both backends): each field named, checked
// after U and dMu, and the gradients untouched. Strict mask: lse_0 of the empty past must be -inf.
TEST_CASE("attention backward from a saved forward: names, and outputs untouched on error", "[errors][simd]") {
  const M U = seq(), dMu = seq(4, 3, 99);
  const heads<double> hs = stack();
  const attention_params strict{mask::strict, 0};
  const attention_output<double> saved = attention_forward<double>(U, hs, strict);
  const auto changed = [&saved](auto change) {
    attention_output<double> out = saved;
    change(out);
    return out;
  };
  const std::vector<std::pair<std::string, attention_output<double>>> wrong = {
      {"forward.lse", changed([](auto& o) { o.lse.pop_back(); })},
      {"forward.head_outputs", changed([](auto& o) { o.head_outputs.clear(); })},
      {"forward.lse[1]", changed([](auto& o) { o.lse[1] = V::Zero(3); })},
      {"forward.lse[0]", changed([](auto& o) { o.lse[0](0) = 0; })},    // finite for the empty past
      {"forward.lse[1]", changed([](auto& o) { o.lse[1](2) = -inf; })}, // -inf for a non-empty past
      {"forward.lse[0]", changed([](auto& o) { o.lse[0](3) = NaN; })},
      {"forward.head_outputs[1]", changed([](auto& o) { o.head_outputs[1] = M::Zero(4, 2); })},
      {"forward.head_outputs[0]", changed([](auto& o) { o.head_outputs[0](2, 1) = inf; })},
  };
  std::vector<error_case> table;
  std::vector<attention_gradients<double>> grads(2 * wrong.size() + 4);
  for (attention_gradients<double>& g : grads) g.dU = M::Constant(1, 1, 7);
  std::size_t i = 0;
  for (const auto& [argument, out] : wrong) {
    table.push_back({"simd: " + argument, argument,
                     [&, &g = grads[i++], &out = out] { attention_backward(simd{}, g, dMu, U, hs, out, strict); }});
    table.push_back({"reference: " + argument, argument,
                     [&, &g = grads[i++], &out = out] { attention_backward(cpu{}, g, dMu, U, hs, out, strict); }});
  }
  const attention_output<double>& bad = wrong[0].second;
  const M nan_U = with_entry(U, 1, 1, NaN);
  table.push_back({"simd: U before forward", "U", [&, &g = grads[i++]] { attention_backward(simd{}, g, dMu, nan_U, hs, bad, strict); }});
  table.push_back({"reference: U before forward", "U", [&, &g = grads[i++]] { attention_backward(cpu{}, g, dMu, nan_U, hs, bad, strict); }});
  table.push_back({"simd: dMu before forward", "dMu", [&, &g = grads[i++]] { attention_backward(simd{}, g, M::Ones(3, 3), U, hs, bad, strict); }});
  table.push_back({"reference: dMu before forward", "dMu", [&, &g = grads[i++]] { attention_backward(cpu{}, g, M::Ones(3, 3), U, hs, bad, strict); }});
  check_cases(table);
  for (const attention_gradients<double>& g : grads) {
    CHECK(g.dU == M::Constant(1, 1, 7));
    CHECK(g.dW.empty());
  }
  attention_gradients<double> ok;
  check_valid("simd, the reference forward's output", [&] { attention_backward(simd{}, ok, dMu, U, hs, saved, strict); });
  check_valid("reference", [&] { attention_backward(cpu{}, ok, dMu, U, hs, saved, strict); });
}

TEST_CASE("simd barrier: names of the barrier, batch and workspace arguments", "[errors][simd][barrier]") {
  const M U = seq();
  const heads<double> hs = stack();
  const barrier_params ok{extension::extended, 1e-8, 0.3}, bad_policy{static_cast<extension>(4), 1e-8, 0.3};
  const std::vector<M> Us{seq(4, 3, 1), seq(3, 3, 2)}, mixed{seq(4, 3, 1), seq(3, 2, 2)};
  heads<double> nan_o = hs, wide_k = hs;
  nan_o[0].W_O(1, 2) = NaN;
  wide_k[1].W_K = M::Ones(2, 5);
  check_cases({
      {"per_token: unknown policy", "barrier.policy", [&] { barrier_per_token(simd{}, U, hs, bad_policy); }},
      {"penalty: unknown mask", "attention.causal_mask", [&] { barrier_penalty(simd{}, U, hs, ok, {static_cast<mask>(2), 0}); }},
      {"penalty_backward: no heads", "heads", [&] { barrier_penalty_backward(simd{}, U, heads<double>{}, ok); }},
      {"per_token: NaN in W_O", "heads[0].W_O", [&] { barrier_per_token(simd{}, U, nan_o, ok); }},
      {"batch: empty", "Us", [&] { barrier_penalty_batch(simd{}, std::vector<M>{}, hs, ok); }},
      {"batch: sequence 1 of p = 2", "Us[1]", [&] { barrier_penalty_batch(simd{}, mixed, hs, ok); }},
      {"batch: NaN z0", "barrier.z0", [&] { barrier_penalty_batch(simd{}, Us, hs, {extension::clamp, 1e-8, NaN}); }},
      {"batch backward: negative temperature", "attention.temperature",
       [&] { barrier_penalty_batch_backward(simd{}, Us, hs, ok, {mask::strict, -1}); }},
      {"batch backward: W_O NaN", "heads[0].W_O", [&] { barrier_penalty_batch_backward(simd{}, Us, nan_o, ok); }},
      {"workspace: no heads", "heads", [&] { barrier_workspace_bytes(simd{}, 8, heads<double>{}, true); }},
      {"workspace: W_K of p = 5, heads of p = 3", "heads[1].W_K", [&] { barrier_workspace_bytes(simd{}, 8, wide_k, false); }},
      {"workspace: N = -1", "N", [&] { barrier_workspace_bytes(simd{}, -1, hs, false); }},
      {"workspace: N p^2 beyond 64 bits", "N", [&] { barrier_workspace_bytes(simd{}, suptok::index(1) << 50, hs, true); }},
      {"workspace: heads of p = 0", "heads[0].W_Q",
       [&] { barrier_workspace_bytes(simd{}, 8, heads<double>{{M(2, 0), M(2, 0), M(3, 0), M(0, 3)}}, false); }},
  });
  // Exact policy, p = 1: token 2 of (1, -1, 0) has J_2 = -1 (see barrier.cpp); sequence 1 of the batch.
  const barrier_params exact{extension::exact, 1e-8, 1e-2};
  const heads<double> fold = scalar_heads(1, 1, 2, 1);
  const M feasible = M::Constant(3, 1, 0.25), folding = (M(3, 1) << 1, -1, 0).finished();
  const std::vector<M> batch{feasible, folding};
  REQUIRE(barrier_per_token(simd{}, folding, fold, exact)[2] == inf);
  check_cases({{"batch backward: infeasible token 2 of sequence 1", "Us[1]",
                [&] { barrier_penalty_batch_backward(simd{}, batch, fold, exact); }}});
  // Finite U whose logits overflow a double (as in barrier.cpp): J_t is not finite, and the error,
  // raised after the tokens' OpenMP region, names the sequence.
  const M huge = 1e200 * seq(4, 3, 12);
  const std::vector<M> overflowing{U, huge};
  check_cases({
      {"per_token: overflowing U", "U", [&] { barrier_per_token(simd{}, huge, hs, ok); }},
      {"penalty_backward: overflowing U", "U", [&] { barrier_penalty_backward(simd{}, huge, hs, ok); }},
      {"batch: overflowing sequence 1", "Us[1]", [&] { barrier_penalty_batch(simd{}, overflowing, hs, ok); }},
      {"batch backward: overflowing sequence 1", "Us[1]",
       [&] { barrier_penalty_batch_backward(simd{}, overflowing, hs, ok); }},
  });
}

TEST_CASE("simd analyse: the reference's names, in its order", "[errors][simd][analysis]") {
  // analyse(simd{}, ...) validates with the reference's function before any work: a sample of its
  // names (tests/errors/analysis.cpp has them all), the order (options before U) and moments that
  // overflow in the projected blocks, raised after the tiles' threads. (Tokens of 1e200 under
  // sharp attention need not overflow: one-hot weights give J_t = I exactly.)
  const M U = seq(5, 3, 7);
  const layer<double> l = gqa_layer();
  const heads<double> hs = stack();
  using O = analysis_options;
  check_valid("simd analyse, layer", [&] { analyse(simd{}, U, l, O{}); });
  check_valid("simd analyse, heads", [&] { analyse(simd{}, U, hs, O{}); });
  layer<double> nan_v = l, flat = l;
  nan_v.W_V[0](0, 1) = NaN;
  for (auto& W : flat.W_Q) W.setZero();  // uniform attention: the moments of tokens of 1e200 overflow
  for (auto& b : flat.b_Q) b.setZero();
  check_cases({
      {"unknown margin method", "options.margins",
       [&] { analyse(simd{}, U, l, O{{}, {}, {}, static_cast<margin_method>(2)}); }},
      {"options before U", "options.form", [&] { analyse(simd{}, M(0, 3), l, O{{}, {}, static_cast<jacobian_form>(3)}); }},
      {"NaN in W_V", "layer.W_V[0]", [&] { analyse(simd{}, U, nan_v, O{}); }},
      {"heads: negative temperature", "options.attention.temperature",
       [&] { analyse(simd{}, U, hs, O{{mask::strict, -1}}); }},
      {"support rule", "options.support.k", [&] { analyse(simd{}, U, l, O{{}, {}, {}, {}, {}, support_rule::smallest(-1)}); }},
      {"overflowing moments", "U", [&] { analyse(simd{}, 1e200 * seq(5, 3, 12), flat, O{{}, {}, jacobian_form::projected}); }},
  });
}
