// suptok/io/npy.hpp: NumPy .npy files of float32 and float64, read and written.
//
//   io::read_npy<T>(path)         -> io::tensor<T>   (T = float or double)
//   io::read_npy<T>(std::istream&)                   the same from any stream (in-memory input)
//   io::write_npy(path, array)    array: io::tensor<float|double> or matrix<float|double>
//   io::write_npy(std::ostream&, array)
//
// Format (NumPy's NEP 1): the 6 bytes "\x93NUMPY", a major and a minor version byte, the header
// length as a little-endian integer (2 bytes in version 1.0, 4 bytes in 2.0 and 3.0), the header:
// a Python dict literal such as {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
// padded with spaces and ended by a newline, then the elements in the order the header states.
//
// What is read: versions 1.0, 2.0 and 3.0; descr '<f4' (float32) or '<f8' (float64),
// little-endian; fortran_order False (C order); any rank, including rank 0 and zero-length
// dimensions. A float32 file read as double (and a float64 file as float) is converted
// element by element (float -> double is exact; double -> float rounds to nearest).
// What is written: C order, '<f4' for float and '<f8' for double, format 1.0 when the header fits
// its 2-byte length, else 2.0; the header is padded so the data starts at a multiple of 64 bytes.
//
// Errors (suptok::error; the argument names the part of the file that is wrong, the message
// names the file when reading from a path):
//   "path"    the file cannot be opened, or is a directory;          "magic"   not a .npy file;
//   "version" a version other than 1.0, 2.0, 3.0;
//   "header"  truncated, longer than npy_max_header_bytes (1 MiB), not a dict literal of exactly
//             the keys descr / fortran_order / shape, Fortran order, a big-endian or other dtype
//             (named), a negative dimension, or a shape whose byte size overflows 64 bits;
//   "data"    the data section is shorter or longer than the shape says;
//   "array"   (writing) the shape does not match the data size.
// Caveats: structured, object, integer and complex dtypes are not read. The reader allocates no
// more than the bytes actually present in the stream (plus the capped header); a stream that
// cannot seek is read in 1 MiB chunks and checked for trailing bytes at the end.
#pragma once

#include "tensor.hpp"

#include <array>
#include <filesystem>
#include <fstream>
#include <istream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace suptok::io {

// The longest header accepted on read (and written): far above any real array's.
inline constexpr std::size_t npy_max_header_bytes = std::size_t(1) << 20;

namespace detail {

inline constexpr unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

struct npy_header {
  int elem_size = 0;  // 4 or 8
  std::vector<std::size_t> shape;
  std::uint64_t count = 0;
  std::uint64_t bytes = 0;
};

// A parser for the one dict literal NumPy writes. Every read is bounds-checked against the text.
class npy_dict_parser {
 public:
  npy_dict_parser(std::string_view text, std::string where) : s_(text), where_(std::move(where)) {}

  npy_header parse() {
    std::string descr;
    bool have_descr = false, have_fortran = false, have_shape = false, fortran = false;
    std::vector<std::size_t> shape;
    skip_space();
    expect('{', "the header does not start with '{'");
    while (true) {
      skip_space();
      if (peek() == '}') {
        ++i_;
        break;
      }
      const std::string key = string_literal("a quoted key");
      skip_space();
      expect(':', "expected ':' after key '" + key + "'");
      skip_space();
      if (key == "descr") {
        fail_if(have_descr, "key 'descr' appears twice");
        fail_if(peek() != '\'' && peek() != '"', "descr is not a string (structured dtypes are not supported)");
        descr = string_literal("the descr string");
        have_descr = true;
      } else if (key == "fortran_order") {
        fail_if(have_fortran, "key 'fortran_order' appears twice");
        fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        fail_if(have_shape, "key 'shape' appears twice");
        shape = tuple();
        have_shape = true;
      } else {
        fail("unexpected key '" + printable(key) + "' (expected descr, fortran_order, shape)");
      }
      skip_space();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect('}', "expected ',' or '}' after the value of '" + key + "'");
      break;
    }
    skip_space();
    fail_if(i_ != s_.size(), "unexpected text after the closing '}'");
    fail_if(!have_descr, "the header has no 'descr' key");
    fail_if(!have_fortran, "the header has no 'fortran_order' key");
    fail_if(!have_shape, "the header has no 'shape' key");

    npy_header h;
    if (descr == "<f4") {
      h.elem_size = 4;
    } else if (descr == "<f8") {
      h.elem_size = 8;
    } else if (descr == ">f4" || descr == ">f8") {
      fail("dtype '" + descr + "' is big-endian; only little-endian '<f4' and '<f8' are read (convert with " +
           "arr.astype('<" + descr.substr(1) + "'))");
    } else {
      fail("dtype '" + printable(descr) + "' is not supported; only '<f4' (float32) and '<f8' (float64) are read");
    }
    fail_if(fortran, "Fortran-order arrays are not supported; save a C-order array (np.ascontiguousarray)");
    h.shape = std::move(shape);
    fail_if(!shape_count(h.shape, static_cast<std::size_t>(h.elem_size), h.count, h.bytes),
            "shape " + shape_string(h.shape) + " overflows a 64-bit size");
    return h;
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool at_end() const { return i_ >= s_.size(); }

  [[noreturn]] void fail(const std::string& what) const { throw error("header", where_ + what); }
  void fail_if(bool bad, const std::string& what) const {
    if (bad) fail(what);
  }
  void expect(char c, const std::string& what) {
    fail_if(at_end() || s_[i_] != c, what);
    ++i_;
  }
  void skip_space() {
    while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }

  // Printable form of text taken from the file, for messages (at most 40 characters).
  static std::string printable(std::string_view t) {
    std::string out;
    for (char c : t.substr(0, 40)) out += (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) ? c : '?';
    if (t.size() > 40) out += "...";
    return out;
  }

  // A Python string literal in single or double quotes; a backslash takes the next character.
  std::string string_literal(const char* what) {
    fail_if(at_end() || (s_[i_] != '\'' && s_[i_] != '"'), std::string("expected ") + what);
    const char quote = s_[i_++];
    std::string out;
    while (true) {
      fail_if(at_end(), "unterminated string in the header");
      char c = s_[i_++];
      if (c == quote) break;
      if (c == '\\') {
        fail_if(at_end(), "unterminated string in the header");
        c = s_[i_++];
      }
      out += c;
    }
    return out;
  }

  bool boolean() {
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    fail("fortran_order is not True or False");
  }

  // A tuple of non-negative integers: (), (3,), (3, 4), (3, 4,).
  std::vector<std::size_t> tuple() {
    expect('(', "shape is not a tuple");
    std::vector<std::size_t> dims;
    skip_space();
    if (peek() == ')') {
      ++i_;
      return dims;
    }
    while (true) {
      skip_space();
      fail_if(at_end(), "the shape tuple is not closed");
      dims.push_back(dimension());
      skip_space();
      if (peek() == ',') {
        ++i_;
        skip_space();
        if (peek() == ')') {
          ++i_;
          break;
        }
        continue;
      }
      expect(')', "expected ',' or ')' in the shape tuple");
      break;
    }
    return dims;
  }

  std::size_t dimension() {
    fail_if(peek() == '-', "negative dimension in shape");
    fail_if(at_end() || s_[i_] < '0' || s_[i_] > '9', "shape holds something other than integers");
    std::uint64_t v = 0;
    while (!at_end() && s_[i_] >= '0' && s_[i_] <= '9') {
      const unsigned digit = static_cast<unsigned>(s_[i_] - '0');
      fail_if(v > (max_extent - digit) / 10, "dimension in shape overflows a signed 64-bit integer");
      v = v * 10 + digit;
      ++i_;
    }
    if (peek() == 'L') ++i_;  // Python 2 long suffix, written by very old NumPy
    return static_cast<std::size_t>(v);
  }

  std::string_view s_;
  std::size_t i_ = 0;
  std::string where_;
};

// Reads the magic, version and header; leaves `in` at the first data byte.
inline npy_header read_npy_header(std::istream& in, const std::string& where) {
  std::vector<unsigned char> buf;
  const std::size_t got = read_bytes(in, buf, 8);
  require(got >= 6 && std::equal(buf.begin(), buf.begin() + 6, npy_magic), "magic",
          where, "not a .npy file (it does not start with \\x93NUMPY)");
  require(got == 8, "version", where, "the file ends inside the version bytes");
  const int major = buf[6], minor = buf[7];
  require((major == 1 || major == 2 || major == 3) && minor == 0, "version", where, "unsupported .npy format version ",
          major, ".", minor, " (1.0, 2.0 and 3.0 are read)");
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  require(read_bytes(in, buf, len_bytes) == len_bytes, "header", where, "the file ends inside the header length");
  const std::uint64_t len = len_bytes == 2 ? load_le16(buf.data()) : load_le32(buf.data());
  require(len <= npy_max_header_bytes, "header", where, "header length ", len, " exceeds the limit of ",
          npy_max_header_bytes, " bytes");
  const std::size_t header_got = read_bytes(in, buf, static_cast<std::size_t>(len));
  require(header_got == len, "header", where, "the file ends inside the header (", header_got, " of ", len,
          " bytes present)");
  const std::string_view text(reinterpret_cast<const char*>(buf.data()), buf.size());
  return npy_dict_parser(text, where).parse();
}

template <class T>
tensor<T> read_npy_stream(std::istream& in, const std::string& where) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "read_npy<T>: T is float or double");
  const npy_header h = read_npy_header(in, where);
  const auto remaining = remaining_bytes(in);
  const auto size_message = [&](const std::string& got) {
    return message(where, "the data section holds ", got, " bytes but shape ", shape_string(h.shape), " of ",
                   h.elem_size == 4 ? "'<f4'" : "'<f8'", " needs ", h.bytes);
  };
  if (remaining) require(*remaining == h.bytes, "data", size_message(std::to_string(*remaining)));

  tensor<T> t;
  t.shape = h.shape;
  if (remaining) t.data.reserve(static_cast<std::size_t>(h.count));
  std::uint64_t got = 0;
  if (h.elem_size == 4)
    got = read_elements(in, h.count, 4, t.data, [](const unsigned char* p) { return float_from_bits(load_le32(p)); });
  else
    got = read_elements(in, h.count, 8, t.data, [](const unsigned char* p) { return double_from_bits(load_le64(p)); });
  require(got == h.count, "data", size_message("only " + std::to_string(got * static_cast<std::uint64_t>(h.elem_size))));
  if (!remaining) {
    in.peek();
    require(in.eof(), "data", size_message("more than " + std::to_string(h.bytes)));
  }
  return t;
}

inline std::ifstream open_for_reading(const std::filesystem::path& path) {
  std::error_code ec;
  require(!std::filesystem::is_directory(path, ec), "path", "'", path.string(), "' is a directory");
  std::ifstream f(path, std::ios::binary);
  require(f.is_open(), "path", "cannot open '", path.string(), "' for reading");
  return f;
}

inline std::ofstream open_for_writing(const std::filesystem::path& path) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  require(f.is_open(), "path", "cannot open '", path.string(), "' for writing");
  return f;
}

template <class T>
void write_npy_stream(std::ostream& out, const tensor<T>& array) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "write_npy: float or double");
  require_valid(array, "array");
  std::string dict = std::string("{'descr': '<f") + (sizeof(T) == 4 ? "4" : "8") +
                     "', 'fortran_order': False, 'shape': " + shape_string(array.shape) + ", }";
  // Pad with spaces and a final newline so that magic + version + length + header is a multiple
  // of 64 bytes.
  const auto padded = [&](std::size_t prefix) {
    const std::size_t unpadded = prefix + dict.size() + 1;
    return dict.size() + (64 - unpadded % 64) % 64 + 1;
  };
  std::size_t len_bytes = 2;
  std::size_t header_len = padded(6 + 2 + 2);
  if (header_len > 0xffff) {
    len_bytes = 4;
    header_len = padded(6 + 2 + 4);
  }
  require(header_len <= npy_max_header_bytes, "array", "rank ", array.rank(), " makes a header longer than ",
          npy_max_header_bytes, " bytes");
  dict.resize(header_len - 1, ' ');
  dict += '\n';

  unsigned char prefix[12];
  std::copy(npy_magic, npy_magic + 6, prefix);
  prefix[6] = len_bytes == 2 ? 1 : 2;
  prefix[7] = 0;
  store_le(prefix + 8, header_len, static_cast<int>(len_bytes));
  out.write(reinterpret_cast<const char*>(prefix), static_cast<std::streamsize>(8 + len_bytes));
  out.write(dict.data(), static_cast<std::streamsize>(dict.size()));

  std::vector<unsigned char> buf;
  constexpr std::size_t chunk = 1 << 16;
  for (std::size_t i = 0; i < array.data.size(); i += chunk) {
    const std::size_t n = std::min(chunk, array.data.size() - i);
    buf.resize(n * sizeof(T));
    for (std::size_t k = 0; k < n; ++k) store_le(buf.data() + k * sizeof(T), bits_of(array.data[i + k]), sizeof(T));
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  }
}

}  // namespace detail

// Reads a float32 or float64 .npy array from a stream (e.g. a std::istringstream over bytes in
// memory), converting to T.
template <class T>
tensor<T> read_npy(std::istream& in) {
  return detail::read_npy_stream<T>(in, "");
}

// Reads a float32 or float64 .npy file, converting to T.
template <class T>
tensor<T> read_npy(const std::filesystem::path& path) {
  std::ifstream f = detail::open_for_reading(path);
  return detail::read_npy_stream<T>(f, "'" + path.string() + "': ");
}

// Writes `array` in .npy format ('<f4' for float, '<f8' for double).
template <class T>
void write_npy(std::ostream& out, const tensor<T>& array) {
  detail::write_npy_stream(out, array);
  detail::require(out.good(), "out", "write failed");
}

template <class T>
void write_npy(const std::filesystem::path& path, const tensor<T>& array) {
  detail::require_valid(array, "array");
  std::ofstream f = detail::open_for_writing(path);
  detail::write_npy_stream(f, array);
  f.close();
  detail::require(!f.fail(), "path", "writing '", path.string(), "' failed");
}

// An (N, p) matrix as a rank-2 .npy array.
template <class T>
void write_npy(std::ostream& out, const matrix<T>& m) {
  write_npy(out, to_tensor(m));
}
template <class T>
void write_npy(const std::filesystem::path& path, const matrix<T>& m) {
  write_npy(path, to_tensor(m));
}

}  // namespace suptok::io
