// Checkpoint adapters without Python: format detection, the head split of each naming on weights
// whose entries encode their own (row, column), the suptok naming written and read back bitwise,
// the input norms against closed forms, and every malformed checkpoint with the error that names
// what is wrong (missing tensor, wrong shape or rank, heads not dividing p, missing config, bad
// config values, unreadable dtype, non-finite weights, bad metadata, missing layer).
#include <suptok/models.hpp>

#include <catch2/catch.hpp>

#include "test_support.hpp"
#include "thrown.hpp"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>

using namespace suptok;
namespace m = suptok::models;
using idx = suptok::index;

namespace {

using test::thrown;  // what a call threw (tests/common/thrown.hpp)
using test::thrown_by;

using tensors = std::map<std::string, io::tensor<float>>;

io::tensor<float> filled(std::vector<std::size_t> shape, float (*f)(std::size_t) = nullptr) {
  io::tensor<float> t;
  t.shape = std::move(shape);
  std::size_t n = 1;
  for (std::size_t d : t.shape) n *= d;
  std::mt19937 gen(static_cast<unsigned>(n * 7919 + t.shape.size()));
  std::normal_distribution<float> normal(0.0f, 0.5f);
  for (std::size_t i = 0; i < n; ++i) t.data.push_back(f ? f(i) : normal(gen));
  return t;
}

// A reader over the safetensors bytes of `ts` (written by the library's writer, in memory).
io::safetensors_reader reader_of(const tensors& ts, const std::map<std::string, std::string>& metadata = {}) {
  io::safetensors_writer w;
  for (const auto& [name, t] : ts) w.add(name, t);
  for (const auto& [k, v] : metadata) w.set_metadata(k, v);
  std::ostringstream os;
  w.write(os);
  return io::safetensors_reader::from_bytes(os.str());
}

tensors gpt2_tensors(std::size_t p, const std::string& prefix = "", int layers = 1) {
  tensors ts;
  for (int l = 0; l < layers; ++l) {
    const std::string at = prefix + "h." + std::to_string(l) + ".";
    ts[at + "attn.c_attn.weight"] = filled({p, 3 * p});
    ts[at + "attn.c_attn.bias"] = filled({3 * p});
    ts[at + "attn.c_proj.weight"] = filled({p, p});
    ts[at + "attn.c_proj.bias"] = filled({p});
    ts[at + "ln_1.weight"] = filled({p});
    ts[at + "ln_1.bias"] = filled({p});
  }
  return ts;
}

tensors llama_tensors(std::size_t p, std::size_t hq, std::size_t hkv, std::size_t d, const std::string& prefix = "model.") {
  const std::string at = prefix + "layers.0.";
  tensors ts;
  ts[at + "self_attn.q_proj.weight"] = filled({hq * d, p});
  ts[at + "self_attn.k_proj.weight"] = filled({hkv * d, p});
  ts[at + "self_attn.v_proj.weight"] = filled({hkv * d, p});
  ts[at + "self_attn.o_proj.weight"] = filled({p, hq * d});
  ts[at + "input_layernorm.weight"] = filled({p});
  return ts;
}

tensors suptok_tensors(std::size_t H, std::size_t Hkv, std::size_t dk, std::size_t dv, std::size_t p) {
  return {{"W_Q", filled({H, dk, p})}, {"W_K", filled({Hkv, dk, p})}, {"W_V", filled({Hkv, dv, p})},
          {"W_O", filled({H, p, dv})}};
}

const nlohmann::json gpt2_config = {{"n_head", 2}, {"n_embd", 8}};
const nlohmann::json llama_config = {{"hidden_size", 8}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}};

float code(std::size_t i) { return static_cast<float>(i); }  // entry i holds its flat index

}  // namespace

TEST_CASE("detect_format and layer_indices read the naming from the tensor names", "[models]") {
  CHECK(m::detect_format(reader_of(gpt2_tensors(8))) == m::checkpoint_format::gpt2);
  CHECK(m::detect_format(reader_of(gpt2_tensors(8, "transformer."))) == m::checkpoint_format::gpt2);
  CHECK(m::detect_format(reader_of(llama_tensors(8, 4, 2, 2))) == m::checkpoint_format::llama);
  CHECK(m::detect_format(reader_of(llama_tensors(8, 4, 2, 2, ""))) == m::checkpoint_format::llama);
  CHECK(m::detect_format(reader_of(suptok_tensors(2, 1, 4, 3, 8))) == m::checkpoint_format::suptok);
  CHECK(m::layer_indices(reader_of(gpt2_tensors(8, "", 3)), m::checkpoint_format::gpt2) == std::vector<idx>{0, 1, 2});
  const thrown t = thrown_by([] { m::detect_format(reader_of({{"wte.weight", filled({4, 8})}})); });
  CHECK(t.argument == "format");
  CHECK(t.contains("'wte.weight'"));
  CHECK(m::parse_format("llama") == m::checkpoint_format::llama);
  CHECK(!m::parse_format("bert"));
}

TEST_CASE("GPT-2: the fused Conv1D weights split into heads as Hugging Face splits them", "[models]") {
  const std::size_t p = 8, H = 2, d = 4;
  tensors ts = gpt2_tensors(p);
  ts["h.0.attn.c_attn.weight"] = filled({p, 3 * p}, code);
  ts["h.0.attn.c_attn.bias"] = filled({3 * p}, code);
  ts["h.0.attn.c_proj.weight"] = filled({p, p}, code);
  auto r = reader_of(ts);
  const auto c = m::load_layer<double>(r, gpt2_config);
  REQUIRE(c.attention.query_heads() == idx(H));
  REQUIRE(c.attention.kv_heads() == idx(H));
  for (std::size_t h = 0; h < H; ++h)
    for (std::size_t i = 0; i < d; ++i) {
      for (std::size_t j = 0; j < p; ++j) {
        // q = x W[:, 0:p]: W_Q[h](i, j) = W(j, h d + i), k at column offset p, v at 2p.
        CHECK(c.attention.W_Q[h](idx(i), idx(j)) == double(j * 3 * p + h * d + i));
        CHECK(c.attention.W_K[h](idx(i), idx(j)) == double(j * 3 * p + p + h * d + i));
        CHECK(c.attention.W_V[h](idx(i), idx(j)) == double(j * 3 * p + 2 * p + h * d + i));
        // out = merged P: W_O[h](j, i) = P(h d + i, j).
        CHECK(c.attention.W_O[h](idx(j), idx(i)) == double((h * d + i) * p + j));
      }
      CHECK(c.attention.b_Q[h](idx(i)) == double(h * d + i));
      CHECK(c.attention.b_K[h](idx(i)) == double(p + h * d + i));
      CHECK(c.attention.b_V[h](idx(i)) == double(2 * p + h * d + i));
    }
  CHECK(c.params.causal_mask == mask::inclusive);
  CHECK(c.params.temperature == 0);  // sqrt(d)
  CHECK(c.norm.kind == m::norm_kind::layer_norm);
  CHECK(c.norm.eps == 1e-5);
  CHECK(c.attention.rope_theta == 0);
}

TEST_CASE("GPT-2: prefix, heads from the caller, layer-scaled temperature, LayerNorm eps", "[models]") {
  auto r = reader_of(gpt2_tensors(8, "transformer.", 3));
  m::adapter_options o;
  o.layer = 2;
  o.heads = 4;
  const auto c = m::load_gpt2<float>(r, nlohmann::json(), o);
  CHECK(c.attention.query_heads() == 4);
  CHECK(c.attention.W_Q[0].rows() == 2);
  CHECK(c.layer_index == 2);
  const nlohmann::json cfg = {{"n_head", 2}, {"scale_attn_by_inverse_layer_idx", true}, {"layer_norm_epsilon", 1e-3}};
  o.heads.reset();
  const auto c2 = m::load_gpt2<double>(r, cfg, o);
  CHECK(c2.params.temperature == std::sqrt(4.0) * 3);  // sqrt(d) (L + 1), d = 4, L = 2
  CHECK(c2.norm.eps == 1e-3);
}

TEST_CASE("Llama: q/k/v/o split, grouped heads, rope_theta, optional biases", "[models]") {
  const std::size_t p = 8, hq = 4, hkv = 2, d = 2;
  tensors ts = llama_tensors(p, hq, hkv, d);
  const std::string at = "model.layers.0.self_attn.";
  ts[at + "q_proj.weight"] = filled({hq * d, p}, code);
  ts[at + "k_proj.weight"] = filled({hkv * d, p}, code);
  ts[at + "o_proj.weight"] = filled({p, hq * d}, code);
  ts[at + "k_proj.bias"] = filled({hkv * d}, code);
  auto r = reader_of(ts);
  nlohmann::json cfg = llama_config;
  cfg["rope_theta"] = 500000.0;
  cfg["rms_norm_eps"] = 1e-5;
  const auto c = m::load_layer<double>(r, cfg);
  REQUIRE(c.attention.query_heads() == idx(hq));
  REQUIRE(c.attention.kv_heads() == idx(hkv));
  for (std::size_t h = 0; h < hq; ++h)
    for (std::size_t i = 0; i < d; ++i)
      for (std::size_t j = 0; j < p; ++j) {
        CHECK(c.attention.W_Q[h](idx(i), idx(j)) == double((h * d + i) * p + j));  // rows h d + i
        CHECK(c.attention.W_O[h](idx(j), idx(i)) == double(j * hq * d + h * d + i));  // columns h d + i
      }
  for (std::size_t g = 0; g < hkv; ++g)
    for (std::size_t i = 0; i < d; ++i) {
      CHECK(c.attention.W_K[g](idx(i), 0) == double((g * d + i) * p));
      CHECK(c.attention.b_K[g](idx(i)) == double(g * d + i));
    }
  CHECK(c.attention.b_Q.empty());
  CHECK(c.attention.b_O.size() == 0);
  CHECK(c.attention.rope_theta == 500000.0);
  CHECK(c.params.causal_mask == mask::inclusive);
  CHECK(c.params.temperature == 0);
  CHECK(c.norm.kind == m::norm_kind::rms_norm);
  CHECK(c.norm.eps == 1e-5);

  // Defaults: H_kv = H_q, head_dim = p / H_q, rope_theta 10000, rms_norm_eps 1e-6.
  auto r2 = reader_of(llama_tensors(p, 4, 4, 2, ""));
  const auto c2 = m::load_layer<float>(r2, nlohmann::json{{"num_attention_heads", 4}});
  CHECK(c2.attention.kv_heads() == 4);
  CHECK(c2.attention.rope_theta == 10000.0);
  CHECK(c2.norm.eps == 1e-6);
}

TEST_CASE("suptok naming: add_layer and load_suptok round-trip bitwise", "[models]") {
  layer<double> l;
  std::mt19937_64 gen(3);
  std::normal_distribution<double> normal;
  const auto rnd = [&](idx r, idx c) {
    matrix<double> x(r, c);
    for (idx i = 0; i < x.size(); ++i) x.data()[i] = normal(gen);
    return x;
  };
  for (int h = 0; h < 4; ++h) {
    l.W_Q.push_back(rnd(4, 6));
    l.W_O.push_back(rnd(6, 3));
    l.b_Q.push_back(rnd(4, 1));
  }
  for (int g = 0; g < 2; ++g) {
    l.W_K.push_back(rnd(4, 6));
    l.W_V.push_back(rnd(3, 6));
    l.b_V.push_back(rnd(3, 1));
  }
  l.b_O = rnd(6, 1);
  l.rope_theta = 123.5;
  io::safetensors_writer w;
  m::add_layer(w, l, "1.");
  std::ostringstream os;
  w.write(os);
  auto r = io::safetensors_reader::from_bytes(os.str());
  CHECK(m::layer_indices(r, m::checkpoint_format::suptok) == std::vector<idx>{1});
  m::adapter_options o;
  o.layer = 1;
  const auto c = m::load_layer<double>(r, nlohmann::json(), o);
  REQUIRE(c.attention.query_heads() == 4);
  REQUIRE(c.attention.kv_heads() == 2);
  for (int h = 0; h < 4; ++h) {
    CHECK(c.attention.W_Q[h] == l.W_Q[h]);
    CHECK(c.attention.W_O[h] == l.W_O[h]);
    CHECK(c.attention.b_Q[h] == l.b_Q[h]);
  }
  for (int g = 0; g < 2; ++g) {
    CHECK(c.attention.W_K[g] == l.W_K[g]);
    CHECK(c.attention.W_V[g] == l.W_V[g]);
    CHECK(c.attention.b_V[g] == l.b_V[g]);
  }
  CHECK(c.attention.b_K.empty());
  CHECK(c.attention.b_O == l.b_O);
  CHECK(c.attention.rope_theta == 123.5);
  CHECK(c.params.causal_mask == mask::strict);
  CHECK(c.norm.kind == m::norm_kind::none);

  auto r2 = reader_of(suptok_tensors(2, 1, 2, 2, 4), {{"mask", "inclusive"}, {"temperature", "1.5"}});
  const auto c2 = m::load_suptok<float>(r2);
  CHECK(c2.params.causal_mask == mask::inclusive);
  CHECK(c2.params.temperature == 1.5);
}

TEST_CASE("apply_norm: LayerNorm and RMSNorm against closed forms", "[models]") {
  // One row x = (1, 2, 3, 6): mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5, mean square 12.5.
  matrix<double> U(1, 4);
  U << 1, 2, 3, 6;
  m::input_norm<double> n;
  n.kind = m::norm_kind::layer_norm;
  n.weight = vector<double>::Constant(4, 2.0);
  n.bias = vector<double>::Constant(4, 0.5);
  n.eps = 0.5;
  const matrix<double> Y = m::apply_norm(U, n);
  const double inv = 1 / std::sqrt(3.5 + 0.5);  // = 0.5 exactly
  for (idx j = 0; j < 4; ++j)  // a few roundings: (x - mean) exact, * 0.5 exact, * 2 + 0.5: <= 1 eps (measured 0)
    CHECK(test::within_eps(Y(0, j), (U(0, j) - 3) * inv * 2 + 0.5, 1));
  n.kind = m::norm_kind::rms_norm;
  n.eps = 3.5;  // mean square 12.5 + 3.5 = 16: 1 / 4
  const matrix<double> Z = m::apply_norm(U, n);
  for (idx j = 0; j < 4; ++j) CHECK(test::within_eps(Z(0, j), U(0, j) / 4 * 2, 1));  // measured 0
  n.kind = m::norm_kind::none;
  CHECK(m::apply_norm(U, n) == U);
  n.kind = m::norm_kind::rms_norm;
  const thrown t = thrown_by([&] { m::apply_norm<double>(matrix<double>::Zero(2, 3), n); });
  CHECK(t.argument == "U");
}

TEST_CASE("GPT-2 malformed checkpoints name the tensor or the config key", "[models][errors]") {
  const auto error_of = [](tensors ts, const nlohmann::json& cfg, m::adapter_options o = {}) {
    return thrown_by([&] {
      auto r = reader_of(ts);
      m::load_gpt2<double>(r, cfg, o);
    });
  };
  tensors ts = gpt2_tensors(8);
  ts.erase("h.0.attn.c_proj.bias");
  thrown t = error_of(ts, gpt2_config);
  CHECK(t.argument == "tensor 'h.0.attn.c_proj.bias'");
  CHECK(t.contains("not in the file"));

  ts = gpt2_tensors(8);
  ts["h.0.attn.c_attn.weight"] = filled({8, 23});
  t = error_of(ts, gpt2_config);
  CHECK(t.argument == "tensor 'h.0.attn.c_attn.weight'");
  CHECK(t.contains("(8, 23)"));

  ts = gpt2_tensors(8);
  ts["h.0.attn.c_proj.weight"] = filled({8, 7});
  t = error_of(ts, gpt2_config);
  CHECK(t.argument == "tensor 'h.0.attn.c_proj.weight'");
  CHECK(t.contains("expected shape (8, 8)"));

  ts = gpt2_tensors(8);
  ts["h.0.ln_1.bias"] = filled({9});
  CHECK(error_of(ts, gpt2_config).argument == "tensor 'h.0.ln_1.bias'");

  t = error_of(gpt2_tensors(8), nlohmann::json());  // no config, no heads given
  CHECK(t.argument == "config.n_head");
  m::adapter_options zero_heads;
  zero_heads.heads = 0;
  CHECK(error_of(gpt2_tensors(8), gpt2_config, zero_heads).argument == "options.heads");
  t = error_of(gpt2_tensors(8), nlohmann::json{{"n_head", 3}});
  CHECK(t.argument == "config.n_head");
  CHECK(t.contains("does not divide p = 8"));
  CHECK(error_of(gpt2_tensors(8), nlohmann::json{{"n_head", "two"}}).argument == "config.n_head");
  CHECK(error_of(gpt2_tensors(8), nlohmann::json{{"n_head", 0}}).argument == "config.n_head");
  CHECK(error_of(gpt2_tensors(8), nlohmann::json{{"n_head", 2}, {"n_embd", 16}}).argument == "config.n_embd");
  CHECK(error_of(gpt2_tensors(8), nlohmann::json{{"n_head", 2}, {"layer_norm_epsilon", "x"}}).argument ==
        "config.layer_norm_epsilon");
  m::adapter_options o;
  o.layer = 1;
  t = error_of(gpt2_tensors(8), gpt2_config, o);
  CHECK(t.argument == "options.layer");
  CHECK(t.contains("layers present: 0"));

  ts = gpt2_tensors(8);
  ts["h.0.attn.c_attn.weight"].data[5] = std::numeric_limits<float>::quiet_NaN();
  t = error_of(ts, gpt2_config);
  CHECK(t.argument == "tensor 'h.0.attn.c_attn.weight'");
  CHECK(t.contains("non-finite"));
}

TEST_CASE("Llama malformed checkpoints name the tensor or the config key", "[models][errors]") {
  const auto error_of = [](tensors ts, const nlohmann::json& cfg, m::adapter_options o = {}) {
    return thrown_by([&] {
      auto r = reader_of(ts);
      m::load_llama<double>(r, cfg, o);
    });
  };
  thrown t = error_of(llama_tensors(8, 4, 2, 2), nlohmann::json());
  CHECK(t.argument == "config.num_attention_heads");
  // Overrides are named as the adapter options that carry them.
  for (const auto& [field, name] : {std::pair{&m::adapter_options::heads, "options.heads"},
                                    std::pair{&m::adapter_options::kv_heads, "options.kv_heads"},
                                    std::pair{&m::adapter_options::head_dim, "options.head_dim"}}) {
    m::adapter_options o;
    o.*field = 0;
    CHECK(error_of(llama_tensors(8, 4, 2, 2), llama_config, o).argument == name);
  }
  t = error_of(llama_tensors(8, 4, 2, 2), nlohmann::json{{"num_attention_heads", 4}, {"num_key_value_heads", 3}});
  CHECK(t.argument == "config.num_key_value_heads");
  t = error_of(llama_tensors(8, 4, 2, 2), nlohmann::json{{"num_attention_heads", 3}});
  CHECK(t.argument == "config.num_attention_heads");
  CHECK(t.contains("does not divide p = 8"));
  // head_dim 2 from the config, but the projections are for head_dim 4 -> q_proj's shape is wrong.
  t = error_of(llama_tensors(8, 4, 2, 4), llama_config);
  CHECK(t.argument == "tensor 'model.layers.0.self_attn.q_proj.weight'");
  CHECK(t.contains("expected shape (8, 8)"));
  tensors ts = llama_tensors(8, 4, 2, 2);
  ts["model.layers.0.self_attn.k_proj.weight"] = filled({6, 8});
  t = error_of(ts, llama_config);
  CHECK(t.argument == "tensor 'model.layers.0.self_attn.k_proj.weight'");
  ts = llama_tensors(8, 4, 2, 2);
  ts.erase("model.layers.0.self_attn.v_proj.weight");
  CHECK(error_of(ts, llama_config).argument == "tensor 'model.layers.0.self_attn.v_proj.weight'");
  ts = llama_tensors(8, 4, 2, 2);
  ts["model.layers.0.self_attn.q_proj.bias"] = filled({4});
  CHECK(error_of(ts, llama_config).argument == "tensor 'model.layers.0.self_attn.q_proj.bias'");
  t = error_of(llama_tensors(8, 8, 8, 1), nlohmann::json{{"num_attention_heads", 8}});
  CHECK(t.argument == "config.head_dim");  // odd head dimension with rotary embeddings
  nlohmann::json cfg = llama_config;
  cfg["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  CHECK(error_of(llama_tensors(8, 4, 2, 2), cfg).argument == "config.rope_scaling");
  m::adapter_options o;
  o.ignore_rope_scaling = true;
  CHECK(error_of(llama_tensors(8, 4, 2, 2), cfg, o).argument == "<no error>");
  cfg = llama_config;
  cfg["rope_theta"] = -1.0;
  CHECK(error_of(llama_tensors(8, 4, 2, 2), cfg).argument == "config.rope_theta");
  cfg = llama_config;
  cfg["hidden_size"] = 16;
  CHECK(error_of(llama_tensors(8, 4, 2, 2), cfg).argument == "config.hidden_size");
}

TEST_CASE("suptok-naming malformed checkpoints name the tensor or the metadata key", "[models][errors]") {
  const auto error_of = [](tensors ts, const std::map<std::string, std::string>& md = {}) {
    return thrown_by([&] {
      auto r = reader_of(ts, md);
      m::load_suptok<double>(r);
    });
  };
  tensors ts = suptok_tensors(2, 1, 4, 3, 8);
  ts["W_K"] = filled({1, 5, 8});
  thrown t = error_of(ts);
  CHECK(t.argument == "tensor 'W_K'");
  CHECK(t.contains("(1, 5, 8)"));
  ts = suptok_tensors(2, 1, 4, 3, 8);
  ts["W_O"] = filled({2, 3, 8});
  CHECK(error_of(ts).argument == "tensor 'W_O'");
  ts = suptok_tensors(2, 1, 4, 3, 8);
  ts["W_V"] = filled({3, 8});
  CHECK(error_of(ts).argument == "tensor 'W_V'");  // rank 2 instead of 3
  ts = suptok_tensors(4, 3, 4, 3, 8);
  CHECK(error_of(ts).argument == "tensor 'W_K'");  // 3 key/value heads do not divide 4
  ts = suptok_tensors(2, 1, 4, 3, 8);
  ts["b_O"] = filled({7});
  CHECK(error_of(ts).argument == "tensor 'b_O'");
  ts = suptok_tensors(2, 1, 4, 3, 8);
  ts.erase("W_V");
  CHECK(error_of(ts).argument == "tensor 'W_V'");
  CHECK(error_of(suptok_tensors(2, 1, 4, 3, 8), {{"rope_theta", "ten"}}).argument == "__metadata__.rope_theta");
  CHECK(error_of(suptok_tensors(2, 1, 3, 3, 8), {{"rope_theta", "100"}}).argument == "__metadata__.rope_theta");
  CHECK(error_of(suptok_tensors(2, 1, 4, 3, 8), {{"mask", "causal"}}).argument == "__metadata__.mask");
  CHECK(error_of(suptok_tensors(2, 1, 4, 3, 8), {{"temperature", "-1"}}).argument == "__metadata__.temperature");
}

TEST_CASE("Unreadable dtypes, config files and layers are errors that name them", "[models][errors]") {
  // A hand-built file whose W_Q is I32: listed by the reader, refused when read.
  std::string header = R"({"W_Q":{"dtype":"I32","shape":[1,2,2],"data_offsets":[0,16]},)"
                       R"("W_K":{"dtype":"F32","shape":[1,2,2],"data_offsets":[16,32]},)"
                       R"("W_V":{"dtype":"F32","shape":[1,2,2],"data_offsets":[32,48]},)"
                       R"("W_O":{"dtype":"F32","shape":[1,2,2],"data_offsets":[48,64]}})";
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  bytes += header + std::string(64, '\0');
  auto r = io::safetensors_reader::from_bytes(bytes);
  thrown t = thrown_by([&] { m::load_suptok<double>(r); });
  CHECK(t.argument == "tensor 'W_Q'");
  CHECK(t.contains("I32"));

  const auto dir = std::filesystem::temp_directory_path() / ("suptok-models-test-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  t = thrown_by([&] { m::read_config(dir / "absent.json"); });
  CHECK(t.argument == "config");
  CHECK(t.contains("cannot open"));
  std::ofstream(dir / "bad.json") << "{\"n_head\": 2,";
  t = thrown_by([&] { m::read_config(dir / "bad.json"); });
  CHECK(t.argument == "config");
  CHECK(t.contains("not valid JSON"));
  std::ofstream(dir / "list.json") << "[1, 2]";
  CHECK(thrown_by([&] { m::read_config(dir / "list.json"); }).argument == "config");
  std::ofstream(dir / "good.json") << "{\"n_head\": 2}";
  CHECK(m::read_config(dir / "good.json")["n_head"] == 2);
  t = thrown_by([&] { m::load_layer<double>(dir / "absent.safetensors"); });
  CHECK(t.argument == "path");
  std::filesystem::remove_all(dir);
}
