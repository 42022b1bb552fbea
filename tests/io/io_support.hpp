// Helpers of the io tests: byte strings built by hand, temporary files, and the error a call
// throws (its argument name and message).
#pragma once

#include <suptok/core/error.hpp>

#include "thrown.hpp"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace io_test {

using suptok::test::thrown;  // what a call threw (tests/common/thrown.hpp)
using suptok::test::thrown_by;

// Little-endian encodings, written out byte by byte (independent of the library's helpers).
inline std::string le(std::uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}
inline std::string f32(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, 4);
  return le(b, 4);
}
inline std::string f64(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, 8);
  return le(b, 8);
}

// A .npy file: magic, version, header length of `len_bytes`, the dict padded to 64 bytes.
inline std::string npy_bytes(const std::string& dict, int major = 1, const std::string& data = "") {
  const int len_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  while ((6 + 2 + len_bytes + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  return std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0' + le(header.size(), len_bytes) + header + data;
}

// A safetensors file: the 8-byte length, the header text as given, then the buffer.
inline std::string safetensors_bytes(const std::string& header, const std::string& buffer) {
  return le(header.size(), 8) + header + buffer;
}

// A fresh directory under the system's temporary directory, removed at scope exit.
class temp_dir {
 public:
  temp_dir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("suptok-io-test-" + std::to_string(rd()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Bitwise equality of floating-point sequences (NaNs with equal payloads compare equal).
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

}  // namespace io_test
