// The likelihood table of docs/errors.md beyond the shared arguments (sequence_functions.cpp):
// the batch of residuals_batch, the block gradients dJ, the noise covariance of the backward,
// the singular J_t of log_likelihood_backward, and the sampler's and all_roots_1d's arguments.
#include "error_cases.hpp"

using namespace suptok;
using namespace suptok::errors_test;

TEST_CASE("residuals_batch names the batch, its sequences and the shared arguments", "[errors][likelihood]") {
  const heads<double> hs = stack();
  const std::vector<M> Us{seq(4, 3, 1), seq(2, 3, 2)};
  check_valid("residuals_batch", [&] { residuals_batch<double>(Us, hs); });
  const auto batch = [&hs](std::vector<M> Us, attention_params ap = {}) { return [=] { residuals_batch<double>(Us, hs, ap); }; };
  check_cases({
      {"empty batch", "Us", batch({})},
      {"empty batch before bad params", "Us", batch({}, {mask::strict, -1})},
      {"bad params", "params.temperature", batch(Us, {mask::strict, -1})},
      {"unknown mask", "params.causal_mask", batch(Us, {static_cast<mask>(9), 0})},
      {"sequence 1 of p = 4", "Us[1]", batch({seq(4, 3, 1), seq(2, 4, 2)})},
      {"sequence 0 empty", "Us[0]", batch({M(0, 3), seq(2, 3, 2)})},
      {"NaN in sequence 1", "Us[1]", batch({seq(4, 3, 1), with_entry(seq(2, 3, 2), 1, 2, NaN)})},
      {"no heads", "heads", [&] { residuals_batch<double>(Us, heads<double>{}); }},
      {"head of p = 2", "heads[0].W_Q", [&] { residuals_batch<double>(Us, stack(2)); }},
  });
}

TEST_CASE("jacobian_blocks_backward names dJ and its blocks", "[errors][likelihood]") {
  const M U = seq();
  const heads<double> hs = stack();
  const layer<double> l = gqa_layer();
  const std::vector<M> dJ(4, M::Identity(3, 3));
  auto changed = [&dJ](std::size_t t, M block) {
    std::vector<M> d = dJ;
    d[t] = std::move(block);
    return d;
  };
  const auto on_heads = [&](std::vector<M> d) { return [=, &U, &hs] { jacobian_blocks_backward<double>(d, U, hs); }; };
  const auto on_layer = [&](std::vector<M> d) { return [=, &U, &l] { jacobian_blocks_backward<double>(d, U, l); }; };
  check_cases({
      {"3 blocks for N = 4 (heads)", "dJ", on_heads(std::vector<M>(3, M::Identity(3, 3)))},
      {"5 blocks for N = 4 (layer)", "dJ", on_layer(std::vector<M>(5, M::Identity(3, 3)))},
      {"no blocks (layer)", "dJ", on_layer({})},
      {"block 1 of (3, 2) (heads)", "dJ[1]", on_heads(changed(1, M::Ones(3, 2)))},
      {"block 3 of (2, 3) (layer)", "dJ[3]", on_layer(changed(3, M::Ones(2, 3)))},
      {"NaN in block 0 (heads)", "dJ[0]", on_heads(changed(0, with_entry(M::Identity(3, 3), 1, 1, NaN)))},
      {"inf in block 2 (layer)", "dJ[2]", on_layer(changed(2, with_entry(M::Identity(3, 3), 0, 2, inf)))},
      {"U before dJ", "U", [&] { jacobian_blocks_backward<double>({}, M(0, 3), hs); }},
  });
}

TEST_CASE("projected_blocks_backward names dK and its blocks", "[errors][likelihood]") {
  const M U = seq();
  const layer<double> l = gqa_layer();  // 4 query heads of d_v = 3: blocks K_t of n = 12
  const std::vector<M> dK(4, M::Identity(12, 12));
  auto changed = [&dK](std::size_t t, M block) {
    std::vector<M> d = dK;
    d[t] = std::move(block);
    return d;
  };
  const auto call = [&](std::vector<M> d) { return [=, &U, &l] { projected_blocks_backward<double>(d, U, l); }; };
  check_valid("projected_blocks_backward", [&] { projected_blocks_backward<double>(dK, U, l); });
  check_cases({
      {"3 blocks for N = 4", "dK", call(std::vector<M>(3, M::Identity(12, 12)))},
      {"block 2 of the width p = 3 instead of n = 12", "dK[2]", call(changed(2, M::Identity(3, 3)))},
      {"NaN in block 1", "dK[1]", call(changed(1, with_entry(M::Identity(12, 12), 4, 7, NaN)))},
      {"U before dK", "U", [&] { projected_blocks_backward<double>({}, M(0, 3), l); }},
  });
}

TEST_CASE("log_likelihood_backward names Psi, and U at a singular J_t", "[errors][likelihood]") {
  const M U = seq();
  const heads<double> hs = stack();
  const auto with_psi = [&](noise_covariance<double> Psi) { return [=, &U, &hs] { log_likelihood_backward<double>(U, hs, Psi); }; };
  // Inclusive mask, one head with V = W_O W_V = I: J_0 = I - V = 0 is singular.
  heads<double> identity(1);
  identity[0] = {M::Identity(3, 3), M::Identity(3, 3), M::Identity(3, 3), M::Identity(3, 3)};
  const auto Psi = noise_covariance<double>::isotropic(1.0);
  REQUIRE(log_det<double>(jacobian_blocks<double>(U, identity, {mask::inclusive, 0})[0]).sign == 0);
  check_cases({
      {"unknown noise kind", "Psi.kind", with_psi({static_cast<noise_kind>(3), V::Ones(1)})},
      {"isotropic with 3 variances", "Psi.variance", with_psi({noise_kind::isotropic, V::Ones(3)})},
      {"diagonal with 2 variances for p = 3", "Psi.variance", with_psi(noise_covariance<double>::diagonal(V::Ones(2)))},
      {"zero variance", "Psi.variance", with_psi(noise_covariance<double>::isotropic(0))},
      {"NaN variance", "Psi.variance", with_psi(noise_covariance<double>::diagonal(with_entry(V::Ones(3), 1, NaN)))},
      {"inf variance", "Psi.variance", with_psi(noise_covariance<double>::isotropic(inf))},
      {"U before Psi", "U", [&] { log_likelihood_backward<double>(M(0, 3), hs, {noise_kind::isotropic, V()}); }},
      {"singular J_0", "U", [&] { log_likelihood_backward<double>(U, identity, Psi, {mask::inclusive, 0}); }},
  });
}

TEST_CASE("sample and all_roots_1d name their parameters, heads and past", "[errors][likelihood]") {
  const M eps = seq(3, 3, 5);
  const heads<double> hs = stack();
  const heads<double> h1 = scalar_heads();
  const M past = M::Constant(2, 1, 0.5);
  check_valid("sample", [&] { sample<double>(eps, hs); });
  check_valid("all_roots_1d", [&] { all_roots_1d<double>(past, 0.1, h1, -4.0, 4.0, {}, 64); });
  check_valid("all_roots_1d with an empty past", [&] { all_roots_1d<double>(M(0, 1), 0.1, h1, -4.0, 4.0, {}, 64); });
  heads<double> bad_k = hs;
  bad_k[1].W_K = M::Ones(2, 4);
  heads<double> nan_o = hs;
  nan_o[0].W_O(1, 1) = NaN;
  heads<double> h1_bad_v = h1;
  h1_bad_v[0].W_V = M::Ones(1, 2);
  check_cases({
      {"sample: negative temperature", "params.temperature", [&] { sample<double>(eps, hs, {mask::strict, -1}); }},
      {"sample: unknown mask", "params.causal_mask", [&] { sample<double>(eps, hs, {static_cast<mask>(2), 0}); }},
      {"sample: W_K of p = 4", "heads[1].W_K", [&] { sample<double>(eps, bad_k); }},
      {"sample: NaN in W_O", "heads[0].W_O", [&] { sample<double>(eps, nan_o); }},
      {"sample: heads before eps", "heads[0].W_O", [&] { sample<double>(M(0, 3), nan_o); }},
      {"all_roots_1d: bad params", "params.temperature",
       [&] { all_roots_1d<double>(past, 0.0, h1, -1.0, 1.0, {mask::strict, NaN}); }},
      {"all_roots_1d: W_V of p = 2", "heads[0].W_V", [&] { all_roots_1d<double>(past, 0.0, h1_bad_v, -1.0, 1.0); }},
      {"all_roots_1d: past of 2 columns", "past", [&] { all_roots_1d<double>(M::Zero(2, 2), 0.0, h1, -1.0, 1.0); }},
      {"all_roots_1d: NaN in past", "past", [&] { all_roots_1d<double>(with_entry(past, 1, 0, NaN), 0.0, h1, -1.0, 1.0); }},
      {"all_roots_1d: inf eps_t", "eps_t", [&] { all_roots_1d<double>(past, inf, h1, -1.0, 1.0); }},
      {"all_roots_1d: lo = hi", "lo", [&] { all_roots_1d<double>(past, 0.0, h1, 1.0, 1.0); }},
      {"all_roots_1d: infinite hi", "lo", [&] { all_roots_1d<double>(past, 0.0, h1, -1.0, inf); }},
      {"all_roots_1d: NaN lo", "lo", [&] { all_roots_1d<double>(past, 0.0, h1, NaN, 1.0); }},
      {"all_roots_1d: negative grid", "grid", [&] { all_roots_1d<double>(past, 0.0, h1, -1.0, 1.0, {}, -3); }},
  });
}
