// libFuzzer target: the .npy reader on arbitrary bytes, through a seekable stream and through a
// stream that cannot seek. Any exception other than suptok::error, any sanitizer report, and any
// allocation beyond libFuzzer's -malloc_limit_mb is a finding. When a read succeeds, the result
// must be consistent (shape product = element count) and must survive a write/read round-trip
// bit for bit.
#include <suptok/io/npy.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <streambuf>
#include <string>

namespace {

// A read-only stream buffer over the input that cannot seek (like a pipe).
class pipe_buf : public std::streambuf {
 public:
  pipe_buf(const char* data, std::size_t size) {
    char* p = const_cast<char*>(data);  // the get area is only read
    setg(p, p, p + size);
  }
};

template <class T>
void check(const suptok::io::tensor<T>& t) {
  std::size_t n = 1;
  for (auto d : t.shape) n *= d;
  if (n != t.data.size()) std::abort();
  std::stringstream s(std::ios::in | std::ios::out | std::ios::binary);
  suptok::io::write_npy(s, t);
  const auto back = suptok::io::read_npy<T>(s);
  if (back.shape != t.shape || back.data.size() != t.data.size()) std::abort();
  if (!t.data.empty() && std::memcmp(back.data.data(), t.data.data(), t.data.size() * sizeof(T)) != 0) std::abort();
}

template <class T>
void read_seekable(const std::string& bytes) {
  std::istringstream in(bytes, std::ios::binary);
  try {
    check(suptok::io::read_npy<T>(in));
  } catch (const suptok::error&) {
  }
}

template <class T>
void read_pipe(const std::uint8_t* data, std::size_t size) {
  pipe_buf buf(reinterpret_cast<const char*>(data), size);
  std::istream in(&buf);
  try {
    check(suptok::io::read_npy<T>(in));
  } catch (const suptok::error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  read_seekable<double>(bytes);
  read_seekable<float>(bytes);
  read_pipe<double>(data, size);
  return 0;
}
