// suptok/models/gpt2.hpp: one attention layer of a GPT-2 checkpoint as Hugging Face saves it.
//
//   models::load_gpt2<S>(reader, config, options) -> checkpoint_layer<S>
//
// Tensors of layer L (with an optional "transformer." prefix on every name; p = n_embd):
//   h.L.attn.c_attn.weight   (p, 3p)   Conv1D layout: y = x W + b, W is (in, out); the output
//                                      columns are q = [0, p), k = [p, 2p), v = [2p, 3p)
//   h.L.attn.c_attn.bias     (3p)
//   h.L.attn.c_proj.weight   (p, p)    Conv1D: out = concat_h(o_h) W + b
//   h.L.attn.c_proj.bias     (p)
//   h.L.ln_1.weight, .bias   (p)       the input LayerNorm
// Heads: H = config.n_head (or options.heads), d = p / H. Head h reads the columns
// [h d, (h + 1) d) of each part, so W_Q[h] = (W[:, h d : (h+1) d])^T (d, p), W_K[h] and W_V[h]
// likewise at column offsets p and 2p, b_Q[h] = b[h d : (h+1) d] (same offsets for b_K, b_V);
// W_O[h] = (c_proj.weight[h d : (h+1) d, :])^T (p, d), b_O = c_proj.bias; mu = sum_h W_O[h] o_h + b_O.
// Attention parameters: the inclusive mask (a token attends to itself, as in GPT-2's causal
// mask) and tau = sqrt(d), times (L + 1) when config.scale_attn_by_inverse_layer_idx is true;
// tau = 1 (times L + 1) when config.scale_attn_weights is false. Norm: LayerNorm with
// eps = config.layer_norm_epsilon (default 1e-5).
// Config: n_head is required unless options.heads is given; n_embd, when present, must equal p.
// Caveats: the buffers h.L.attn.bias and h.L.attn.masked_bias that older checkpoints store (the
// causal mask itself) are ignored; reorder_and_upcast_attn changes only rounding and is ignored.
// Errors: "tensor 'NAME'" (missing, shape), "config.n_head" (missing, not dividing p),
// "config.n_embd", "options.layer".
#pragma once

#include "checkpoint.hpp"

namespace suptok::models {

template <class S>
checkpoint_layer<S> load_gpt2(io::safetensors_reader& r, const nlohmann::json& config,
                              const adapter_options& options = {}) {
  using detail::require;
  const index L = options.layer;
  detail::require_layer(r, checkpoint_format::gpt2, L);
  const std::string base = "h." + std::to_string(L) + ".";
  const std::string prefix = r.contains(base + "attn.c_attn.weight") ? "" : "transformer.";
  const std::string at = prefix + base;
  const std::string c_attn_w = at + "attn.c_attn.weight", c_attn_b = at + "attn.c_attn.bias";
  const std::string c_proj_w = at + "attn.c_proj.weight", c_proj_b = at + "attn.c_proj.bias";
  const std::string ln_w = at + "ln_1.weight", ln_b = at + "ln_1.bias";

  // p from c_attn.weight (p, 3p); every other shape follows from it.
  require(r.contains(c_attn_w), detail::tensor_arg(c_attn_w), "not in the file");
  const std::vector<std::size_t>& s = r.info(c_attn_w).shape;
  require(s.size() == 2 && s[0] > 0 && s[1] == 3 * s[0], detail::tensor_arg(c_attn_w),
          "expected shape (p, 3p) (Conv1D layout: in, out), got ", io::detail::shape_string(s));
  const std::size_t pu = s[0];
  const index p = static_cast<index>(pu);
  if (const auto n_embd = detail::config_count(config, "n_embd"))
    require(*n_embd == p, "config.n_embd", "is ", *n_embd, " but tensor '", c_attn_w, "' has p = ", p);
  const auto H = detail::config_count(config, "n_head", options.heads, "options.heads");
  require(H.has_value(), "config.n_head", "the number of heads is needed (config.json's n_head, or give it)");
  require(p % *H == 0, "config.n_head", "n_head = ", *H, " does not divide p = ", p);
  const index d = p / *H;
  const std::string from_p = " (p = " + std::to_string(p) + ")";
  detail::expect_tensor(r, c_attn_b, {3 * pu}, from_p);
  detail::expect_tensor(r, c_proj_w, {pu, pu}, from_p);
  detail::expect_tensor(r, c_proj_b, {pu}, from_p);
  detail::expect_tensor(r, ln_w, {pu}, from_p);
  detail::expect_tensor(r, ln_b, {pu}, from_p);

  const std::vector<S> W = detail::read_values<S>(r, c_attn_w), b = detail::read_values<S>(r, c_attn_b);
  const std::vector<S> P = detail::read_values<S>(r, c_proj_w), bp = detail::read_values<S>(r, c_proj_b);
  checkpoint_layer<S> out;
  layer<S>& l = out.attention;
  for (index h = 0; h < *H; ++h) {
    l.W_Q.push_back(detail::block_of(W, 3 * p, 0, h * d, p, d, true));
    l.W_K.push_back(detail::block_of(W, 3 * p, 0, p + h * d, p, d, true));
    l.W_V.push_back(detail::block_of(W, 3 * p, 0, 2 * p + h * d, p, d, true));
    l.W_O.push_back(detail::block_of(P, p, h * d, 0, d, p, true));
    l.b_Q.push_back(detail::segment_of(b, h * d, d));
    l.b_K.push_back(detail::segment_of(b, p + h * d, d));
    l.b_V.push_back(detail::segment_of(b, 2 * p + h * d, d));
  }
  l.b_O = detail::segment_of(bp, 0, p);

  using std::sqrt;
  const bool scale = detail::config_flag(config, "scale_attn_weights", true);
  const bool by_layer = detail::config_flag(config, "scale_attn_by_inverse_layer_idx", false);
  const double tau = (scale ? sqrt(static_cast<double>(d)) : 1.0) * (by_layer ? static_cast<double>(L + 1) : 1.0);
  // 0 selects sqrt(d_k) computed in S, the same number Hugging Face divides by.
  out.params = {mask::inclusive, scale && !by_layer ? 0.0 : tau};

  out.norm.kind = norm_kind::layer_norm;
  const std::vector<S> lw = detail::read_values<S>(r, ln_w), lb = detail::read_values<S>(r, ln_b);
  out.norm.weight = detail::segment_of(lw, 0, p);
  out.norm.bias = detail::segment_of(lb, 0, p);
  out.norm.eps = detail::config_number(config, "layer_norm_epsilon", 1e-5);
  require(out.norm.eps >= 0, "config.layer_norm_epsilon", "must be >= 0, got ", out.norm.eps);
  out.format = checkpoint_format::gpt2;
  out.layer_index = L;
  return out;
}

}  // namespace suptok::models
