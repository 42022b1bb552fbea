// suptok/models/checkpoint.hpp: what the checkpoint adapters share: the naming of a checkpoint,
// the loaded layer (weights, recommended attention parameters, input norm), config.json access,
// tensor reads with shape checks, format detection and the input norm itself.
//
//   models::checkpoint_format        gpt2, llama or suptok (the naming of the tensors)
//   models::detect_format(reader)    the naming, from the tensor names alone
//   models::layer_indices(reader, f) the layer indices present in the file for naming f
//   models::read_config(path)        config.json as an nlohmann::json object
//   models::input_norm<S>            none, LayerNorm (weight, bias, eps) or RMSNorm (weight, eps)
//   models::apply_norm(U, norm)      the norm applied to every row of a residual-stream U (N, p)
//   models::checkpoint_layer<S>      {attention (suptok::layer<S>), params, norm, format, layer_index}
//   models::adapter_options          layer index and overrides of the head counts (see load.hpp)
//
// Detection looks for the query weight of some layer:
//   gpt2    [transformer.]h.{L}.attn.c_attn.weight
//   llama   [model.]layers.{L}.self_attn.q_proj.weight
//   suptok  W_Q or {L}.W_Q
// (checked in that order; the first naming that matches wins).
//
// Norms, per row x of U (p entries), in the scalar S:
//   LayerNorm  y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias   (var with divisor p)
//   RMSNorm    y = x / sqrt(mean(x^2) + eps) * weight
// Hugging Face computes RMSNorm in float32 when the model runs in half precision; here the norm
// runs in S, whatever the precision of the stored weights.
//
// Errors are suptok::error naming what is wrong: "tensor 'NAME'" (missing, wrong rank or shape,
// non-finite entries, unreadable dtype), "config.KEY" (missing, not a positive integer, not a
// number), "config" (unreadable file, invalid JSON, not an object), "format" (no known naming),
// "options.layer" (no such layer in the file), "U" (apply_norm: p differs from the norm's).
// Tensors are read as float when S is float and as double otherwise (then converted to S), so
// F16 and BF16 weights arrive exactly and F64 weights read in float are rounded once.
#pragma once

#include <suptok/attention/layer.hpp>
#include <suptok/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace suptok::models {

enum class checkpoint_format { gpt2, llama, suptok };

inline const char* to_string(checkpoint_format f) {
  return f == checkpoint_format::gpt2 ? "gpt2" : f == checkpoint_format::llama ? "llama" : "suptok";
}

// "gpt2", "llama" or "suptok"; nullopt for anything else.
inline std::optional<checkpoint_format> parse_format(std::string_view s) {
  if (s == "gpt2") return checkpoint_format::gpt2;
  if (s == "llama") return checkpoint_format::llama;
  if (s == "suptok") return checkpoint_format::suptok;
  return std::nullopt;
}

enum class norm_kind { none, layer_norm, rms_norm };

inline const char* to_string(norm_kind k) {
  return k == norm_kind::none ? "none" : k == norm_kind::layer_norm ? "LayerNorm" : "RMSNorm";
}

// The layer's input norm: applied to the residual stream before attention.
template <class S>
struct input_norm {
  norm_kind kind = norm_kind::none;
  vector<S> weight;  // (p), LayerNorm and RMSNorm
  vector<S> bias;    // (p), LayerNorm only
  double eps = 0;
};

// One attention layer read from a checkpoint.
template <class S>
struct checkpoint_layer {
  layer<S> attention;          // the weights in the library's layer description
  attention_params params;     // the family's mask and temperature (0: sqrt(d_k))
  input_norm<S> norm;          // the family's input norm (none for the suptok naming)
  checkpoint_format format = checkpoint_format::suptok;
  index layer_index = 0;
};

// What the caller may give instead of (or on top of) config.json.
struct adapter_options {
  std::optional<checkpoint_format> format;  // detected from the tensor names when empty
  index layer = 0;                          // which layer
  std::optional<index> heads;               // GPT-2 n_head / Llama num_attention_heads
  std::optional<index> kv_heads;            // Llama num_key_value_heads
  std::optional<index> head_dim;            // Llama head_dim
  bool ignore_rope_scaling = false;         // Llama: read a config with rope_scaling as if it had none
};

// The input norm applied to every row of U (N, p).
template <class S>
matrix<S> apply_norm(const_ref<S> U, const input_norm<S>& norm) {
  using std::sqrt;
  if (norm.kind == norm_kind::none) return U;
  const index p = norm.weight.size();
  suptok::detail::require(U.cols() == p, "U", "the input norm has p = ", p, ", U has ", U.cols(), " columns");
  suptok::detail::require(norm.kind != norm_kind::layer_norm || norm.bias.size() == p, "norm.bias", "expected ", p,
                          " entries, got ", norm.bias.size());
  suptok::detail::require(std::isfinite(norm.eps) && norm.eps >= 0, "norm.eps", "must be finite and >= 0, got ",
                          norm.eps);
  matrix<S> Y(U.rows(), p);
  const S eps = S(norm.eps);
  for (index t = 0; t < U.rows(); ++t) {
    if (norm.kind == norm_kind::layer_norm) {
      const S mean = U.row(t).sum() / S(p);
      S var = S(0);
      for (index j = 0; j < p; ++j) var += (U(t, j) - mean) * (U(t, j) - mean);
      var /= S(p);
      const S inv = S(1) / sqrt(var + eps);
      for (index j = 0; j < p; ++j) Y(t, j) = (U(t, j) - mean) * inv * norm.weight(j) + norm.bias(j);
    } else {
      S ms = S(0);
      for (index j = 0; j < p; ++j) ms += U(t, j) * U(t, j);
      ms /= S(p);
      const S inv = S(1) / sqrt(ms + eps);
      for (index j = 0; j < p; ++j) Y(t, j) = U(t, j) * inv * norm.weight(j);
    }
  }
  return Y;
}

// config.json (or any JSON object of model settings).
inline nlohmann::json read_config(const std::filesystem::path& path) {
  std::error_code ec;
  suptok::detail::require(!std::filesystem::is_directory(path, ec), "config", "'", path.string(), "' is a directory");
  std::ifstream f(path, std::ios::binary);
  suptok::detail::require(f.is_open(), "config", "cannot open '", path.string(), "' for reading");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw error("config", "'" + path.string() + "' is not valid JSON: " + e.what());
  }
  suptok::detail::require(j.is_object(), "config", "'", path.string(), "' is not a JSON object");
  return j;
}

namespace detail {

using suptok::detail::require;

// The scalar the reader produces for S: float for float, double for everything else.
template <class S>
using read_scalar = std::conditional_t<std::is_same_v<S, float>, float, double>;

inline std::string tensor_arg(const std::string& name) { return "tensor '" + name + "'"; }

// A positive integer setting: the caller's value (the adapter option `given_name`), else config[key],
// else nullopt.
inline std::optional<index> config_count(const nlohmann::json& config, const std::string& key,
                                         std::optional<index> given = std::nullopt,
                                         const std::string& given_name = "") {
  if (given) {
    require(*given > 0, given_name, "must be a positive integer, got ", *given);
    return given;
  }
  if (!config.is_object()) return std::nullopt;
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  require(it->is_number_integer() && it->get<std::int64_t>() > 0, "config." + key,
          "must be a positive integer, got ", it->dump());
  return static_cast<index>(it->get<std::int64_t>());
}

// A finite number setting, or `fallback` when absent.
inline double config_number(const nlohmann::json& config, const std::string& key, double fallback) {
  if (!config.is_object()) return fallback;
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  require(it->is_number() && std::isfinite(it->get<double>()), "config." + key, "must be a finite number, got ",
          it->dump());
  return it->get<double>();
}

inline bool config_flag(const nlohmann::json& config, const std::string& key, bool fallback) {
  if (!config.is_object()) return fallback;
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  require(it->is_boolean(), "config." + key, "must be true or false, got ", it->dump());
  return it->get<bool>();
}

// The tensor's info, after checking that it exists and has exactly `shape`; `why` explains where
// the expected shape comes from (appended to the message).
inline const io::tensor_info& expect_tensor(const io::safetensors_reader& r, const std::string& name,
                                            const std::vector<std::size_t>& shape, const std::string& why) {
  require(r.contains(name), tensor_arg(name), "not in the file");
  const io::tensor_info& ti = r.info(name);
  require(ti.shape == shape, tensor_arg(name), "expected shape ", io::detail::shape_string(shape), why, ", got ",
          io::detail::shape_string(ti.shape));
  return ti;
}

// The tensor's values in C order as S, after checking that every one is finite.
template <class S>
std::vector<S> read_values(io::safetensors_reader& r, const std::string& name) {
  const io::tensor<read_scalar<S>> t = r.read<read_scalar<S>>(name);
  std::vector<S> v(t.data.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    require(std::isfinite(t.data[i]), tensor_arg(name), "non-finite value at flat index ", i);
    v[i] = S(t.data[i]);
  }
  return v;
}

// A (rows, cols) block of a row-major (R, C) array starting at (r0, c0), optionally transposed.
template <class S>
matrix<S> block_of(const std::vector<S>& a, index C, index r0, index c0, index rows, index cols, bool transpose) {
  matrix<S> m(transpose ? cols : rows, transpose ? rows : cols);
  for (index i = 0; i < rows; ++i)
    for (index j = 0; j < cols; ++j) {
      const S x = a[static_cast<std::size_t>((r0 + i) * C + c0 + j)];
      if (transpose)
        m(j, i) = x;
      else
        m(i, j) = x;
    }
  return m;
}

template <class S>
vector<S> segment_of(const std::vector<S>& a, index begin, index size) {
  vector<S> v(size);
  for (index i = 0; i < size; ++i) v(i) = a[static_cast<std::size_t>(begin + i)];
  return v;
}

// Parses "{prefix}{digits}{suffix}" and returns the number, or nullopt.
inline std::optional<index> layer_number(std::string_view name, std::string_view prefix, std::string_view suffix) {
  if (name.size() <= prefix.size() + suffix.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - suffix.size()) != suffix)
    return std::nullopt;
  const std::string_view digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.size() > 9) return std::nullopt;
  index n = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

// The (prefix, suffix) pairs around the layer number of a naming's query weight.
inline std::vector<std::pair<std::string, std::string>> query_patterns(checkpoint_format f) {
  switch (f) {
    case checkpoint_format::gpt2:
      return {{"h.", ".attn.c_attn.weight"}, {"transformer.h.", ".attn.c_attn.weight"}};
    case checkpoint_format::llama:
      return {{"model.layers.", ".self_attn.q_proj.weight"}, {"layers.", ".self_attn.q_proj.weight"}};
    default:
      return {{"", ".W_Q"}};
  }
}

}  // namespace detail

// The layer indices of naming f present in the file (sorted). For the suptok naming, a plain
// "W_Q" counts as layer 0.
inline std::vector<index> layer_indices(const io::safetensors_reader& r, checkpoint_format f) {
  std::set<index> found;
  const auto patterns = detail::query_patterns(f);
  for (const io::tensor_info& ti : r.tensors()) {
    if (f == checkpoint_format::suptok && ti.name == "W_Q") found.insert(0);
    for (const auto& [prefix, suffix] : patterns)
      if (const auto n = detail::layer_number(ti.name, prefix, suffix)) found.insert(*n);
  }
  return {found.begin(), found.end()};
}

// The naming of the checkpoint, from its tensor names.
inline checkpoint_format detect_format(const io::safetensors_reader& r) {
  for (checkpoint_format f : {checkpoint_format::gpt2, checkpoint_format::llama, checkpoint_format::suptok})
    if (!layer_indices(r, f).empty()) return f;
  std::string names;
  std::size_t shown = 0;
  for (const io::tensor_info& ti : r.tensors()) {
    if (shown == 3) {
      names += ", ...";
      break;
    }
    names += (shown++ ? ", '" : "'") + ti.name + "'";
  }
  throw error("format", "cannot tell the naming from the tensor names (" +
                            (names.empty() ? std::string("none") : names) +
                            "): expected GPT-2 (h.0.attn.c_attn.weight), Llama "
                            "(model.layers.0.self_attn.q_proj.weight) or suptok (W_Q)");
}

namespace detail {

// Checks that layer L is >= 0 and exists for naming f (error "options.layer", naming the layers
// present).
inline void require_layer(const io::safetensors_reader& r, checkpoint_format f, index L) {
  suptok::detail::require(L >= 0, "options.layer", "must be >= 0, got ", L);
  const std::vector<index> present = layer_indices(r, f);
  bool ok = false;
  for (index i : present) ok = ok || i == L;
  if (ok) return;
  std::string list;
  for (std::size_t i = 0; i < present.size() && i < 8; ++i) list += (i ? ", " : "") + std::to_string(present[i]);
  if (present.size() > 8) list += ", ...";
  throw error("options.layer", "layer " + std::to_string(L) + " is not in the file (" + to_string(f) +
                                   " naming; layers present: " + (list.empty() ? std::string("none") : list) + ")");
}

}  // namespace detail
}  // namespace suptok::models
