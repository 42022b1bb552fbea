// suptok/io/tensor.hpp: the owning tensor type of the io module and its bridges to matrices.
//
//   io::tensor<T>            shape (std::vector<std::size_t>) + data (std::vector<T>), C order
//                            (the last index varies fastest), T = float or double
//   io::as_matrix(array)     a rank-2 tensor (N, p) as a row-major suptok::matrix<T>
//   io::as_matrices(array)   a rank-3 tensor (B, N, p) as B matrices (N, p); rank 2 gives one
//   io::to_tensor(m)         a matrix (N, p) as a rank-2 tensor; a vector of B equal-shape
//                            matrices as a rank-3 tensor (B, N, p)
//
// A tensor is valid when the product of its shape equals data.size() and every dimension fits in
// a signed 64-bit index; the helpers check this and throw suptok::error naming "array" (or "ms")
// otherwise. A rank-0 tensor has one element.
//
// The detail namespace holds what the readers share: little-endian byte loads and stores (the
// files are little-endian whatever the host), shape products with overflow checks, and bounded
// reads from streams (data is read in chunks and stored as it arrives, so a file that claims a
// huge shape but is short never causes a huge allocation).
#pragma once

#include <suptok/core/error.hpp>
#include <suptok/core/view.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <istream>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace suptok::io {

template <class T>
struct tensor {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "io::tensor holds float or double");
  using value_type = T;

  std::vector<std::size_t> shape;
  std::vector<T> data;

  std::size_t rank() const noexcept { return shape.size(); }
  std::size_t size() const noexcept { return data.size(); }
};

namespace detail {

using suptok::detail::message;
using suptok::detail::require;

// The largest dimension and element count accepted anywhere: a signed 64-bit index.
inline constexpr std::uint64_t max_extent = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

// The number of elements of `shape` and its size in bytes for elements of `elem_size` bytes.
// Returns false when a dimension or the byte count exceeds max_extent.
inline bool shape_count(const std::vector<std::size_t>& shape, std::size_t elem_size, std::uint64_t& count,
                        std::uint64_t& bytes) {
  std::uint64_t n = 1;
  bool zero = false;
  for (std::size_t d : shape) {
    if (d > max_extent) return false;
    if (d == 0) zero = true;
  }
  if (zero) {
    count = 0;
    bytes = 0;
    return true;
  }
  for (std::size_t d : shape) {
    if (n > max_extent / d) return false;
    n *= d;
  }
  if (n > max_extent / elem_size) return false;
  count = n;
  bytes = n * elem_size;
  return true;
}

inline std::string shape_string(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

template <class T>
void require_valid(const tensor<T>& array, const std::string& name) {
  std::uint64_t count = 0, bytes = 0;
  require(shape_count(array.shape, sizeof(T), count, bytes), name, "shape ", shape_string(array.shape),
          " overflows a 64-bit size");
  require(count == array.data.size(), name, "shape ", shape_string(array.shape), " has ", count,
          " elements but data holds ", array.data.size());
}

inline std::uint16_t load_le16(const unsigned char* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t load_le32(const unsigned char* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline std::uint64_t load_le64(const unsigned char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline void store_le(unsigned char* p, std::uint64_t v, int bytes) noexcept {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

inline float float_from_bits(std::uint32_t bits) noexcept {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline double double_from_bits(std::uint64_t bits) noexcept {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}
inline std::uint32_t bits_of(float f) noexcept {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
inline std::uint64_t bits_of(double d) noexcept {
  std::uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

// Bytes left between the read position of `in` and its end, when the stream can seek; the
// position is restored. nullopt for streams that cannot seek (pipes).
inline std::optional<std::uint64_t> remaining_bytes(std::istream& in) {
  if (!in.good()) return std::nullopt;
  const std::istream::pos_type here = in.tellg();
  if (here == std::istream::pos_type(-1)) {
    in.clear();
    return std::nullopt;
  }
  in.seekg(0, std::ios::end);
  const std::istream::pos_type end = in.tellg();
  in.clear();
  in.seekg(here);
  if (end == std::istream::pos_type(-1) || !in.good() || end < here) {
    in.clear();
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(static_cast<std::streamoff>(end - here));
}

// Reads up to n bytes into out (resized to what was read); returns the count.
inline std::size_t read_bytes(std::istream& in, std::vector<unsigned char>& out, std::size_t n) {
  out.resize(n);
  if (n == 0) return 0;
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n));
  const auto got = static_cast<std::size_t>(in.gcount());
  out.resize(got);
  return got;
}

// Reads `count` little-endian elements of `elem_size` bytes from `in`, decodes each with
// decode(const unsigned char*) and appends the result to `out`. Reads in chunks of about 1 MiB
// and grows `out` only as bytes arrive. Returns the number of elements read (less than count
// when the stream ends early).
template <class T, class Decode>
std::uint64_t read_elements(std::istream& in, std::uint64_t count, std::size_t elem_size, std::vector<T>& out,
                            Decode decode) {
  constexpr std::size_t chunk_bytes = std::size_t(1) << 20;
  const std::size_t per_chunk = std::max<std::size_t>(1, chunk_bytes / elem_size);
  std::vector<unsigned char> buf;
  std::uint64_t done = 0;
  while (done < count) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(per_chunk, count - done));
    const std::size_t got = read_bytes(in, buf, want * elem_size) / elem_size;
    for (std::size_t i = 0; i < got; ++i) out.push_back(static_cast<T>(decode(buf.data() + i * elem_size)));
    done += got;
    if (got < want) break;
  }
  return done;
}

inline index to_index(std::size_t d) { return static_cast<index>(d); }

}  // namespace detail

// The rank-2 tensor (N, p) as an (N, p) row-major matrix (a copy).
template <class T>
matrix<T> as_matrix(const tensor<T>& array) {
  detail::require_valid(array, "array");
  detail::require(array.rank() == 2, "array", "expected a rank-2 tensor (N, p), got shape ",
                  detail::shape_string(array.shape));
  matrix<T> m(detail::to_index(array.shape[0]), detail::to_index(array.shape[1]));
  std::copy(array.data.begin(), array.data.end(), m.data());
  return m;
}

// The rank-3 tensor (B, N, p) as B matrices (N, p); a rank-2 tensor (N, p) gives one matrix.
template <class T>
std::vector<matrix<T>> as_matrices(const tensor<T>& array) {
  detail::require_valid(array, "array");
  if (array.rank() == 2) return {as_matrix(array)};
  detail::require(array.rank() == 3, "array", "expected a rank-3 tensor (B, N, p) or a rank-2 tensor (N, p), got shape ",
                  detail::shape_string(array.shape));
  const std::size_t B = array.shape[0], N = array.shape[1], p = array.shape[2];
  std::vector<matrix<T>> ms;
  ms.reserve(B);
  for (std::size_t b = 0; b < B; ++b) {
    matrix<T> m(detail::to_index(N), detail::to_index(p));
    const auto first = array.data.begin() + static_cast<std::ptrdiff_t>(b * N * p);
    std::copy(first, first + static_cast<std::ptrdiff_t>(N * p), m.data());
    ms.push_back(std::move(m));
  }
  return ms;
}

// An (N, p) matrix as a rank-2 tensor (a copy).
template <class T>
tensor<T> to_tensor(const matrix<T>& m) {
  tensor<T> t;
  t.shape = {static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols())};
  t.data.assign(m.data(), m.data() + m.size());
  return t;
}

// B matrices of one shape (N, p) as a rank-3 tensor (B, N, p).
template <class T>
tensor<T> to_tensor(const std::vector<matrix<T>>& ms) {
  detail::require(!ms.empty(), "ms", "expected at least one matrix");
  const index N = ms[0].rows(), p = ms[0].cols();
  tensor<T> t;
  t.shape = {ms.size(), static_cast<std::size_t>(N), static_cast<std::size_t>(p)};
  t.data.reserve(ms.size() * static_cast<std::size_t>(N * p));
  for (std::size_t b = 0; b < ms.size(); ++b) {
    detail::require(ms[b].rows() == N && ms[b].cols() == p, "ms[" + std::to_string(b) + "]", "expected ", N, " x ", p,
                    ", got ", ms[b].rows(), " x ", ms[b].cols());
    t.data.insert(t.data.end(), ms[b].data(), ms[b].data() + ms[b].size());
  }
  return t;
}

}  // namespace suptok::io
