// libFuzzer target: the safetensors reader on arbitrary bytes (in memory, no file). Opens the
// reader, lists every tensor and reads each readable one as float and as double. Any exception
// other than suptok::error, any sanitizer report, and any allocation beyond libFuzzer's
// -malloc_limit_mb is a finding; a tensor read must have product(shape) elements.
#include <suptok/io/safetensors.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

template <class T>
void read_all(suptok::io::safetensors_reader& r) {
  for (const auto& info : r.tensors()) {
    try {
      const auto t = r.read<T>(info.name);
      std::size_t n = 1;
      for (auto d : t.shape) n *= d;
      if (n != t.data.size() || t.shape != info.shape) std::abort();
    } catch (const suptok::error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto r = suptok::io::safetensors_reader::from_bytes(std::string_view(reinterpret_cast<const char*>(data), size));
    std::uint64_t covered = 0;
    for (const auto& info : r.tensors()) {
      if (!r.contains(info.name) || info.end < info.begin) std::abort();
      covered += info.end - info.begin;
    }
    if (covered != r.buffer_size()) std::abort();  // the tensors tile the buffer
    read_all<float>(r);
    read_all<double>(r);
  } catch (const suptok::error&) {
  }
  return 0;
}
