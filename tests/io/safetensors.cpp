// safetensors: hand-built files read to their values (F32, F64, F16, BF16), the writer's bytes
// follow the format, round-trips are bitwise, tensors are read on demand (only their bytes are
// fetched; a sparse file of more than 4 GB is read past its 4 GB mark), and every malformed file
// gives the error that names what is wrong.
#include <suptok/io/safetensors.hpp>

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
using io_test::le;
using io_test::safetensors_bytes;
using io_test::thrown_by;

namespace {

// A seekable stream buffer over a string that hands out at most 4 KiB per refill and counts the
// bytes it has handed out: what a reader actually fetched from the "file".
class counting_buf : public std::streambuf {
 public:
  explicit counting_buf(std::string s) : s_(std::move(s)) {}
  std::size_t fetched = 0;

 protected:
  int_type underflow() override {
    if (pos_ >= s_.size()) return traits_type::eof();
    const std::size_t n = std::min<std::size_t>(4096, s_.size() - pos_);
    setg(s_.data() + pos_, s_.data() + pos_, s_.data() + pos_ + n);
    pos_ += n;
    fetched += n;
    return traits_type::to_int_type(*gptr());
  }
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override {
    const off_type cur = static_cast<off_type>(pos_) - (egptr() - gptr());
    const off_type base = dir == std::ios_base::beg ? 0 : dir == std::ios_base::cur ? cur : static_cast<off_type>(s_.size());
    return seekpos(pos_type(base + off), std::ios_base::in);
  }
  pos_type seekpos(pos_type p, std::ios_base::openmode) override {
    const off_type o = static_cast<off_type>(p);
    if (o < 0 || static_cast<std::size_t>(o) > s_.size()) return pos_type(off_type(-1));
    pos_ = static_cast<std::size_t>(o);
    setg(nullptr, nullptr, nullptr);
    return p;
  }

 private:
  std::string s_;
  std::size_t pos_ = 0;
};

io::safetensors_reader reader_of(const std::string& bytes) { return io::safetensors_reader::from_bytes(bytes); }

// The buffer of the hand-built file: a (3,) F32, a (2,) F64, a (2, 2) F16, a (3,) BF16 and a
// (1,) I64 tensor, back to back.
const std::string hand_buffer = f32(1.5f) + f32(-2.0f) + f32(0.25f)              // a: [0, 12)
                                + f64(0.1) + f64(-1e300)                         // b: [12, 28)
                                + le(0x3c00, 2) + le(0xc000, 2) + le(0x0001, 2) + le(0x7c00, 2)  // h: [28, 36)
                                + le(0x3f80, 2) + le(0x3eab, 2) + le(0xff80, 2)  // g: [36, 42)
                                + le(7, 8);                                      // i: [42, 50)
const std::string hand_header =
    R"({"b": {"dtype": "F64", "shape": [2], "data_offsets": [12, 28]},)"
    R"( "__metadata__": {"format": "pt", "note": "hand-built"},)"
    R"( "a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},)"
    R"( "h": {"dtype": "F16", "shape": [2, 2], "data_offsets": [28, 36]},)"
    R"( "g": {"dtype": "BF16", "shape": [3], "data_offsets": [36, 42]},)"
    R"( "i": {"dtype": "I64", "shape": [1], "data_offsets": [42, 50]}}  )";

}  // namespace

TEST_CASE("safetensors: a hand-built file lists and reads its tensors", "[io][safetensors]") {
  auto r = reader_of(safetensors_bytes(hand_header, hand_buffer));
  REQUIRE(r.tensors().size() == 5);
  const std::vector<std::string> order{"a", "b", "h", "g", "i"};  // buffer order
  for (std::size_t k = 0; k < order.size(); ++k) CHECK(r.tensors()[k].name == order[k]);
  CHECK(r.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "hand-built"}});
  CHECK(r.buffer_size() == 50);
  CHECK(r.contains("h"));
  CHECK_FALSE(r.contains("z"));
  CHECK(r.info("h").type == io::dtype::F16);
  CHECK(r.info("h").shape == std::vector<std::size_t>{2, 2});
  CHECK(r.info("b").begin == 12);
  CHECK(r.info("b").end == 28);
  CHECK(io::dtype_name(r.info("g").type) == "BF16");

  const auto a = r.read<float>("a");
  CHECK(a.shape == std::vector<std::size_t>{3});
  CHECK(a.data == std::vector<float>{1.5f, -2.0f, 0.25f});
  CHECK(r.read<double>("a").data == std::vector<double>{1.5, -2.0, 0.25});
  CHECK(r.read<double>("b").data == std::vector<double>{0.1, -1e300});
  const auto bf = r.read<float>("b");  // F64 read as float: rounded once, 1e300 overflows to -inf
  CHECK(bf.data[0] == 0.1f);
  CHECK(bf.data[1] == -std::numeric_limits<float>::infinity());
  const auto h = r.read<double>("h");
  CHECK(h.shape == std::vector<std::size_t>{2, 2});
  CHECK(h.data == std::vector<double>{1.0, -2.0, std::ldexp(1.0, -24), std::numeric_limits<double>::infinity()});
  CHECK(r.read<float>("g").data == std::vector<float>{1.0f, 0.333984375f, -std::numeric_limits<float>::infinity()});
  // Reads in any order, repeatedly.
  CHECK(r.read<float>("a").data == a.data);

  const auto i = thrown_by([&] { r.read<double>("i"); });
  CHECK(i.argument == "tensor 'i'");
  CHECK(i.contains("dtype I64 is not read"));
  const auto z = thrown_by([&] { r.read<double>("z"); });
  CHECK(z.argument == "name");
  CHECK(z.contains("no tensor 'z'"));
}

TEST_CASE("safetensors: an empty file ({} and no buffer) and zero-size tensors", "[io][safetensors]") {
  CHECK(reader_of(safetensors_bytes("{}", "")).tensors().empty());
  auto r = reader_of(safetensors_bytes(
      R"({"e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}, "x": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]}})",
      f64(3.0)));
  CHECK(r.read<float>("e").shape == std::vector<std::size_t>{0, 3});
  CHECK(r.read<float>("e").data.empty());
  CHECK(r.read<double>("x").shape.empty());
  CHECK(r.read<double>("x").data == std::vector<double>{3.0});
}

TEST_CASE("safetensors: the writer's bytes follow the format", "[io][safetensors]") {
  io::safetensors_writer w;
  w.add("y", io::tensor<double>{{1}, {-0.5}});
  w.add("x", io::tensor<float>{{2}, {1.f, 2.f}});
  w.set_metadata("k", "v");
  std::ostringstream out(std::ios::binary);
  w.write(out);
  // Keys in name order, the buffer in the same order, the header padded to a multiple of 8.
  std::string header =
      R"({"__metadata__":{"k":"v"},"x":{"data_offsets":[0,8],"dtype":"F32","shape":[2]},)"
      R"("y":{"data_offsets":[8,16],"dtype":"F64","shape":[1]}})";
  while (header.size() % 8) header += ' ';
  CHECK(out.str() == safetensors_bytes(header, f32(1.f) + f32(2.f) + f64(-0.5)));
}

TEST_CASE("safetensors: round-trips are bitwise, through files and bytes", "[io][safetensors]") {
  io_test::temp_dir dir;
  std::mt19937_64 gen(5);
  std::normal_distribution<double> normal(0.0, 2.0);
  std::map<std::string, io::tensor<float>> fs;
  std::map<std::string, io::tensor<double>> ds;
  const std::vector<std::vector<std::size_t>> shapes{{}, {7}, {3, 5}, {2, 3, 4}, {0, 4}};
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    io::tensor<float> f{shapes[k], {}};
    io::tensor<double> d{shapes[k], {}};
    std::size_t n = 1;
    for (auto s : shapes[k]) n *= s;
    for (std::size_t i = 0; i < n; ++i) {
      f.data.push_back(static_cast<float>(normal(gen)));
      d.data.push_back(normal(gen));
    }
    if (n > 3) {
      f.data[0] = std::numeric_limits<float>::quiet_NaN();
      d.data[1] = -std::numeric_limits<double>::infinity();
      d.data[2] = std::numeric_limits<double>::denorm_min();
    }
    fs["layers." + std::to_string(k) + ".f"] = f;
    ds["layers." + std::to_string(k) + ".d"] = d;
  }
  io::safetensors_writer w;
  for (const auto& [name, t] : fs) w.add(name, t);
  for (const auto& [name, t] : ds) w.add(name, t);
  const matrix<double> m = matrix<double>::Random(3, 4);
  w.add("m", m);
  w.set_metadata("format", "suptok");
  w.write(dir / "t.safetensors");

  std::ostringstream bytes(std::ios::binary);
  w.write(bytes);
  CHECK(io_test::read_file(dir / "t.safetensors") == bytes.str());

  io::safetensors_reader from_file(dir / "t.safetensors");
  auto from_bytes = reader_of(bytes.str());
  for (auto* r : {&from_file, &from_bytes}) {
    CHECK(r->tensors().size() == fs.size() + ds.size() + 1);
    CHECK(r->metadata().at("format") == "suptok");
    for (const auto& [name, t] : fs) {
      const auto back = r->read<float>(name);
      CHECK(back.shape == t.shape);
      CHECK(io_test::same_bits(back.data, t.data));
      CHECK(r->info(name).type == io::dtype::F32);
    }
    for (const auto& [name, t] : ds) {
      const auto back = r->read<double>(name);
      CHECK(back.shape == t.shape);
      CHECK(io_test::same_bits(back.data, t.data));
    }
    CHECK(io::as_matrix(r->read<double>("m")) == m);
  }
  // The convenience writer.
  io::write_safetensors(dir / "d.safetensors", ds, {{"a", "b"}});
  io::safetensors_reader rd(dir / "d.safetensors");
  CHECK(rd.metadata().at("a") == "b");
  CHECK(io_test::same_bits(rd.read<double>("layers.2.d").data, ds["layers.2.d"].data));
}

TEST_CASE("safetensors: tensors are fetched on demand", "[io][safetensors]") {
  // Two 1 MiB tensors around a small one: opening and reading the small one fetches the header
  // and the small tensor's bytes, not the large ones.
  io::safetensors_writer w;
  w.add("big1", io::tensor<float>{{262144}, std::vector<float>(262144, 1.f)});
  w.add("big2", io::tensor<float>{{262144}, std::vector<float>(262144, 2.f)});
  w.add("mid", io::tensor<double>{{3}, {1, 2, 3}});
  std::ostringstream out(std::ios::binary);
  w.write(out);
  auto buf = std::make_unique<counting_buf>(out.str());
  counting_buf& counter = *buf;
  auto stream = std::make_unique<std::istream>(&counter);
  io::safetensors_reader r(std::move(stream));
  CHECK(r.read<double>("mid").data == std::vector<double>{1, 2, 3});
  INFO("fetched " << counter.fetched << " of " << out.str().size() << " bytes");
  CHECK(counter.fetched <= 4 * 4096);
}

TEST_CASE("safetensors: a sparse file larger than 4 GB is read past its 4 GB mark", "[io][safetensors]") {
  io_test::temp_dir dir;
  const std::uint64_t big = 1'200'000'000;  // F32 elements: 4.8 GB, never written or read
  const std::string header = R"({"big": {"dtype": "F32", "shape": [1200000000], "data_offsets": [0, 4800000000]},)"
                             R"( "tail": {"dtype": "F64", "shape": [2], "data_offsets": [4800000000, 4800000016]}})";
  const auto path = dir / "sparse.safetensors";
  io_test::write_file(path, safetensors_bytes(header, ""));
  const std::uint64_t data_start = 8 + header.size();
  std::error_code ec;
  std::filesystem::resize_file(path, data_start + big * 4, ec);  // a hole: no disk blocks
  if (ec) {
    WARN("cannot make a sparse file here (" << ec.message() << "): skipped");
    return;
  }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary | std::ios::ate);
    const std::string tail = f64(6.25) + f64(-3.5);
    f.write(tail.data(), static_cast<std::streamsize>(tail.size()));
  }
  io::safetensors_reader r(path);
  CHECK(r.info("big").shape == std::vector<std::size_t>{1200000000});
  CHECK(r.read<double>("tail").data == std::vector<double>{6.25, -3.5});
}

TEST_CASE("safetensors: malformed files give errors that name the problem", "[io][safetensors][errors]") {
  const std::string buffer8 = f32(1.f) + f32(2.f);
  const auto error_of = [](const std::string& bytes) { return thrown_by([&] { reader_of(bytes); }); };
  // A one-tensor file whose entry for "w" is `entry`, over `buffer`.
  const auto entry_error = [&](const std::string& entry, const std::string& buffer = f32(1.f) + f32(2.f)) {
    return error_of(safetensors_bytes(R"({"w": )" + entry + "}", buffer));
  };
  const auto expect = [](const io_test::thrown& e, const std::string& argument, const std::string& part) {
    CHECK(e.argument == argument);
    CHECK(e.contains(part));
    if (!e.contains(part)) WARN("message: " << e.message << " (expected '" << part << "')");
  };
  REQUIRE(entry_error(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})").argument == "<no error>");

  SECTION("header length") {
    expect(error_of(""), "header_length", "fewer than the 8-byte header length");
    expect(error_of("1234567"), "header_length", "fewer than the 8-byte");
    expect(error_of(le(1ull << 40, 8) + "{}"), "header_length", "exceeds the limit of 100000000 bytes");
    expect(error_of(le(100, 8) + "{}"), "header_length", "header length 100 exceeds the 2 bytes that follow it");
    expect(error_of(le(0, 8)), "header", "does not start with '{'");
  }
  SECTION("header text") {
    expect(error_of(safetensors_bytes(" {}", "")), "header", "does not start with '{'");
    expect(error_of(safetensors_bytes("[]", "")), "header", "does not start with '{'");
    expect(error_of(safetensors_bytes("{\"w\": ", "")), "header", "not valid JSON");
    expect(error_of(safetensors_bytes("{} x", "")), "header", "not valid JSON");
    expect(error_of(safetensors_bytes("{\"\xff\": 1}", "")), "header", "not valid JSON");  // not UTF-8
    // Deep nesting: parsed and destroyed without recursion (no stack overflow).
    const std::string deep = std::string(200000, '[') + std::string(200000, ']');
    expect(error_of(safetensors_bytes("{\"w\": " + deep + "}", "")), "tensor 'w'", "not an object");
    expect(error_of(safetensors_bytes("{\"w\": " + std::string(200000, '['), "")), "header", "not valid JSON");
    expect(error_of(safetensors_bytes(R"({"w": 1e99999})", "")), "header", "not valid JSON");
    expect(error_of(safetensors_bytes(R"({"__metadata__": [1]})", "")), "__metadata__", "not an object");
    expect(error_of(safetensors_bytes(R"({"__metadata__": {"a": 1}})", "")), "__metadata__", "'a' is not a string");
  }
  SECTION("entries") {
    expect(entry_error("[1]"), "tensor 'w'", "not an object");
    expect(entry_error(R"({"dtype": "F32", "shape": [2]})"), "tensor 'w'", "lacks");
    expect(entry_error(R"({"dtype": 4, "shape": [2], "data_offsets": [0, 8]})"), "tensor 'w'", "dtype is not a string");
    expect(entry_error(R"({"dtype": "F12", "shape": [2], "data_offsets": [0, 8]})"), "tensor 'w'", "unknown dtype 'F12'");
    expect(entry_error(R"({"dtype": "F32", "shape": 2, "data_offsets": [0, 8]})"), "tensor 'w'", "shape is not an array");
    expect(entry_error(R"({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]})"), "tensor 'w'", "negative dimension");
    expect(entry_error(R"({"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]})"), "tensor 'w'",
           "other than non-negative integers");
    expect(entry_error(R"({"dtype": "F32", "shape": [1e30], "data_offsets": [0, 8]})"), "tensor 'w'",
           "other than non-negative integers");
    expect(entry_error(R"({"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 8]})"), "tensor 'w'",
           "overflows a signed 64-bit integer");
    expect(entry_error(R"({"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]})"), "tensor 'w'",
           "overflows a 64-bit size");
    expect(entry_error(R"({"dtype": "F32", "shape": [2], "data_offsets": [0]})"), "tensor 'w'", "not a pair");
    expect(entry_error(R"({"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]})"), "tensor 'w'", "not a pair");
    expect(entry_error(R"({"dtype": "F32", "shape": [2], "data_offsets": "0-8"})"), "tensor 'w'", "not a pair");
    expect(entry_error(R"({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]})"), "tensor 'w'", "wrong order");
    expect(entry_error(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 9]})"), "tensor 'w'",
           "data ends at byte 9, past the end of the 8-byte buffer");
    expect(entry_error(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 18446744073709551615]})"), "tensor 'w'",
           "past the end");
    expect(entry_error(R"({"dtype": "F64", "shape": [2], "data_offsets": [0, 8]})"), "tensor 'w'",
           "data_offsets span 8 bytes but shape (2,) of F64 needs 16");
    expect(entry_error(R"({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]})"), "tensor 'w'", "needs 12");
  }
  SECTION("the tensors must tile the buffer") {
    const std::string two = f32(1) + f32(2) + f32(3);
    expect(error_of(safetensors_bytes(
               R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
               two)),
           "tensor 'b'", "data [4, 12) overlaps tensor 'a'");
    expect(error_of(safetensors_bytes(
               R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
               buffer8)),
           "tensor 'b'", "overlaps tensor 'a'");
    expect(error_of(safetensors_bytes(
               R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
               two)),
           "header", "bytes [4, 8) of the buffer belong to no tensor");
    expect(entry_error(R"({"dtype": "F32", "shape": [1], "data_offsets": [4, 8]})"), "header",
           "bytes [0, 4) of the buffer belong to no tensor");
    expect(entry_error(R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})"), "header",
           "the last 4 bytes of the buffer belong to no tensor");
    expect(error_of(safetensors_bytes("{}", "xx")), "header", "the last 2 bytes");
  }
}

TEST_CASE("safetensors: file, name and writer errors", "[io][safetensors][errors]") {
  io_test::temp_dir dir;
  CHECK(thrown_by([&] { io::safetensors_reader r(dir / "missing.safetensors"); }).argument == "path");

  // Errors from a path name the file.
  io_test::write_file(dir / "short.safetensors", "abc");
  const auto s = thrown_by([&] { io::safetensors_reader r(dir / "short.safetensors"); });
  CHECK(s.argument == "header_length");
  CHECK(s.contains("short.safetensors"));

  // A file that shrinks after it was opened: the read fails cleanly.
  const auto path = dir / "shrinks.safetensors";
  io::safetensors_writer w;
  w.add("x", io::tensor<double>{{4}, {1, 2, 3, 4}});
  w.write(path);
  io::safetensors_reader r(path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 8);
  const auto shrunk = thrown_by([&] { r.read<double>("x"); });
  CHECK(shrunk.argument == "tensor 'x'");
  CHECK(shrunk.contains("the file ends inside the tensor's data"));

  io::safetensors_writer bad;
  CHECK(thrown_by([&] { bad.add("", io::tensor<float>{{1}, {1}}); }).argument == "name");
  CHECK(thrown_by([&] { bad.add("__metadata__", io::tensor<float>{{1}, {1}}); }).argument == "name");
  bad.add("a", io::tensor<float>{{1}, {1}});
  const auto dup = thrown_by([&] { bad.add("a", io::tensor<double>{{1}, {1}}); });
  CHECK(dup.argument == "name");
  CHECK(dup.contains("'a' was already added"));
  CHECK(thrown_by([&] { bad.add("b", io::tensor<float>{{3}, {1}}); }).argument == "array");
  CHECK(thrown_by([&] { bad.write(dir / "no" / "dir" / "x.safetensors"); }).argument == "path");
}
