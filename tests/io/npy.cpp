// .npy: files built byte by byte from the format description read to the expected values, the
// writer's bytes match the format exactly, round-trips are bitwise, and every malformed file gives
// the error that names what is wrong.
#include <suptok/io/npy.hpp>

#include <catch2/catch.hpp>

#include "io_support.hpp"

#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <streambuf>

using namespace suptok;
using io_test::f32;
using io_test::f64;
using io_test::npy_bytes;
using io_test::thrown_by;

namespace {

template <class T>
io::tensor<T> read_bytes(const std::string& bytes) {
  std::istringstream in(bytes, std::ios::binary);
  return io::read_npy<T>(in);
}

// A stream buffer that cannot seek, like a pipe: the reader must not rely on the stream's length.
class pipe_buf : public std::streambuf {
 public:
  explicit pipe_buf(std::string s) : s_(std::move(s)) { setg(s_.data(), s_.data(), s_.data() + s_.size()); }

 private:
  std::string s_;
};

template <class T>
io::tensor<T> read_pipe(const std::string& bytes) {
  pipe_buf buf(bytes);
  std::istream in(&buf);
  return io::read_npy<T>(in);
}

template <class T>
io::tensor<T> random_tensor(std::vector<std::size_t> shape, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 3.0);
  io::tensor<T> t;
  t.shape = std::move(shape);
  std::size_t n = 1;
  for (auto d : t.shape) n *= d;
  for (std::size_t i = 0; i < n; ++i) t.data.push_back(static_cast<T>(normal(gen)));
  return t;
}

}  // namespace

TEST_CASE("npy: a hand-built float64 file reads to its values", "[io][npy]") {
  std::string data;
  for (int i = 0; i < 6; ++i) data += f64(0.1 * i - 0.25);
  const std::string bytes = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 1, data);
  REQUIRE(bytes.size() == 128 + 48);  // the header pads to a multiple of 64 bytes

  const auto t = read_bytes<double>(bytes);
  REQUIRE(t.shape == std::vector<std::size_t>{2, 3});
  REQUIRE(t.data.size() == 6);
  for (int i = 0; i < 6; ++i) CHECK(t.data[i] == 0.1 * i - 0.25);

  // Read as float: each value rounded once from double to float.
  const auto tf = read_bytes<float>(bytes);
  REQUIRE(tf.shape == t.shape);
  for (int i = 0; i < 6; ++i) CHECK(tf.data[i] == static_cast<float>(0.1 * i - 0.25));

  // The same file through a stream that cannot seek.
  const auto tp = read_pipe<double>(bytes);
  CHECK(io_test::same_bits(tp.data, t.data));

  const matrix<double> m = io::as_matrix(t);
  REQUIRE(m.rows() == 2);
  REQUIRE(m.cols() == 3);
  CHECK(m(1, 0) == 0.1 * 3 - 0.25);  // C order: row 1 starts at element 3
  CHECK(m(0, 2) == 0.1 * 2 - 0.25);
}

TEST_CASE("npy: a hand-built float32 file keeps special values bit for bit", "[io][npy]") {
  const float denorm = std::numeric_limits<float>::denorm_min();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> values{1.5f, -0.0f, denorm, inf, -inf, 3.0e38f};
  std::string data;
  for (float v : values) data += f32(v);
  data += io_test::le(0x7fc00123u, 4);  // a quiet NaN with a payload
  const std::string bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }", 1, data);

  const auto t = read_bytes<float>(bytes);
  REQUIRE(t.shape == std::vector<std::size_t>{7});
  for (std::size_t i = 0; i < values.size(); ++i) CHECK(io::detail::bits_of(t.data[i]) == io::detail::bits_of(values[i]));
  CHECK(io::detail::bits_of(t.data[6]) == 0x7fc00123u);

  // float -> double is exact.
  const auto td = read_bytes<double>(bytes);
  for (std::size_t i = 0; i < values.size(); ++i) CHECK(td.data[i] == static_cast<double>(values[i]));
  CHECK(std::signbit(td.data[1]));
  CHECK(std::isnan(td.data[6]));
}

TEST_CASE("npy: versions 2.0 and 3.0, other spellings of the header, rank 0 and empty arrays", "[io][npy]") {
  const std::string data = f64(2.5) + f64(-7.0);
  for (int major : {2, 3}) {
    const auto t = read_bytes<double>(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", major, data));
    CHECK(t.shape == std::vector<std::size_t>{2});
    CHECK(t.data == std::vector<double>{2.5, -7.0});
  }
  // Another key order, double quotes, no trailing comma, extra spaces, a Python 2 'L' suffix.
  const auto t = read_bytes<double>(
      npy_bytes("{ \"shape\" : ( 1 , 2L ) ,\"fortran_order\":False,'descr':'<f8'}", 1, data));
  CHECK(t.shape == std::vector<std::size_t>{1, 2});
  CHECK(t.data == std::vector<double>{2.5, -7.0});

  const auto scalar = read_bytes<double>(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 1, f64(4.0)));
  CHECK(scalar.shape.empty());
  CHECK(scalar.data == std::vector<double>{4.0});

  const auto empty = read_bytes<float>(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", 1));
  CHECK(empty.shape == std::vector<std::size_t>{0, 5});
  CHECK(empty.data.empty());
}

TEST_CASE("npy: the writer's bytes follow the format exactly", "[io][npy]") {
  io::tensor<double> t{{2, 3}, {1, 2, 3, 4, 5, 6}};
  std::ostringstream out(std::ios::binary);
  io::write_npy(out, t);
  std::string data;
  for (double v : t.data) data += f64(v);
  CHECK(out.str() == npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 1, data));

  io::tensor<float> v{{3}, {1.f, -2.f, 0.5f}};
  std::ostringstream out1(std::ios::binary);
  io::write_npy(out1, v);
  CHECK(out1.str() == npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 1,
                                f32(1.f) + f32(-2.f) + f32(0.5f)));

  io::tensor<float> s{{}, {9.f}};
  std::ostringstream out0(std::ios::binary);
  io::write_npy(out0, s);
  CHECK(out0.str() == npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 1, f32(9.f)));
}

TEMPLATE_TEST_CASE("npy: round-trips are bitwise, through files and streams", "[io][npy]", float, double) {
  using T = TestType;
  io_test::temp_dir dir;
  const std::vector<std::vector<std::size_t>> shapes{{}, {5}, {3, 4}, {2, 3, 4}, {2, 1, 3, 2}, {0}, {4, 0, 2}};
  std::uint64_t seed = 11;
  for (const auto& shape : shapes) {
    auto t = random_tensor<T>(shape, seed++);
    if (t.data.size() > 3) {
      t.data[0] = std::numeric_limits<T>::infinity();
      t.data[1] = -std::numeric_limits<T>::denorm_min();
      t.data[2] = std::numeric_limits<T>::quiet_NaN();
    }
    const auto path = dir / ("a" + std::to_string(seed) + ".npy");
    io::write_npy(path, t);
    const auto back = io::read_npy<T>(path);
    CHECK(back.shape == t.shape);
    CHECK(io_test::same_bits(back.data, t.data));

    std::stringstream s(std::ios::in | std::ios::out | std::ios::binary);
    io::write_npy(s, t);
    const auto back2 = io::read_npy<T>(s);
    CHECK(io_test::same_bits(back2.data, t.data));
    CHECK(io_test::read_file(path).size() % 64 == (t.data.size() * sizeof(T)) % 64);  // data starts 64-aligned
  }

  // Matrices: (N, p) and a batch (B, N, p).
  const matrix<T> m = io::as_matrix(random_tensor<T>({4, 3}, 99));
  io::write_npy(dir / "m.npy", m);
  CHECK(io::as_matrix(io::read_npy<T>(dir / "m.npy")) == m);
  const std::vector<matrix<T>> batch{m, T(2) * m};
  io::write_npy(dir / "b.npy", io::to_tensor(batch));
  const auto bt = io::read_npy<T>(dir / "b.npy");
  CHECK(bt.shape == std::vector<std::size_t>{2, 4, 3});
  const auto ms = io::as_matrices(bt);
  REQUIRE(ms.size() == 2);
  CHECK(ms[0] == batch[0]);
  CHECK(ms[1] == batch[1]);
  CHECK(io::as_matrices(io::read_npy<T>(dir / "m.npy")).size() == 1);
}

TEST_CASE("npy: a header longer than 65535 bytes is written as version 2.0 and read back", "[io][npy]") {
  io::tensor<double> t;
  t.shape.assign(30000, 1);  // "1, " per dimension: about 90 kB of header
  t.data = {42.0};
  std::ostringstream out(std::ios::binary);
  io::write_npy(out, t);
  const std::string bytes = out.str();
  REQUIRE(bytes.size() > 65536);
  CHECK(bytes[6] == 2);
  CHECK(bytes[7] == 0);
  CHECK((bytes.size() - 8) % 64 == 0);  // header padded to 64, then one 8-byte element
  const auto back = read_bytes<double>(bytes);
  CHECK(back.shape == t.shape);
  CHECK(back.data == t.data);
}

TEST_CASE("npy: malformed files give errors that name the problem", "[io][npy][errors]") {
  const std::string ok_dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
  const std::string data = f64(1.0) + f64(2.0);
  const auto error_of = [](const std::string& bytes) { return thrown_by([&] { read_bytes<double>(bytes); }); };
  const auto header_error = [&](const std::string& dict, const std::string& part) {
    const auto e = error_of(npy_bytes(dict, 1, data));
    CHECK(e.argument == "header");
    CHECK(e.contains(part));
    if (!e.contains(part)) WARN("message: " << e.message << " (expected '" << part << "')");
  };
  REQUIRE(error_of(npy_bytes(ok_dict, 1, data)).argument == "<no error>");

  SECTION("magic and version") {
    CHECK(error_of("").argument == "magic");
    CHECK(error_of("\x93NUMP").argument == "magic");
    CHECK(error_of("PK\x03\x04 not an npy file at all").argument == "magic");
    CHECK(error_of(std::string("\x93NUMPY", 6)).argument == "version");
    std::string v = npy_bytes(ok_dict, 1, data);
    v[6] = 4;
    CHECK(error_of(v).argument == "version");
    CHECK(error_of(v).contains("version 4.0"));
    v[6] = 1;
    v[7] = 1;
    CHECK(error_of(v).contains("version 1.1"));
  }
  SECTION("truncated and oversized headers") {
    const std::string full = npy_bytes(ok_dict, 1, data);
    CHECK(error_of(full.substr(0, 9)).contains("ends inside the header length"));
    CHECK(error_of(full.substr(0, 40)).contains("ends inside the header (30 of 118 bytes present)"));
    // Version 2.0 with a 4 GiB header length: rejected before anything is allocated.
    const std::string huge = std::string("\x93NUMPY\x02\x00", 8) + io_test::le(0xffffffffu, 4) + "{";
    CHECK(error_of(huge).argument == "header");
    CHECK(error_of(huge).contains("exceeds the limit of 1048576 bytes"));
  }
  SECTION("Fortran order, byte order and dtypes") {
    header_error("{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }", "Fortran-order");
    header_error("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", "dtype '>f8' is big-endian");
    header_error("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", "dtype '>f4' is big-endian");
    header_error("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", "dtype '<i8' is not supported");
    header_error("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", "dtype '|u1' is not supported");
    header_error("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", "dtype '<f2' is not supported");
    header_error("{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", "dtype '<c16' is not supported");
    header_error("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", "structured dtypes");
  }
  SECTION("unparsable dicts") {
    header_error("not a dict", "does not start with '{'");
    header_error("{'descr': '<f8', 'fortran_order': False}", "no 'shape' key");
    header_error("{'fortran_order': False, 'shape': (2,)}", "no 'descr' key");
    header_error("{'descr': '<f8', 'shape': (2,)}", "no 'fortran_order' key");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unexpected key 'extra'");
    header_error("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", "'descr' appears twice");
    header_error("{'descr': '<f8, 'fortran_order': False, 'shape': (2,)}", "expected ',' or '}'");
    header_error("{'descr': '<f8", "unterminated string");
    header_error("{'descr': '<f8', 'fortran_order': 0, 'shape': (2,)}", "not True or False");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': [2]}", "shape is not a tuple");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2, x)}", "other than integers");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2 3)}", "expected ',' or ')'");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} trailing", "after the closing '}'");
    header_error("{descr: '<f8'}", "expected a quoted key");
    header_error("{'descr' '<f8'}", "expected ':'");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2,", "the shape tuple is not closed");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2", "expected ',' or ')'");
  }
  SECTION("negative and overflowing shapes") {
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", "negative dimension");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }",
                 "overflows a signed 64-bit integer");
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
                 "overflows a 64-bit size");
    // 2^60 elements of 8 bytes: the element count fits, the byte count does not.
    header_error("{'descr': '<f8', 'fortran_order': False, 'shape': (1152921504606846976,), }",
                 "overflows a 64-bit size");
  }
  SECTION("data sections of the wrong length, seekable or not") {
    const std::string shorter = npy_bytes(ok_dict, 1, f64(1.0));
    const std::string longer = npy_bytes(ok_dict, 1, data + "x");
    for (const auto& e : {error_of(shorter), thrown_by([&] { read_pipe<double>(shorter); })}) {
      CHECK(e.argument == "data");
      CHECK(e.contains("shape (2,) of '<f8' needs 16"));
    }
    CHECK(error_of(shorter).contains("holds 8 bytes"));
    CHECK(error_of(longer).contains("holds 17 bytes"));
    CHECK(thrown_by([&] { read_pipe<double>(longer); }).contains("holds more than 16 bytes"));
    // A huge shape over a short file: rejected from the file length, nothing large allocated.
    const std::string claims = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", 1, data);
    CHECK(error_of(claims).argument == "data");
    const auto piped = thrown_by([&] { read_pipe<float>(claims); });
    CHECK(piped.argument == "data");
    CHECK(piped.contains("holds only 16 bytes"));
  }
}

TEST_CASE("npy: file and argument errors", "[io][npy][errors]") {
  io_test::temp_dir dir;
  const auto missing = thrown_by([&] { io::read_npy<double>(dir / "missing.npy"); });
  CHECK(missing.argument == "path");
  CHECK(missing.contains("cannot open"));
  CHECK(thrown_by([&] { io::read_npy<double>(dir.path()); }).contains("is a directory"));

  // Errors from a path name the file.
  io_test::write_file(dir / "bad.npy", "hello");
  const auto bad = thrown_by([&] { io::read_npy<double>(dir / "bad.npy"); });
  CHECK(bad.argument == "magic");
  CHECK(bad.contains("bad.npy"));

  io::tensor<double> wrong{{2, 2}, {1, 2, 3}};
  const auto w = thrown_by([&] { io::write_npy(dir / "w.npy", wrong); });
  CHECK(w.argument == "array");
  CHECK(w.contains("shape (2, 2) has 4 elements but data holds 3"));
  CHECK_FALSE(std::filesystem::exists(dir / "w.npy"));  // validated before the file is created
  CHECK(thrown_by([&] { io::write_npy(dir / "no" / "such" / "dir.npy", io::tensor<double>{{1}, {1}}); }).argument ==
        "path");

  CHECK(thrown_by([&] { io::as_matrix(io::tensor<double>{{2, 2, 1}, {1, 2, 3, 4}}); }).argument == "array");
  CHECK(thrown_by([&] { io::as_matrices(io::tensor<double>{{4}, {1, 2, 3, 4}}); }).argument == "array");
  CHECK(thrown_by([&] { io::as_matrix(io::tensor<double>{{2, 2}, {1, 2, 3}}); }).argument == "array");
  const std::vector<matrix<double>> mixed{matrix<double>::Zero(2, 3), matrix<double>::Zero(3, 2)};
  CHECK(thrown_by([&] { io::to_tensor(mixed); }).argument == "ms[1]");
  CHECK(thrown_by([&] { io::to_tensor(std::vector<matrix<double>>{}); }).argument == "ms");
}
