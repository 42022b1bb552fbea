// Per-token tables: the CSV and JSON text of a small table, exactly; numbers read back to the
// same doubles; non-finite values spelled as documented; errors for bad columns and totals.
#include <suptok/io/table.hpp>

#include <catch2/catch.hpp>

#include "io_support.hpp"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>

using namespace suptok;
using io_test::thrown_by;

namespace {

const double inf = std::numeric_limits<double>::infinity();
const double nan = std::numeric_limits<double>::quiet_NaN();

io::table example() {
  io::table t;
  t.add_column("position", std::vector<int>{0, 1, 2});
  t.add_column("sign", std::vector<int>{1, -1, 1});
  t.add_column("log_abs_det", std::vector<double>{0.5, -inf, nan});
  t.add_column("b", std::vector<float>{0.25f, 1.0f, std::numeric_limits<float>::infinity()});
  t.add_column("support", std::vector<bool>{false, true, false});
  t.add_total("penalty", 2.5);
  t.add_total("support_count", 1);
  t.add_total("all_finite", false);
  t.add_total("worst", -inf);
  return t;
}

}  // namespace

TEST_CASE("table: CSV text", "[io][table]") {
  std::ostringstream out;
  example().write_csv(out);
  CHECK(out.str() ==
        "position,sign,log_abs_det,b,support\n"
        "0,1,0.5,0.25,false\n"
        "1,-1,-inf,1,true\n"
        "2,1,nan,inf,false\n");
}

TEST_CASE("table: JSON text", "[io][table]") {
  std::ostringstream out;
  example().write_json(out, -1);
  CHECK(out.str() ==
        R"({"rows":3,"columns":{"position":[0,1,2],"sign":[1,-1,1],"log_abs_det":[0.5,"-inf","nan"],)"
        R"("b":[0.25,1.0,"inf"],"support":[false,true,false]},)"
        R"("totals":{"penalty":2.5,"support_count":1,"all_finite":false,"worst":"-inf"}})"
        "\n");
  // The parsed document has the documented layout.
  const auto j = nlohmann::json::parse(out.str());
  CHECK(j["rows"] == 3);
  CHECK(j["columns"]["b"][2] == "inf");
  CHECK(j["totals"]["support_count"] == 1);
}

TEST_CASE("table: numbers read back to the same doubles from CSV and JSON", "[io][table]") {
  std::mt19937_64 gen(3);
  std::uniform_real_distribution<double> mant(-1.0, 1.0);
  std::uniform_int_distribution<int> expo(-300, 300);
  std::vector<double> x;
  for (int i = 0; i < 2000; ++i) x.push_back(std::ldexp(mant(gen), expo(gen)));
  x.push_back(std::numeric_limits<double>::denorm_min());
  x.push_back(std::numeric_limits<double>::max());
  x.push_back(-0.0);
  x.push_back(0.1);
  io::table t;
  t.add_column("x", x);

  std::ostringstream csv;
  t.write_csv(csv);
  std::istringstream lines(csv.str());
  std::string line;
  std::getline(lines, line);
  CHECK(line == "x");
  std::size_t mismatches = 0, k = 0;
  while (std::getline(lines, line)) {
    const double back = std::strtod(line.c_str(), nullptr);
    if (std::memcmp(&back, &x[k], sizeof back) != 0) ++mismatches;
    ++k;
  }
  CHECK(k == x.size());
  CHECK(mismatches == 0);

  const auto j = nlohmann::json::parse(t.to_json().dump());
  mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double back = j["columns"]["x"][i].get<double>();
    if (std::memcmp(&back, &x[i], sizeof back) != 0) ++mismatches;
  }
  CHECK(mismatches == 0);
  // strtod reads the non-finite spellings back.
  CHECK(std::isinf(std::strtod("-inf", nullptr)));
  CHECK(std::isnan(std::strtod("nan", nullptr)));
}

TEST_CASE("table: names are quoted in CSV when needed, files are written", "[io][table]") {
  io::table t;
  t.add_column("a,b", std::vector<double>{1});
  t.add_column("say \"hi\"", std::vector<long>{2});
  t.add_column("plain", std::vector<unsigned>{3});
  std::ostringstream out;
  t.write_csv(out);
  CHECK(out.str() == "\"a,b\",\"say \"\"hi\"\"\",plain\n1,2,3\n");

  io_test::temp_dir dir;
  example().write_csv(dir / "t.csv");
  example().write_json(dir / "t.json");
  std::ostringstream csv, json;
  example().write_csv(csv);
  example().write_json(json);
  CHECK(io_test::read_file(dir / "t.csv") == csv.str());
  CHECK(io_test::read_file(dir / "t.json") == json.str());

  io::table empty;
  std::ostringstream e;
  empty.write_json(e, -1);
  CHECK(e.str() == "{\"rows\":0,\"columns\":{},\"totals\":{}}\n");
}

TEST_CASE("table: errors", "[io][table][errors]") {
  io::table t;
  t.add_column("a", std::vector<double>{1, 2});
  const auto len = thrown_by([&] { t.add_column("b", std::vector<double>{1, 2, 3}); });
  CHECK(len.argument == "values");
  CHECK(len.contains("column 'b' has 3 rows, the table has 2"));
  const auto dup = thrown_by([&] { t.add_column("a", std::vector<double>{1, 2}); });
  CHECK(dup.argument == "name");
  CHECK(dup.contains("duplicate column 'a'"));
  CHECK(thrown_by([&] { t.add_column("", std::vector<double>{1, 2}); }).argument == "name");
  t.add_total("a", 1.0);  // a total may share a column's name
  CHECK(thrown_by([&] { t.add_total("a", 2); }).contains("duplicate total 'a'"));
  const auto big = thrown_by([&] { t.add_column("u", std::vector<std::uint64_t>{1, std::uint64_t(1) << 63}); });
  CHECK(big.argument == "values");
  CHECK(big.contains("does not fit in int64"));
  CHECK(t.columns().size() == 1);  // failed calls add nothing
  CHECK(t.rows() == 2);
  io_test::temp_dir dir;
  CHECK(thrown_by([&] { t.write_csv(dir / "no" / "t.csv"); }).argument == "path");
}
