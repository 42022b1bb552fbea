// Replays the seed corpus of fuzz/validation_fuzz.cpp (fuzz/corpus/validation/, regression inputs
// included) through the fuzz target itself, compiled here with the test flags: every input must
// decode into calls that return or throw a well-formed suptok::error naming one of the entry
// point's arguments. A finding of the target throws (SUPTOK_FUZZ_FAIL below) instead of aborting,
// so that the failing file is named.
#include <stdexcept>
#include <string>

#define SUPTOK_FUZZ_FAIL(message) throw std::runtime_error(std::string("validation_fuzz: ") + (message))

#include "instances.hpp"         // the shared extern template instances,
#include "instances_errors.hpp"  // and those of test_errors, before the target's includes
#include "validation_fuzz.cpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

namespace {

constexpr std::size_t entry_count = sizeof(validation_fuzz::entries) / sizeof(validation_fuzz::entries[0]);

void replay(const std::vector<std::uint8_t>& bytes) { LLVMFuzzerTestOneInput(bytes.data(), bytes.size()); }

}  // namespace

TEST_CASE("the validation fuzz corpus replays without a finding", "[errors][fuzz]") {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(SUPTOK_VALIDATION_CORPUS_DIR))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::set<std::size_t> entries;
  for (const auto& path : files) {
    INFO("input " << path.filename().string());
    std::ifstream f(path, std::ios::binary);
    const std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    if (!bytes.empty()) entries.insert(bytes[0] % entry_count);
    CHECK_NOTHROW(replay(bytes));
  }
  // The seeds start every entry point.
  CHECK(entries.size() == entry_count);
}

TEST_CASE("the validation fuzz target decodes short and constant inputs", "[errors][fuzz]") {
  // Every entry point on inputs that end early (reads past the end give 0) and on constant bytes.
  for (std::size_t e = 0; e < entry_count; ++e)
    for (int fill : {0x00, 0x40, 0x80, 0xc7, 0xff})
      for (std::size_t length : {1, 2, 9, 40, 400}) {
        INFO("entry " << e << ", fill " << fill << ", length " << length);
        std::vector<std::uint8_t> bytes(length, static_cast<std::uint8_t>(fill));
        bytes[0] = static_cast<std::uint8_t>(e);
        CHECK_NOTHROW(replay(bytes));
      }
}
