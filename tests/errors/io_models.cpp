// The io and models tables of docs/errors.md beyond tests/io and tests/models: stream write
// failures (`out`), a .npy header over 1 MiB, null and unseekable reader streams (`in`), the
// table's totals and JSON path, a configuration directory, negative layer indices, boolean and
// eps settings of config.json, the input norm (`norm.bias`, `norm.eps`) and add_layer's checks.
#include <suptok/io.hpp>
#include <suptok/models.hpp>

#include "error_cases.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <sstream>

using namespace suptok;
using namespace suptok::errors_test;
namespace m = suptok::models;

namespace {

// A stream that has failed: every write to it fails.
struct failed_stream : std::ostringstream {
  failed_stream() { setstate(std::ios::badbit); }
};

// A stream buffer over bytes that cannot seek (std::streambuf's default seekoff fails).
struct unseekable_buffer : std::streambuf {
  std::string bytes;
  explicit unseekable_buffer(std::string b) : bytes(std::move(b)) { setg(bytes.data(), bytes.data(), bytes.data() + bytes.size()); }
};

io::tensor<float> constant(std::vector<std::size_t> shape, float value = 0.1f) {
  std::size_t n = 1;
  for (std::size_t d : shape) n *= d;
  return {std::move(shape), std::vector<float>(n, value)};
}

// A reader over a file of the given tensors (written in memory).
io::safetensors_reader reader_of(const std::map<std::string, io::tensor<float>>& tensors) {
  io::safetensors_writer w;
  for (const auto& [name, t] : tensors) w.add(name, t);
  std::ostringstream os;
  w.write(os);
  return io::safetensors_reader::from_bytes(os.str());
}

// One GPT-2 layer (p = 4) and one Llama layer (p = 4, 2 query heads of d = 2, 1 key/value head).
std::map<std::string, io::tensor<float>> gpt2_layer() {
  return {{"h.0.attn.c_attn.weight", constant({4, 12})}, {"h.0.attn.c_attn.bias", constant({12})},
          {"h.0.attn.c_proj.weight", constant({4, 4})},  {"h.0.attn.c_proj.bias", constant({4})},
          {"h.0.ln_1.weight", constant({4}, 1)},         {"h.0.ln_1.bias", constant({4}, 0)}};
}
std::map<std::string, io::tensor<float>> llama_layer() {
  const std::string at = "model.layers.0.";
  return {{at + "self_attn.q_proj.weight", constant({4, 4})}, {at + "self_attn.k_proj.weight", constant({2, 4})},
          {at + "self_attn.v_proj.weight", constant({2, 4})}, {at + "self_attn.o_proj.weight", constant({4, 4})},
          {at + "input_layernorm.weight", constant({4}, 1)}};
}

std::function<void()> load_gpt2_with(nlohmann::json config, m::adapter_options o = {}) {
  return [=] {
    auto r = reader_of(gpt2_layer());
    m::load_gpt2<double>(r, config, o);
  };
}
std::function<void()> load_llama_with(nlohmann::json config, m::adapter_options o = {}) {
  return [=] {
    auto r = reader_of(llama_layer());
    m::load_llama<double>(r, config, o);
  };
}

m::adapter_options at_layer(suptok::index L) {
  m::adapter_options o;
  o.layer = L;
  return o;
}

}  // namespace

TEST_CASE("io writers name a failed stream; readers a null or unseekable one", "[errors][io]") {
  const io::tensor<double> t{{2}, {1, 2}};
  io::table table;
  table.add_column("a", std::vector<double>{1, 2});
  table.add_total("n", 2);
  io::safetensors_writer writer;
  writer.add("x", t);
  std::ostringstream file;
  writer.write(file);
  io::tensor<double> deep;  // rank 400000: a header of 1.2 MB
  deep.shape.assign(400000, 1);
  deep.data = {1.0};
  check_cases({
      {"write_npy (tensor) to a failed stream", "out", [&] { failed_stream s; io::write_npy(s, t); }},
      {"write_npy (matrix) to a failed stream", "out", [&] { failed_stream s; io::write_npy(s, M(M::Ones(2, 2))); }},
      {"write_npy: a header over 1 MiB", "array", [&] { std::ostringstream s; io::write_npy(s, deep); }},
      {"safetensors_writer::write to a failed stream", "out", [&] { failed_stream s; writer.write(s); }},
      {"table::write_csv to a failed stream", "out", [&] { failed_stream s; table.write_csv(s); }},
      {"table::write_json to a failed stream", "out", [&] { failed_stream s; table.write_json(s); }},
      {"table::write_json to a missing directory", "path",
       [&] { table.write_json(std::filesystem::temp_directory_path() / "suptok-no-such-dir" / "t.json"); }},
      {"table::add_total: empty name", "name", [&] { table.add_total("", 1.0); }},
      {"table::add_total: duplicate", "name", [&] { table.add_total("n", true); }},
      {"safetensors_reader: null stream", "in", [] { io::safetensors_reader r(std::unique_ptr<std::istream>{}); }},
      {"safetensors_reader: unseekable stream", "in",
       [&] {
         auto buffer = std::make_shared<unseekable_buffer>(file.str());
         struct holder : std::istream {
           std::shared_ptr<unseekable_buffer> b;
           explicit holder(std::shared_ptr<unseekable_buffer> p) : std::istream(p.get()), b(std::move(p)) {}
         };
         io::safetensors_reader r(std::make_unique<holder>(buffer));
       }},
      {"reader.info: no such tensor", "name", [&] { io::safetensors_reader::from_bytes(file.str()).info("y"); }},
  });
  check_valid("the same reader from a seekable stream", [&] { io::safetensors_reader::from_bytes(file.str()).info("x"); });
}

TEST_CASE("models: config file, layer index and settings are named", "[errors][models]") {
  const nlohmann::json gpt2 = {{"n_head", 2}}, llama = {{"num_attention_heads", 2}, {"num_key_value_heads", 1}};
  check_valid("load_gpt2", load_gpt2_with(gpt2));
  check_valid("load_llama", load_llama_with(llama));
  nlohmann::json flag = gpt2, gpt2_eps = gpt2, llama_eps = llama, theta = llama, kv = llama;
  flag["scale_attn_weights"] = "yes";
  gpt2_eps["layer_norm_epsilon"] = -1e-5;
  llama_eps["rms_norm_eps"] = -1e-6;
  theta["rope_theta"] = "10000";
  kv["num_key_value_heads"] = 0;
  check_cases({
      {"read_config: a directory", "config", [] { m::read_config(std::filesystem::temp_directory_path()); }},
      {"load_gpt2: layer -1", "options.layer", load_gpt2_with(gpt2, at_layer(-1))},
      {"load_llama: layer 1 of 1", "options.layer", load_llama_with(llama, at_layer(1))},
      {"load_suptok: layer -2", "options.layer",
       [] {
         auto r = reader_of({{"W_Q", constant({1, 2, 4})}, {"W_K", constant({1, 2, 4})}, {"W_V", constant({1, 2, 4})},
                             {"W_O", constant({1, 4, 2})}});
         m::load_suptok<double>(r, at_layer(-2));
       }},
      {"load_layer: Llama naming forced on a GPT-2 file", "options.layer",
       [&] {
         auto r = reader_of(gpt2_layer());
         m::adapter_options o;
         o.format = m::checkpoint_format::llama;
         m::load_layer<double>(r, gpt2, o);
       }},
      {"GPT-2: a boolean setting given as a string", "config.scale_attn_weights", load_gpt2_with(flag)},
      {"GPT-2: negative layer_norm_epsilon", "config.layer_norm_epsilon", load_gpt2_with(gpt2_eps)},
      {"Llama: negative rms_norm_eps", "config.rms_norm_eps", load_llama_with(llama_eps)},
      {"Llama: rope_theta as a string", "config.rope_theta", load_llama_with(theta)},
      {"Llama: zero key/value heads", "config.num_key_value_heads", load_llama_with(kv)},
  });
}

TEST_CASE("apply_norm names the norm's fields; add_layer the layer's", "[errors][models]") {
  const M U = seq(3, 4, 5);
  m::input_norm<double> ln{m::norm_kind::layer_norm, V::Ones(4), V::Zero(4), 1e-5};
  m::input_norm<double> rms{m::norm_kind::rms_norm, V::Ones(4), V(), 1e-6};
  check_valid("LayerNorm", [&] { m::apply_norm<double>(U, ln); });
  check_valid("RMSNorm", [&] { m::apply_norm<double>(U, rms); });
  const auto norm_with = [&U](m::input_norm<double> n) { return [=] { m::apply_norm<double>(U, n); }; };
  auto short_bias = ln, nan_eps = rms, negative_eps = ln;
  short_bias.bias = V::Zero(3);
  nan_eps.eps = NaN;
  negative_eps.eps = -1;

  const layer<float> l = [] {
    layer<float> f;
    for (int h = 0; h < 2; ++h) {
      f.W_Q.push_back(matrix<float>::Ones(2, 4));
      f.W_O.push_back(matrix<float>::Ones(4, 2));
      f.b_Q.push_back(vector<float>::Ones(2));
    }
    f.W_K = {matrix<float>::Ones(2, 4)};
    f.W_V = {matrix<float>::Ones(2, 4)};
    f.b_K = {vector<float>::Ones(2)};
    return f;
  }();
  const auto add = [](layer<float> bad) {
    return [=] {
      io::safetensors_writer w;
      m::add_layer(w, bad);
    };
  };
  auto no_keys = l, wide_q = l, narrow_o = l, short_bq = l;
  no_keys.W_K.clear();
  wide_q.W_Q[1] = matrix<float>::Ones(3, 4);
  narrow_o.W_O[1] = matrix<float>::Ones(4, 1);
  short_bq.b_Q[1] = vector<float>::Ones(1);
  check_valid("add_layer", add(l));
  check_cases({
      {"apply_norm: LayerNorm bias of 3 for p = 4", "norm.bias", norm_with(short_bias)},
      {"apply_norm: NaN eps", "norm.eps", norm_with(nan_eps)},
      {"apply_norm: negative eps", "norm.eps", norm_with(negative_eps)},
      {"apply_norm: U before the bias", "U", [&] { m::apply_norm<double>(seq(3, 5, 5), short_bias); }},
      {"add_layer: no key heads", "layer", add(no_keys)},
      {"add_layer: query heads of different shapes", "layer.W_Q[1]", add(wide_q)},
      {"add_layer: output blocks of different shapes", "layer.W_O[1]", add(narrow_o)},
      {"add_layer: query biases of different sizes", "layer.b_Q[1]", add(short_bq)},
      {"add_layer: the same prefix twice", "name",
       [&] {
         io::safetensors_writer w;
         m::add_layer(w, l, "0.");
         m::add_layer(w, l, "0.");
       }},
  });
}
