// The C++ side of the NumPy interoperability test (npy_interop.py).
//   io_npy_interop check DIR   for each line "NAME f4|f8" of DIR/manifest.txt, reads DIR/NAME.npy
//                              (written by NumPy) and compares it bitwise with DIR/NAME.raw (the
//                              same values as raw little-endian bytes, from ndarray.tofile) and
//                              DIR/NAME.shape; for each line "NAME error ARGUMENT", checks that
//                              reading DIR/NAME.npy throws suptok::error naming ARGUMENT.
//   io_npy_interop write DIR   writes NAME.npy, NAME.raw, NAME.shape and manifest.txt for NumPy
//                              to check the other way round.
// Exit code 0 when every check passes, 1 otherwise (each failure printed).
#include <suptok/io/npy.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using suptok::io::tensor;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::size_t> read_shape(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::size_t> shape;
  std::size_t d;
  while (f >> d) shape.push_back(d);
  return shape;
}

template <class T>
bool check_one(const fs::path& dir, const std::string& name) {
  const auto t = suptok::io::read_npy<T>(dir / (name + ".npy"));
  const std::string raw = slurp(dir / (name + ".raw"));
  const auto shape = read_shape(dir / (name + ".shape"));
  bool ok = t.shape == shape && raw.size() == t.data.size() * sizeof(T) &&
            (raw.empty() || std::memcmp(raw.data(), t.data.data(), raw.size()) == 0);
  // Read in the other precision: float -> double exactly, double -> float rounded once.
  if constexpr (std::is_same_v<T, float>) {
    const auto d = suptok::io::read_npy<double>(dir / (name + ".npy"));
    for (std::size_t i = 0; ok && i < d.data.size(); ++i)
      ok = (std::isnan(d.data[i]) && std::isnan(t.data[i])) || d.data[i] == static_cast<double>(t.data[i]);
  } else {
    const auto f = suptok::io::read_npy<float>(dir / (name + ".npy"));
    for (std::size_t i = 0; ok && i < f.data.size(); ++i)
      ok = (std::isnan(f.data[i]) && std::isnan(t.data[i])) || f.data[i] == static_cast<float>(t.data[i]);
  }
  return ok;
}

int check(const fs::path& dir) {
  std::ifstream manifest(dir / "manifest.txt");
  std::string name, kind;
  int failures = 0, checked = 0;
  while (manifest >> name >> kind) {
    bool ok = false;
    std::string detail;
    try {
      if (kind == "f4") ok = check_one<float>(dir, name);
      else if (kind == "f8") ok = check_one<double>(dir, name);
      else if (kind == "error") {
        std::string argument;
        manifest >> argument;
        try {
          suptok::io::read_npy<double>(dir / (name + ".npy"));
          detail = "no error";
        } catch (const suptok::error& e) {
          ok = e.argument() == argument;
          detail = e.what();
        }
      }
    } catch (const std::exception& e) {
      detail = e.what();
    }
    ++checked;
    std::cout << (ok ? "ok   " : "FAIL ") << name << " " << kind << (detail.empty() ? "" : ": " + detail) << "\n";
    if (!ok) ++failures;
  }
  std::cout << checked << " files checked, " << failures << " failed\n";
  return failures == 0 && checked > 0 ? 0 : 1;
}

template <class T>
void write_one(const fs::path& dir, const std::string& name, const tensor<T>& t, std::ofstream& manifest) {
  suptok::io::write_npy(dir / (name + ".npy"), t);
  std::ofstream raw(dir / (name + ".raw"), std::ios::binary);
  raw.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * sizeof(T)));
  std::ofstream shape(dir / (name + ".shape"));
  for (auto d : t.shape) shape << d << " ";
  manifest << name << " " << (sizeof(T) == 4 ? "f4" : "f8") << "\n";
}

int write(const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream manifest(dir / "manifest.txt");
  tensor<double> a{{3, 4}, {}};
  for (int i = 0; i < 12; ++i) a.data.push_back(std::sin(1.0 + i) * std::pow(10.0, i - 6));
  write_one(dir, "cpp_f8_2d", a, manifest);
  tensor<float> b{{2, 3, 2}, {}};
  for (int i = 0; i < 12; ++i) b.data.push_back(static_cast<float>(std::cos(0.5 * i)));
  b.data[0] = std::numeric_limits<float>::infinity();
  b.data[1] = std::numeric_limits<float>::quiet_NaN();
  b.data[2] = -0.0f;
  b.data[3] = std::numeric_limits<float>::denorm_min();
  write_one(dir, "cpp_f4_3d", b, manifest);
  write_one(dir, "cpp_f8_scalar", tensor<double>{{}, {-2.75}}, manifest);
  write_one(dir, "cpp_f4_empty", tensor<float>{{0, 3}, {}}, manifest);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: io_npy_interop check|write DIR\n";
    return 2;
  }
  const std::string mode = argv[1];
  try {
    if (mode == "check") return check(argv[2]);
    if (mode == "write") return write(argv[2]);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  std::cerr << "unknown mode '" << mode << "'\n";
  return 2;
}
