// Replays the fuzz seed corpus (fuzz/corpus/<target>/) through the readers under the test
// suite's compiler: every input either reads to a consistent tensor or throws suptok::error.
// Inputs for which a fuzz target (fuzz/, scripts/fuzz.sh) reports a crash go into the corpus
// directory of that target, and a TEST_CASE below states what the reader must do with them.
// (scripts/fuzz.sh runs of 150 s per target have found none so far.)
#include <suptok/io/npy.hpp>
#ifdef SUPTOK_TEST_HAS_JSON
#include <suptok/io/safetensors.hpp>
#endif

#include <catch2/catch.hpp>

#include "io_support.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>

namespace {

std::vector<std::filesystem::path> corpus(const std::string& target) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(SUPTOK_FUZZ_CORPUS_DIR) / target))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::size_t product(const std::vector<std::size_t>& shape) {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

}  // namespace

TEST_CASE("regressions: the .npy fuzz corpus reads or fails cleanly", "[io][npy][regressions]") {
  const auto files = corpus("npy");
  REQUIRE(files.size() >= 10);
  int read = 0, refused = 0;
  for (const auto& f : files) {
    INFO(f.filename().string());
    std::istringstream in(io_test::read_file(f), std::ios::binary);
    const auto e = io_test::thrown_by([&] {
      const auto t = suptok::io::read_npy<double>(in);
      CHECK(product(t.shape) == t.data.size());
    });
    (e.argument == "<no error>" ? read : refused)++;
  }
  CHECK(read >= 5);     // the valid seeds
  CHECK(refused >= 4);  // Fortran order, big-endian, int64, short data
}

#ifdef SUPTOK_TEST_HAS_JSON
TEST_CASE("regressions: the safetensors fuzz corpus reads or fails cleanly", "[io][safetensors][regressions]") {
  const auto files = corpus("safetensors");
  REQUIRE(files.size() >= 5);
  int opened = 0;
  for (const auto& f : files) {
    INFO(f.filename().string());
    const auto e = io_test::thrown_by([&] {
      auto r = suptok::io::safetensors_reader::from_bytes(io_test::read_file(f));
      ++opened;
      for (const auto& info : r.tensors()) {
        const auto t = io_test::thrown_by([&] {
          const auto x = r.read<float>(info.name);
          CHECK(product(x.shape) == x.data.size());
        });
        CHECK((t.argument == "<no error>" || t.argument == "tensor '" + info.name + "'"));
      }
    });
    CHECK((e.argument == "<no error>" || e.argument == "header" || e.argument.rfind("tensor '", 0) == 0));
  }
  CHECK(opened >= 5);
}
#endif
