// libFuzzer target: the checkpoint adapters (include/suptok/models) on arbitrary bytes, and the
// validation of the attention entry point on what they load. The first byte picks the config the
// adapters see (none, a GPT-2 one, a grouped-query Llama one with rotary embeddings), the next one
// the layer index; the rest is a safetensors file (in memory). A loaded layer runs one forward on
// a small sequence of its width. Any exception other than suptok::error, any sanitizer report and
// any allocation beyond libFuzzer's -malloc_limit_mb is a finding; so is a loaded layer that the
// forward then rejects as malformed (the adapters must validate what they build).
#include <suptok/attention/layer_attention.hpp>
#include <suptok/models.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

nlohmann::json config_of(std::uint8_t choice) {
  switch (choice % 4) {
    case 1:
      return {{"n_head", 2}, {"layer_norm_epsilon", 1e-5}};
    case 2:
      return {{"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"rope_theta", 500.0}, {"rms_norm_eps", 1e-5}};
    case 3:
      return {{"num_attention_heads", 2}};
    default:
      return nlohmann::json();
  }
}

template <class S>
void load_and_run(std::string_view bytes, const nlohmann::json& config, suptok::index layer) {
  try {
    auto r = suptok::io::safetensors_reader::from_bytes(bytes);
    suptok::models::adapter_options o;
    o.layer = layer;
    const auto ck = suptok::models::load_layer<S>(r, config, o);
    const suptok::index p = ck.attention.W_Q.empty() ? 0 : ck.attention.W_Q[0].cols();
    if (p == 0 || p > 256) return;
    const suptok::matrix<S> U = suptok::matrix<S>::Constant(3, p, S(0.5));
    try {
      (void)suptok::attention_forward<S>(U, ck.attention, ck.params);
      (void)suptok::models::apply_norm<S>(U, ck.norm);
    } catch (const suptok::error&) {
      std::abort();  // a layer the adapter accepted must be valid
    }
  } catch (const suptok::error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const nlohmann::json config = config_of(data[0]);
  const suptok::index layer = data[1] % 3;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  load_and_run<float>(bytes, config, layer);
  load_and_run<double>(bytes, config, layer);
  return 0;
}
