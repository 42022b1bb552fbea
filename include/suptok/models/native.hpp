// suptok/models/native.hpp: one attention layer stored in the library's own naming, and the
// writer that produces such files.
//
//   models::load_suptok<S>(reader, options) -> checkpoint_layer<S>
//   models::add_layer(writer, layer, prefix = "")   adds a layer's tensors (and rope_theta) to a writer
//
// Tensors (each name optionally prefixed by "{L}.", e.g. "0.W_Q"; without a prefix the file holds
// layer 0 only); every head of a kind has the same d_k and d_v:
//   W_Q  (H, d_k, p)      b_Q  (H, d_k)       optional
//   W_K  (H_kv, d_k, p)   b_K  (H_kv, d_k)    optional
//   W_V  (H_kv, d_v, p)   b_V  (H_kv, d_v)    optional
//   W_O  (H, p, d_v)      b_O  (p)            optional
// H_kv must divide H (query head h reads key/value head h / (H / H_kv)).
// Metadata (safetensors "__metadata__", strings, all optional):
//   rope_theta   rotary base (default "0": no rotary embedding; the rotate-half pairing)
//   mask         "strict" (default) or "inclusive"
//   temperature  tau (default "0": sqrt(d_k))
// The norm is none: the suptok naming stores the attention sub-layer only.
// Errors: "tensor 'NAME'" (missing, rank, shape), "__metadata__.rope_theta", "__metadata__.mask",
// "__metadata__.temperature", "options.layer".
#pragma once

#include "checkpoint.hpp"

#include <charconv>

namespace suptok::models {

namespace detail {

inline double metadata_number(const io::safetensors_reader& r, const std::string& key, double fallback) {
  const auto it = r.metadata().find(key);
  if (it == r.metadata().end()) return fallback;
  const std::string& s = it->second;
  double x = 0;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), x);
  require(res.ec == std::errc() && res.ptr == s.data() + s.size() && std::isfinite(x) && x >= 0,
          "__metadata__." + key, "expected a finite number >= 0, got '", s, "'");
  return x;
}

// The tensor's shape, after checking that it exists and has `rank` dimensions.
inline const std::vector<std::size_t>& shape_of(const io::safetensors_reader& r, const std::string& name,
                                                std::size_t rank, const char* layout) {
  require(r.contains(name), tensor_arg(name), "not in the file");
  const std::vector<std::size_t>& s = r.info(name).shape;
  require(s.size() == rank, tensor_arg(name), "expected shape ", layout, ", got ", io::detail::shape_string(s));
  for (std::size_t x : s) require(x > 0, tensor_arg(name), "expected shape ", layout, " with every extent > 0, got ",
                                  io::detail::shape_string(s));
  return s;
}

// The heads of a rank-3 array (n, rows, cols) as n matrices (rows, cols).
template <class S>
std::vector<matrix<S>> slices_of(const std::vector<S>& a, const std::vector<std::size_t>& s) {
  const index rows = static_cast<index>(s[1]), cols = static_cast<index>(s[2]);
  std::vector<matrix<S>> out;
  for (index h = 0; h < static_cast<index>(s[0]); ++h) out.push_back(block_of(a, cols, h * rows, 0, rows, cols, false));
  return out;
}

template <class S>
std::vector<vector<S>> rows_of(const std::vector<S>& a, std::size_t n, std::size_t d) {
  std::vector<vector<S>> out;
  for (std::size_t h = 0; h < n; ++h) out.push_back(segment_of(a, static_cast<index>(h * d), static_cast<index>(d)));
  return out;
}

}  // namespace detail

template <class S>
checkpoint_layer<S> load_suptok(io::safetensors_reader& r, const adapter_options& options = {}) {
  using detail::require;
  const index L = options.layer;
  detail::require_layer(r, checkpoint_format::suptok, L);
  const std::string pre = r.contains(std::to_string(L) + ".W_Q") ? std::to_string(L) + "." : "";
  const auto& sq = detail::shape_of(r, pre + "W_Q", 3, "(H, d_k, p)");
  const auto& sk = detail::shape_of(r, pre + "W_K", 3, "(H_kv, d_k, p)");
  const std::size_t H = sq[0], d_k = sq[1], p = sq[2], Hkv = sk[0];
  const std::string why = " (H = " + std::to_string(H) + ", d_k = " + std::to_string(d_k) + ", p = " +
                          std::to_string(p) + " from W_Q)";
  require(sk[1] == d_k && sk[2] == p, detail::tensor_arg(pre + "W_K"), "expected shape (H_kv, ", d_k, ", ", p, ")",
          why, ", got ", io::detail::shape_string(sk));
  require(H % Hkv == 0, detail::tensor_arg(pre + "W_K"), "its ", Hkv, " key/value heads do not divide the ", H,
          " query heads of W_Q");
  const auto& sv = detail::shape_of(r, pre + "W_V", 3, "(H_kv, d_v, p)");
  const std::size_t d_v = sv[1];
  require(sv[0] == Hkv && sv[2] == p, detail::tensor_arg(pre + "W_V"), "expected shape (", Hkv, ", d_v, ", p, ")", why,
          ", got ", io::detail::shape_string(sv));
  detail::expect_tensor(r, pre + "W_O", {H, p, d_v}, why);

  checkpoint_layer<S> out;
  layer<S>& layer = out.attention;
  layer.W_Q = detail::slices_of(detail::read_values<S>(r, pre + "W_Q"), sq);
  layer.W_K = detail::slices_of(detail::read_values<S>(r, pre + "W_K"), sk);
  layer.W_V = detail::slices_of(detail::read_values<S>(r, pre + "W_V"), sv);
  layer.W_O = detail::slices_of(detail::read_values<S>(r, pre + "W_O"), {H, p, d_v});
  const auto bias = [&](const char* name, std::size_t n, std::size_t d) -> std::vector<vector<S>> {
    if (!r.contains(pre + name)) return {};
    detail::expect_tensor(r, pre + name, {n, d}, why);
    return detail::rows_of(detail::read_values<S>(r, pre + name), n, d);
  };
  layer.b_Q = bias("b_Q", H, d_k);
  layer.b_K = bias("b_K", Hkv, d_k);
  layer.b_V = bias("b_V", Hkv, d_v);
  if (r.contains(pre + "b_O")) {
    detail::expect_tensor(r, pre + "b_O", {p}, why);
    layer.b_O = detail::segment_of(detail::read_values<S>(r, pre + "b_O"), 0, static_cast<index>(p));
  }
  layer.rope_theta = detail::metadata_number(r, "rope_theta", 0);
  require(layer.rope_theta == 0 || d_k % 2 == 0, "__metadata__.rope_theta", "rotary embeddings need an even d_k, got ",
          d_k);
  out.params.causal_mask = mask::strict;
  if (const auto it = r.metadata().find("mask"); it != r.metadata().end()) {
    require(it->second == "strict" || it->second == "inclusive", "__metadata__.mask",
            "expected 'strict' or 'inclusive', got '", it->second, "'");
    out.params.causal_mask = it->second == "strict" ? mask::strict : mask::inclusive;
  }
  out.params.temperature = detail::metadata_number(r, "temperature", 0);
  out.format = checkpoint_format::suptok;
  out.layer_index = L;
  return out;
}

// Adds the tensors of `layer` to `w` in the suptok naming, each name prefixed by `prefix` (e.g. "0.").
// Every query head must share d_k and d_v (the rank-3 layout); biases are written when present, and
// a non-zero rope_theta as the file's "rope_theta" metadata (shared by every layer of the file).
template <class T>
void add_layer(io::safetensors_writer& w, const layer<T>& layer, const std::string& prefix = "") {
  using detail::require;
  require(!layer.W_Q.empty() && !layer.W_K.empty() && layer.W_V.size() == layer.W_K.size() &&
              layer.W_O.size() == layer.W_Q.size(),
          "layer", "expected W_Q, W_O with one entry per query head and W_K, W_V with one per key/value head");
  const auto stack = [&](const std::vector<matrix<T>>& ms, const char* name) {
    io::tensor<T> t;
    t.shape = {ms.size(), static_cast<std::size_t>(ms[0].rows()), static_cast<std::size_t>(ms[0].cols())};
    for (std::size_t h = 0; h < ms.size(); ++h) {
      require(ms[h].rows() == ms[0].rows() && ms[h].cols() == ms[0].cols(),
              std::string("layer.") + name + "[" + std::to_string(h) + "]",
              "every head must have the shape of head 0 in the suptok naming");
      t.data.insert(t.data.end(), ms[h].data(), ms[h].data() + ms[h].size());
    }
    w.add(prefix + name, t);
  };
  const auto stack_bias = [&](const std::vector<vector<T>>& bs, const char* name) {
    if (bs.empty()) return;
    io::tensor<T> t;
    t.shape = {bs.size(), static_cast<std::size_t>(bs[0].size())};
    for (std::size_t h = 0; h < bs.size(); ++h) {
      require(bs[h].size() == bs[0].size(), std::string("layer.") + name + "[" + std::to_string(h) + "]",
              "every head must have the size of head 0 in the suptok naming");
      t.data.insert(t.data.end(), bs[h].data(), bs[h].data() + bs[h].size());
    }
    w.add(prefix + name, t);
  };
  stack(layer.W_Q, "W_Q");
  stack(layer.W_K, "W_K");
  stack(layer.W_V, "W_V");
  stack(layer.W_O, "W_O");
  stack_bias(layer.b_Q, "b_Q");
  stack_bias(layer.b_K, "b_K");
  stack_bias(layer.b_V, "b_V");
  if (layer.b_O.size() > 0) {
    io::tensor<T> t;
    t.shape = {static_cast<std::size_t>(layer.b_O.size())};
    t.data.assign(layer.b_O.data(), layer.b_O.data() + layer.b_O.size());
    w.add(prefix + "b_O", t);
  }
  if (layer.rope_theta != 0) {
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, layer.rope_theta);
    w.set_metadata("rope_theta", std::string(buf, res.ptr));
  }
}

}  // namespace suptok::models
