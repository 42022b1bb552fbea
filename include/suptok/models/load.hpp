// suptok/models/load.hpp: one entry point for every naming.
//
//   models::load_layer<S>(reader, config, options)            naming from options.format or detected
//   models::load_layer<S>(weights_path, config_path, options) the same from files; an empty
//                                                              config_path means no config.json
//
// `config` is the parsed config.json (models::read_config) or a null json when there is none.
// GPT-2 needs n_head and Llama num_attention_heads from the config or from options.heads; the
// suptok naming ignores the config. See gpt2.hpp, llama.hpp and native.hpp for the tensor names,
// layouts, attention parameters and norms of each naming, and checkpoint.hpp for the errors.
#pragma once

#include "checkpoint.hpp"
#include "gpt2.hpp"
#include "llama.hpp"
#include "native.hpp"

namespace suptok::models {

template <class S>
checkpoint_layer<S> load_layer(io::safetensors_reader& r, const nlohmann::json& config,
                               const adapter_options& options = {}) {
  const checkpoint_format f = options.format ? *options.format : detect_format(r);
  switch (f) {
    case checkpoint_format::gpt2:
      return load_gpt2<S>(r, config, options);
    case checkpoint_format::llama:
      return load_llama<S>(r, config, options);
    default:
      return load_suptok<S>(r, options);
  }
}

template <class S>
checkpoint_layer<S> load_layer(const std::filesystem::path& weights, const std::filesystem::path& config_path = {},
                               const adapter_options& options = {}) {
  io::safetensors_reader r(weights);
  const nlohmann::json config = config_path.empty() ? nlohmann::json() : read_config(config_path);
  return load_layer<S>(r, config, options);
}

}  // namespace suptok::models
