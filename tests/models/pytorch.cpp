// Checkpoint adapters against PyTorch: make_checkpoints.py writes tiny GPT-2, Llama and
// suptok-named checkpoints, embeddings and the attention output of an independent PyTorch
// implementation of each family's layer (float32), then runs this program with
// SUPTOK_MODELS_DIR set. For every manifest entry: the checkpoint is loaded through the adapter
// (format detected, config read), the input norm applied when the entry asks, and
// suptok::attention_forward in double and in float compared with the PyTorch output.
//
// Bounds, in eps of float relative to the largest |output| of the layer (the scale passed to
// within_eps): PyTorch computes in float32, so its own rounding dominates: the projections (sums
// of 8 to 16 products), softmax, the value average and the output projection, plus float32 RoPE
// angles (inv_freq and t * inv_freq rounded to float32) and float32 norms. Measured over all 19
// entries: double path at most 7.4 eps, float path at most 9.4 eps; bound 32 eps for both.
#include <suptok/io.hpp>
#include <suptok/models.hpp>

#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace suptok;
namespace m = suptok::models;

namespace {

constexpr double bound_eps = 32;

template <class S>
double max_error_eps(const matrix<S>& mu, const matrix<double>& ref) {
  const double scale = ref.cwiseAbs().maxCoeff();
  double worst = 0;
  for (suptok::index i = 0; i < ref.rows(); ++i)
    for (suptok::index j = 0; j < ref.cols(); ++j) {
      const auto c = test::within_eps<float>(double(mu(i, j)), ref(i, j), bound_eps, scale);
      CHECK(c);
      worst = std::max(worst, c.error);
    }
  return worst;
}

}  // namespace

TEST_CASE("adapters reproduce PyTorch's attention of each model family", "[models][pytorch]") {
  const char* dir_env = std::getenv("SUPTOK_MODELS_DIR");
  REQUIRE(dir_env != nullptr);  // run through make_checkpoints.py, never alone
  const std::filesystem::path dir(dir_env);
  std::ifstream f(dir / "manifest.json");
  REQUIRE(f.is_open());
  const nlohmann::json manifest = nlohmann::json::parse(f);
  REQUIRE(manifest.size() >= 19);
  double worst_double = 0, worst_float = 0;
  for (const auto& e : manifest) {
    const std::string label = e["case"].get<std::string>() + " layer " + std::to_string(e["layer"].get<int>()) +
                              (e["apply_norm"].get<bool>() ? " (normed)" : "");
    INFO(label);
    REQUIRE(!e["reference"].is_null());
    const std::filesystem::path config = e["config"].is_null() ? std::filesystem::path() : dir / e["config"].get<std::string>();
    m::adapter_options o;
    o.layer = e["layer"].get<suptok::index>();
    const matrix<double> ref = io::as_matrix(io::read_npy<double>(dir / e["reference"].get<std::string>()));

    const auto cd = m::load_layer<double>(dir / e["weights"].get<std::string>(), config, o);
    CHECK(std::string(m::to_string(cd.format)) == e["family"].get<std::string>());
    matrix<double> Ud = io::as_matrix(io::read_npy<double>(dir / e["embeddings"].get<std::string>()));
    if (e["apply_norm"].get<bool>()) Ud = m::apply_norm(Ud, cd.norm);
    const double ed = max_error_eps(attention_forward<double>(Ud, cd.attention, cd.params).mu, ref);

    const auto cf = m::load_layer<float>(dir / e["weights"].get<std::string>(), config, o);
    matrix<float> Uf = io::as_matrix(io::read_npy<float>(dir / e["embeddings"].get<std::string>()));
    if (e["apply_norm"].get<bool>()) Uf = m::apply_norm(Uf, cf.norm);
    const double ef = max_error_eps(attention_forward<float>(Uf, cf.attention, cf.params).mu, ref);
    WARN(label << ": max error " << ed << " eps of float (double path), " << ef << " (float path)");
    worst_double = std::max(worst_double, ed);
    worst_float = std::max(worst_float, ef);
  }
  WARN("over all entries: double path " << worst_double << " eps, float path " << worst_float << " eps (bound "
                                        << bound_eps << ")");
}
