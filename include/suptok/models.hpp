// suptok/models.hpp: checkpoint adapters (opt-in; not included by <suptok/suptok.hpp>).
//
//   models/checkpoint.hpp  formats, detect_format, read_config, input norms and apply_norm,
//                          checkpoint_layer (layer + attention params + norm), adapter_options
//   models/gpt2.hpp        load_gpt2: Hugging Face GPT-2 (fused Conv1D c_attn, c_proj, ln_1)
//   models/llama.hpp       load_llama: Hugging Face Llama (q/k/v/o_proj, grouped heads, RoPE, RMSNorm)
//   models/native.hpp      load_suptok and add_layer: the library's own naming (W_Q (H, d_k, p), ...)
//   models/load.hpp        load_layer: any of the three, by detection or by choice
//
// Needs the io module's safetensors reader and so nlohmann-json (Debian nlohmann-json3-dev; CMake:
// find_package(nlohmann_json 3) and link nlohmann_json::nlohmann_json).
#pragma once

#include "attention/layer_attention.hpp"
#include "models/checkpoint.hpp"
#include "models/gpt2.hpp"
#include "models/llama.hpp"
#include "models/load.hpp"
#include "models/native.hpp"
