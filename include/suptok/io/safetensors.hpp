// suptok/io/safetensors.hpp: safetensors files, read tensor by tensor and written.
//
//   io::safetensors_reader r(path);        opens the file and parses only its header
//   io::safetensors_reader::from_bytes(s)  the same over bytes in memory (no file needed)
//   r.tensors()                            io::tensor_info {name, type, shape, begin, end}, in
//                                          buffer order; r.info(name), r.contains(name)
//   r.metadata()                           the "__metadata__" string map (may be empty)
//   r.read<T>(name)                        one tensor as io::tensor<T> (T = float or double)
//   io::safetensors_writer w; w.add(name, tensor or matrix); w.set_metadata(k, v); w.write(path)
//
// Format: 8 bytes, the header length n as a little-endian unsigned 64-bit integer; n bytes of
// UTF-8 JSON, an object mapping each tensor name to {"dtype": "F32", "shape": [2, 3],
// "data_offsets": [begin, end]} plus an optional "__metadata__" object of strings; then the byte
// buffer. Offsets are relative to the start of the buffer; data is little-endian, C order.
//
// Reading: F32, F64, F16 (IEEE binary16) and BF16 are converted to T on read (F16 and BF16
// exactly, through io/half.hpp; F64 read as float rounds to nearest). Tensors of the other
// standard dtypes (BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F8_E5M2, F8_E4M3) are listed and
// validated but read<T> rejects them. The reader keeps the stream open and seeks to a tensor's
// bytes when it is asked for, so only the header and the requested tensor are ever in memory:
// multi-gigabyte checkpoints are fine. A reader is not safe to use from several threads at once.
//
// Validation, all before any tensor is read, against the real length of the file:
//   "header_length"  the file is shorter than 8 bytes, or n exceeds the file or the cap
//                    safetensors_max_header_bytes (100 MB, the reference implementation's limit);
//   "header"         the header does not start with '{', is not valid JSON / UTF-8, is not an
//                    object, or the tensors do not tile the buffer exactly (a gap, trailing
//                    bytes: the format requires every byte of the buffer to belong to a tensor);
//   "__metadata__"   not an object of strings;
//   "tensor 'NAME'"  an entry that is not {dtype, shape, data_offsets}, an unknown dtype (named),
//                    a shape entry that is not a non-negative integer, a shape whose byte size
//                    overflows 64 bits, begin > end, end beyond the buffer, end - begin different
//                    from product(shape) * dtype size, an overlap with another tensor, or (on
//                    read) a dtype that is not F16/BF16/F32/F64 or a file that shrank since open;
//   "name"           read/info of a name that is not in the file;  "path" unopenable file.
// Writing: F32 (float) and F64 (double), entries in name order, the header padded with spaces so
// that the buffer starts at a multiple of 8 bytes. Needs nlohmann-json (<nlohmann/json.hpp>).
#pragma once

#include "half.hpp"
#include "npy.hpp"
#include "tensor.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace suptok::io {

inline constexpr std::uint64_t safetensors_max_header_bytes = 100'000'000;

enum class dtype { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

namespace detail {
struct dtype_entry {
  dtype type;
  std::string_view name;
  std::size_t size;
};
inline constexpr dtype_entry dtype_table[] = {
    {dtype::BOOL, "BOOL", 1}, {dtype::U8, "U8", 1},   {dtype::I8, "I8", 1},     {dtype::F8_E5M2, "F8_E5M2", 1},
    {dtype::F8_E4M3, "F8_E4M3", 1}, {dtype::I16, "I16", 2}, {dtype::U16, "U16", 2}, {dtype::F16, "F16", 2},
    {dtype::BF16, "BF16", 2}, {dtype::I32, "I32", 4}, {dtype::U32, "U32", 4}, {dtype::F32, "F32", 4},
    {dtype::I64, "I64", 8},   {dtype::U64, "U64", 8}, {dtype::F64, "F64", 8}};

inline std::optional<dtype> parse_dtype(std::string_view name) {
  for (const auto& e : dtype_table)
    if (e.name == name) return e.type;
  return std::nullopt;
}
}  // namespace detail

inline std::string_view dtype_name(dtype t) {
  for (const auto& e : detail::dtype_table)
    if (e.type == t) return e.name;
  return "?";
}
inline std::size_t dtype_size(dtype t) {
  for (const auto& e : detail::dtype_table)
    if (e.type == t) return e.size;
  return 0;
}

struct tensor_info {
  std::string name;
  dtype type = dtype::F32;
  std::vector<std::size_t> shape;
  std::uint64_t begin = 0;  // byte offsets relative to the start of the buffer
  std::uint64_t end = 0;
};

class safetensors_reader {
 public:
  explicit safetensors_reader(const std::filesystem::path& path)
      : where_("'" + path.string() + "': "),
        in_(std::make_unique<std::ifstream>(detail::open_for_reading(path))) {
    load_header();
  }

  // Reads from any seekable stream (e.g. a std::istringstream), from its current position.
  explicit safetensors_reader(std::unique_ptr<std::istream> in) : in_(std::move(in)) {
    detail::require(in_ != nullptr, "in", "null stream");
    load_header();
  }

  // A reader over bytes in memory (copied).
  static safetensors_reader from_bytes(std::string_view bytes) {
    return safetensors_reader(std::make_unique<std::istringstream>(std::string(bytes), std::ios::binary));
  }

  const std::vector<tensor_info>& tensors() const noexcept { return tensors_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  std::uint64_t buffer_size() const noexcept { return buffer_size_; }

  bool contains(std::string_view name) const { return by_name_.find(name) != by_name_.end(); }

  const tensor_info& info(std::string_view name) const {
    const auto it = by_name_.find(name);
    detail::require(it != by_name_.end(), "name", where_, "no tensor '", name, "' in the file");
    return tensors_[it->second];
  }

  // Reads one tensor (F32, F64, F16 or BF16), converted to T.
  template <class T>
  tensor<T> read(std::string_view name) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "read<T>: T is float or double");
    const tensor_info& ti = info(name);
    const std::string arg = "tensor '" + ti.name + "'";
    detail::require(ti.type == dtype::F32 || ti.type == dtype::F64 || ti.type == dtype::F16 || ti.type == dtype::BF16,
                    arg, where_, "dtype ", dtype_name(ti.type), " is not read (F16, BF16, F32 and F64 are)");
    const std::size_t elem = dtype_size(ti.type);
    const std::uint64_t count = (ti.end - ti.begin) / elem;
    in_->clear();
    in_->seekg(static_cast<std::streamoff>(start_ + 8 + header_bytes_ + ti.begin));
    detail::require(in_->good(), arg, where_, "cannot seek to the tensor's data");

    tensor<T> t;
    t.shape = ti.shape;
    t.data.reserve(static_cast<std::size_t>(count));  // bounded by the validated file length
    std::uint64_t got = 0;
    using detail::load_le16, detail::load_le32, detail::load_le64;
    switch (ti.type) {
      case dtype::F32:
        got = detail::read_elements(*in_, count, 4, t.data,
                                    [](const unsigned char* p) { return detail::float_from_bits(load_le32(p)); });
        break;
      case dtype::F64:
        got = detail::read_elements(*in_, count, 8, t.data,
                                    [](const unsigned char* p) { return detail::double_from_bits(load_le64(p)); });
        break;
      case dtype::F16:
        got = detail::read_elements(*in_, count, 2, t.data,
                                    [](const unsigned char* p) { return half_to_float(load_le16(p)); });
        break;
      default:
        got = detail::read_elements(*in_, count, 2, t.data,
                                    [](const unsigned char* p) { return bfloat16_to_float(load_le16(p)); });
        break;
    }
    detail::require(got == count, arg, where_, "the file ends inside the tensor's data (did it change since it was opened?)");
    return t;
  }

 private:
  [[noreturn]] void fail(const std::string& argument, const std::string& what) const {
    throw error(argument, where_ + what);
  }

  void load_header() {
    const std::istream::pos_type here = in_->tellg();
    const auto size = detail::remaining_bytes(*in_);
    if (!size || here == std::istream::pos_type(-1)) fail("in", "the stream cannot seek");
    start_ = static_cast<std::uint64_t>(static_cast<std::streamoff>(here));
    if (*size < 8) fail("header_length", "the file has " + std::to_string(*size) + " bytes, fewer than the 8-byte header length");
    std::vector<unsigned char> buf;
    if (detail::read_bytes(*in_, buf, 8) != 8) fail("header_length", "cannot read the header length");
    const std::uint64_t n = detail::load_le64(buf.data());
    if (n > safetensors_max_header_bytes)
      fail("header_length", "header length " + std::to_string(n) + " exceeds the limit of " +
                                std::to_string(safetensors_max_header_bytes) + " bytes");
    if (n > *size - 8)
      fail("header_length", "header length " + std::to_string(n) + " exceeds the " + std::to_string(*size - 8) +
                                " bytes that follow it");
    if (detail::read_bytes(*in_, buf, static_cast<std::size_t>(n)) != n) fail("header", "cannot read the header");
    header_bytes_ = n;
    buffer_size_ = *size - 8 - n;
    if (n == 0 || buf[0] != '{') fail("header", "the header does not start with '{'");

    nlohmann::json j;
    try {
      j = nlohmann::json::parse(buf.begin(), buf.end());
    } catch (const nlohmann::json::exception& e) {
      fail("header", std::string("not valid JSON: ") + e.what());
    }
    buf.clear();
    buf.shrink_to_fit();
    if (!j.is_object()) fail("header", "the header is not a JSON object");

    for (const auto& [key, value] : j.items()) {
      if (key == "__metadata__") {
        read_metadata(value);
        continue;
      }
      tensors_.push_back(parse_entry(key, value));
    }
    check_tiling();
    for (std::size_t i = 0; i < tensors_.size(); ++i) by_name_.emplace(tensors_[i].name, i);
  }

  void read_metadata(const nlohmann::json& value) {
    if (!value.is_object()) fail("__metadata__", "not an object of strings");
    for (const auto& [k, v] : value.items()) {
      if (!v.is_string()) fail("__metadata__", "the value of '" + k + "' is not a string");
      metadata_.emplace(k, v.get<std::string>());
    }
  }

  static bool as_u64(const nlohmann::json& v, std::uint64_t& out) {
    if (!v.is_number_unsigned()) return false;
    out = v.get<std::uint64_t>();
    return true;
  }

  tensor_info parse_entry(const std::string& name, const nlohmann::json& v) const {
    const std::string arg = "tensor '" + name + "'";
    if (!v.is_object()) fail(arg, "the entry is not an object");
    const auto dt = v.find("dtype");
    const auto sh = v.find("shape");
    const auto off = v.find("data_offsets");
    if (dt == v.end() || sh == v.end() || off == v.end())
      fail(arg, "the entry lacks one of \"dtype\", \"shape\", \"data_offsets\"");
    if (!dt->is_string()) fail(arg, "dtype is not a string");
    const auto type = detail::parse_dtype(dt->get_ref<const std::string&>());
    if (!type) fail(arg, "unknown dtype '" + dt->get<std::string>() + "'");
    if (!sh->is_array()) fail(arg, "shape is not an array");
    tensor_info ti;
    ti.name = name;
    ti.type = *type;
    for (const auto& d : *sh) {
      if (d.is_number_integer() && !d.is_number_unsigned()) fail(arg, "negative dimension in shape");
      std::uint64_t x = 0;
      if (!as_u64(d, x)) fail(arg, "shape holds something other than non-negative integers");
      if (x > detail::max_extent) fail(arg, "dimension " + std::to_string(x) + " overflows a signed 64-bit integer");
      ti.shape.push_back(static_cast<std::size_t>(x));
    }
    std::uint64_t count = 0, bytes = 0;
    if (!detail::shape_count(ti.shape, dtype_size(ti.type), count, bytes))
      fail(arg, "shape " + detail::shape_string(ti.shape) + " overflows a 64-bit size");
    if (!off->is_array() || off->size() != 2 || !as_u64((*off)[0], ti.begin) || !as_u64((*off)[1], ti.end))
      fail(arg, "data_offsets is not a pair of non-negative integers");
    if (ti.begin > ti.end)
      fail(arg, "data_offsets [" + std::to_string(ti.begin) + ", " + std::to_string(ti.end) + "] are in the wrong order");
    if (ti.end > buffer_size_)
      fail(arg, "data ends at byte " + std::to_string(ti.end) + ", past the end of the " + std::to_string(buffer_size_) +
                    "-byte buffer");
    if (ti.end - ti.begin != bytes)
      fail(arg, "data_offsets span " + std::to_string(ti.end - ti.begin) + " bytes but shape " +
                    detail::shape_string(ti.shape) + " of " + std::string(dtype_name(ti.type)) + " needs " +
                    std::to_string(bytes));
    return ti;
  }

  // The tensors must cover the buffer exactly: sorted by offset, each starts where the previous
  // ends, the last ends at the end of the buffer.
  void check_tiling() {
    std::sort(tensors_.begin(), tensors_.end(), [](const tensor_info& a, const tensor_info& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t expected = 0;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const tensor_info& t = tensors_[i];
      if (t.begin < expected)
        fail("tensor '" + t.name + "'", "data [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                                            ") overlaps tensor '" + tensors_[i - 1].name + "'");
      if (t.begin > expected)
        fail("header", "bytes [" + std::to_string(expected) + ", " + std::to_string(t.begin) +
                           ") of the buffer belong to no tensor");
      expected = t.end;
    }
    if (expected != buffer_size_)
      fail("header", "the last " + std::to_string(buffer_size_ - expected) + " bytes of the buffer belong to no tensor");
  }

  std::string where_;
  std::unique_ptr<std::istream> in_;
  std::uint64_t start_ = 0;
  std::uint64_t header_bytes_ = 0;
  std::uint64_t buffer_size_ = 0;
  std::vector<tensor_info> tensors_;
  std::map<std::string, std::size_t, std::less<>> by_name_;
  std::map<std::string, std::string> metadata_;
};

class safetensors_writer {
 public:
  void add(const std::string& name, const tensor<float>& array) { add_bytes(name, dtype::F32, array); }
  void add(const std::string& name, const tensor<double>& array) { add_bytes(name, dtype::F64, array); }
  void add(const std::string& name, const matrix<float>& m) { add(name, to_tensor(m)); }
  void add(const std::string& name, const matrix<double>& m) { add(name, to_tensor(m)); }

  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  void write(std::ostream& out) const {
    const std::string header = header_text();
    unsigned char len[8];
    detail::store_le(len, header.size(), 8);
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& [name, e] : entries_)
      out.write(reinterpret_cast<const char*>(e.bytes.data()), static_cast<std::streamsize>(e.bytes.size()));
    detail::require(out.good(), "out", "write failed");
  }

  void write(const std::filesystem::path& path) const {
    std::ofstream f = detail::open_for_writing(path);
    write(static_cast<std::ostream&>(f));
    f.close();
    detail::require(!f.fail(), "path", "writing '", path.string(), "' failed");
  }

 private:
  struct entry {
    dtype type;
    std::vector<std::size_t> shape;
    std::vector<unsigned char> bytes;
  };

  template <class T>
  void add_bytes(const std::string& name, dtype type, const tensor<T>& array) {
    detail::require(!name.empty(), "name", "a tensor name must not be empty");
    detail::require(name != "__metadata__", "name", "'__metadata__' is reserved for the metadata");
    detail::require(entries_.find(name) == entries_.end(), "name", "tensor '", name, "' was already added");
    detail::require_valid(array, "array");
    entry e{type, array.shape, std::vector<unsigned char>(array.data.size() * sizeof(T))};
    for (std::size_t i = 0; i < array.data.size(); ++i)
      detail::store_le(e.bytes.data() + i * sizeof(T), detail::bits_of(array.data[i]), sizeof(T));
    entries_.emplace(name, std::move(e));
  }

  std::string header_text() const {
    nlohmann::json j = nlohmann::json::object();
    if (!metadata_.empty()) j["__metadata__"] = metadata_;
    std::uint64_t offset = 0;
    for (const auto& [name, e] : entries_) {
      j[name] = {{"dtype", std::string(dtype_name(e.type))},
                 {"shape", e.shape},
                 {"data_offsets", {offset, offset + e.bytes.size()}}};
      offset += e.bytes.size();
    }
    std::string s = j.dump();
    s.resize(s.size() + (8 - s.size() % 8) % 8, ' ');
    return s;
  }

  std::map<std::string, entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Convenience: writes every tensor of `tensors` (name -> tensor) as F32 or F64.
template <class T>
void write_safetensors(const std::filesystem::path& path, const std::map<std::string, tensor<T>>& tensors,
                       const std::map<std::string, std::string>& metadata = {}) {
  safetensors_writer w;
  for (const auto& [name, t] : tensors) w.add(name, t);
  for (const auto& [k, v] : metadata) w.set_metadata(k, v);
  w.write(path);
}

}  // namespace suptok::io
