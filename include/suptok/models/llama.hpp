// suptok/models/llama.hpp: one attention layer of a Llama-family checkpoint as Hugging Face
// saves it (also Mistral and Qwen2, which use the same names; Qwen2 adds q/k/v biases).
//
//   models::load_llama<S>(reader, config, options) -> checkpoint_layer<S>
//
// Tensors of layer L (with or without the "model." prefix), nn.Linear layout (out, in), y = W x + b:
//   model.layers.L.self_attn.q_proj.weight   (H_q d, p)     .bias (H_q d)   optional
//   model.layers.L.self_attn.k_proj.weight   (H_kv d, p)    .bias (H_kv d)  optional
//   model.layers.L.self_attn.v_proj.weight   (H_kv d, p)    .bias (H_kv d)  optional
//   model.layers.L.self_attn.o_proj.weight   (p, H_q d)     .bias (p)       optional
//   model.layers.L.input_layernorm.weight    (p)            the input RMSNorm
// Heads from config.json: H_q = num_attention_heads (required unless options.heads),
// H_kv = num_key_value_heads (default H_q), d = head_dim (default p / H_q); rope_theta (default
// 10000), rms_norm_eps (default 1e-6); hidden_size, when present, must equal p.
// Split: W_Q[h] = rows [h d, (h+1) d) of q_proj (d, p), W_K[g] and W_V[g] likewise from k_proj and
// v_proj, W_O[h] = columns [h d, (h+1) d) of o_proj (p, d); query head h reads key/value head
// h / (H_q / H_kv), as Hugging Face's repeat_kv does.
// Rotary embeddings: Hugging Face's apply_rotary_pos_emb computes q cos + rotate_half(q) sin with
// rotate_half(x) = (-x[d/2:], x[:d/2]) and cos, sin of the angles t / theta^(2i/d) repeated over
// both halves, i.e. the pair (i, i + d/2) is rotated by t theta^(-2i/d): the rotate-half pairing
// suptok::layer uses (attention/layer.hpp), with position ids 0..N-1. d must be even.
// Attention parameters: the inclusive mask and tau = sqrt(d) (temperature 0).
// Caveats: config.rope_scaling (linear, dynamic, llama3, yarn, ...) changes the frequencies in a
// way suptok::layer does not represent: a config with a non-null rope_scaling is an error unless
// options.ignore_rope_scaling is set (then the plain frequencies are used, exact only for the
// frequencies the scaling leaves alone). Mistral's sliding_window is not applied (exact for
// sequences no longer than the window).
// Errors: "tensor 'NAME'", "config.num_attention_heads", "config.num_key_value_heads",
// "config.head_dim", "config.hidden_size", "config.rope_theta", "config.rope_scaling",
// "options.layer".
#pragma once

#include "checkpoint.hpp"

namespace suptok::models {

template <class S>
checkpoint_layer<S> load_llama(io::safetensors_reader& r, const nlohmann::json& config,
                               const adapter_options& options = {}) {
  using detail::require;
  const index L = options.layer;
  detail::require_layer(r, checkpoint_format::llama, L);
  const std::string base = "layers." + std::to_string(L) + ".";
  const std::string at = (r.contains("model." + base + "self_attn.q_proj.weight") ? "model." : "") + base;
  const std::string attn = at + "self_attn.";
  const std::string q_w = attn + "q_proj.weight";

  require(r.contains(q_w), detail::tensor_arg(q_w), "not in the file");
  const std::vector<std::size_t>& qs = r.info(q_w).shape;
  require(qs.size() == 2 && qs[0] > 0 && qs[1] > 0, detail::tensor_arg(q_w), "expected shape (H_q d, p), got ",
          io::detail::shape_string(qs));
  const index p = static_cast<index>(qs[1]);
  if (const auto hidden = detail::config_count(config, "hidden_size"))
    require(*hidden == p, "config.hidden_size", "is ", *hidden, " but tensor '", q_w, "' has p = ", p);
  const auto Hq = detail::config_count(config, "num_attention_heads", options.heads, "options.heads");
  require(Hq.has_value(), "config.num_attention_heads",
          "the number of query heads is needed (config.json's num_attention_heads, or give it)");
  const index Hkv =
      detail::config_count(config, "num_key_value_heads", options.kv_heads, "options.kv_heads").value_or(*Hq);
  require(*Hq % Hkv == 0, "config.num_key_value_heads", "num_key_value_heads = ", Hkv,
          " does not divide num_attention_heads = ", *Hq);
  const auto d_given = detail::config_count(config, "head_dim", options.head_dim, "options.head_dim");
  if (!d_given)
    require(p % *Hq == 0, "config.num_attention_heads", "num_attention_heads = ", *Hq, " does not divide p = ", p,
            " (and config.head_dim is not given)");
  const index d = d_given ? *d_given : p / *Hq;
  const double theta = detail::config_number(config, "rope_theta", 10000.0);
  require(theta > 0, "config.rope_theta", "must be > 0, got ", theta);
  require(d % 2 == 0, "config.head_dim", "rotary embeddings need an even head dimension, got ", d);
  if (config.is_object() && config.contains("rope_scaling") && !config["rope_scaling"].is_null())
    require(options.ignore_rope_scaling, "config.rope_scaling", "scaled rotary frequencies (",
            config["rope_scaling"].dump(), ") are not supported; set ignore_rope_scaling to read the layer "
            "with the plain frequencies");

  const auto pu = static_cast<std::size_t>(p);
  const std::size_t nq = static_cast<std::size_t>(*Hq * d), nkv = static_cast<std::size_t>(Hkv * d);
  const std::string why = " (H_q = " + std::to_string(*Hq) + ", H_kv = " + std::to_string(Hkv) +
                          ", head_dim = " + std::to_string(d) + ", p = " + std::to_string(p) + ")";
  const std::string k_w = attn + "k_proj.weight", v_w = attn + "v_proj.weight", o_w = attn + "o_proj.weight";
  const std::string norm_w = at + "input_layernorm.weight";
  detail::expect_tensor(r, q_w, {nq, pu}, why);
  detail::expect_tensor(r, k_w, {nkv, pu}, why);
  detail::expect_tensor(r, v_w, {nkv, pu}, why);
  detail::expect_tensor(r, o_w, {pu, nq}, why);
  detail::expect_tensor(r, norm_w, {pu}, why);
  const auto optional_bias = [&](const std::string& name, std::size_t n) -> std::vector<S> {
    if (!r.contains(name)) return {};
    detail::expect_tensor(r, name, {n}, why);
    return detail::read_values<S>(r, name);
  };
  const std::vector<S> bq = optional_bias(attn + "q_proj.bias", nq), bk = optional_bias(attn + "k_proj.bias", nkv);
  const std::vector<S> bv = optional_bias(attn + "v_proj.bias", nkv), bo = optional_bias(attn + "o_proj.bias", pu);

  const std::vector<S> Wq = detail::read_values<S>(r, q_w), Wk = detail::read_values<S>(r, k_w);
  const std::vector<S> Wv = detail::read_values<S>(r, v_w), Wo = detail::read_values<S>(r, o_w);
  checkpoint_layer<S> out;
  layer<S>& l = out.attention;
  for (index h = 0; h < *Hq; ++h) {
    l.W_Q.push_back(detail::block_of(Wq, p, h * d, 0, d, p, false));
    l.W_O.push_back(detail::block_of(Wo, *Hq * d, 0, h * d, p, d, false));
    if (!bq.empty()) l.b_Q.push_back(detail::segment_of(bq, h * d, d));
  }
  for (index g = 0; g < Hkv; ++g) {
    l.W_K.push_back(detail::block_of(Wk, p, g * d, 0, d, p, false));
    l.W_V.push_back(detail::block_of(Wv, p, g * d, 0, d, p, false));
    if (!bk.empty()) l.b_K.push_back(detail::segment_of(bk, g * d, d));
    if (!bv.empty()) l.b_V.push_back(detail::segment_of(bv, g * d, d));
  }
  if (!bo.empty()) l.b_O = detail::segment_of(bo, 0, p);
  l.rope_theta = theta;
  out.params = {mask::inclusive, 0.0};

  out.norm.kind = norm_kind::rms_norm;
  out.norm.weight = detail::segment_of(detail::read_values<S>(r, norm_w), 0, p);
  out.norm.eps = detail::config_number(config, "rms_norm_eps", 1e-6);
  require(out.norm.eps >= 0, "config.rms_norm_eps", "must be >= 0, got ", out.norm.eps);
  out.format = checkpoint_format::llama;
  out.layer_index = L;
  return out;
}

}  // namespace suptok::models
