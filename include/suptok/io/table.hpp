// suptok/io/table.hpp: a per-token table (named columns of equal length plus named scalar
// totals) written as CSV or JSON.
//
//   io::table t;
//   t.add_column("position", positions);   // any std::vector / range of arithmetic values:
//   t.add_column("b", b);                  //   floating -> number column (stored as double),
//   t.add_column("support", flags);        //   bool -> bool column, other integers -> int64
//   t.add_total("penalty", 1.25);          // floating, integer or bool scalars
//   t.write_csv("out.csv");  t.write_json("out.json");  // or to a std::ostream
//   nlohmann::ordered_json j = t.to_json();               // to embed in a larger document
//
// Columns and totals keep the order in which they were added. Names must be non-empty and unique
// among the columns (and among the totals); every column must have the table's row count (the
// length of the first column added). Errors are suptok::error naming "name" or "values".
//
// CSV (RFC 4180): one header line with the column names, then one line per row; names that hold
// a comma, a quote or a line break are quoted. Totals are not in the CSV (it stays one rectangle
// that any CSV reader accepts); they are in the JSON. Numbers are written in the shortest form
// that reads back to the same double (std::to_chars), integers in decimal, bools as true/false,
// and non-finite numbers as inf, -inf and nan (the spellings NumPy, pandas and strtod accept).
//
// JSON: {"rows": R, "columns": {"name": [...], ...}, "totals": {"name": value, ...}}. JSON has no
// non-finite numbers, so inf, -inf and NaN are written as the strings "inf", "-inf" and "nan"
// (in columns and totals); every other number is a JSON number that reads back to the same
// double. Names that are not valid UTF-8 have the bad bytes replaced by U+FFFD in the JSON.
// Needs nlohmann-json (<nlohmann/json.hpp>).
#pragma once

#include "npy.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace suptok::io {

class table {
 public:
  using column_data = std::variant<std::vector<double>, std::vector<std::int64_t>, std::vector<bool>>;
  using scalar = std::variant<double, std::int64_t, bool>;

  // Adds a column; floating values become a number column, bools a bool column, other integers
  // an int64 column.
  template <std::ranges::input_range Range>
    requires std::is_arithmetic_v<std::ranges::range_value_t<Range>>
  void add_column(const std::string& name, const Range& values) {
    using V = std::ranges::range_value_t<Range>;
    check_new_name(name, columns_, "column");
    column_data data;
    if constexpr (std::is_same_v<V, bool>) {
      data = std::vector<bool>(std::ranges::begin(values), std::ranges::end(values));
    } else if constexpr (std::is_floating_point_v<V>) {
      std::vector<double> v;
      for (const auto& x : values) v.push_back(static_cast<double>(x));
      data = std::move(v);
    } else {
      std::vector<std::int64_t> v;
      for (const auto& x : values) v.push_back(to_int64(x));
      data = std::move(v);
    }
    const std::size_t n = std::visit([](const auto& c) { return c.size(); }, data);
    if (!columns_.empty())
      detail::require(n == rows_, "values", "column '", name, "' has ", n, " rows, the table has ", rows_);
    rows_ = n;
    columns_.emplace_back(name, std::move(data));
  }

  template <class T>
    requires std::is_arithmetic_v<T>
  void add_total(const std::string& name, T value) {
    check_new_name(name, totals_, "total");
    if constexpr (std::is_same_v<T, bool>)
      totals_.emplace_back(name, scalar(value));
    else if constexpr (std::is_floating_point_v<T>)
      totals_.emplace_back(name, scalar(static_cast<double>(value)));
    else
      totals_.emplace_back(name, scalar(to_int64(value)));
  }

  std::size_t rows() const noexcept { return rows_; }
  const std::vector<std::pair<std::string, column_data>>& columns() const noexcept { return columns_; }
  const std::vector<std::pair<std::string, scalar>>& totals() const noexcept { return totals_; }

  void write_csv(std::ostream& out) const {
    for (std::size_t c = 0; c < columns_.size(); ++c) out << (c ? "," : "") << csv_field(columns_[c].first);
    out << '\n';
    for (std::size_t r = 0; r < rows_; ++r) {
      for (std::size_t c = 0; c < columns_.size(); ++c) {
        if (c) out << ',';
        std::visit([&](const auto& col) { out << text(col[r]); }, columns_[c].second);
      }
      out << '\n';
    }
    detail::require(out.good(), "out", "write failed");
  }

  nlohmann::ordered_json to_json() const {
    nlohmann::ordered_json j;
    j["rows"] = rows_;
    j["columns"] = nlohmann::ordered_json::object();
    for (const auto& [name, data] : columns_) {
      nlohmann::ordered_json col = nlohmann::ordered_json::array();
      std::visit(
          [&](const auto& c) {
            for (std::size_t r = 0; r < c.size(); ++r) col.push_back(json_value(c[r]));
          },
          data);
      j["columns"][name] = std::move(col);
    }
    j["totals"] = nlohmann::ordered_json::object();
    for (const auto& total : totals_)
      j["totals"][total.first] = std::visit([](const auto& x) { return json_value(x); }, total.second);
    return j;
  }

  // indent < 0: one line; otherwise pretty-printed with that many spaces.
  void write_json(std::ostream& out, int indent = 1) const {
    out << to_json().dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
    detail::require(out.good(), "out", "write failed");
  }

  void write_csv(const std::filesystem::path& path) const {
    std::ofstream f = detail::open_for_writing(path);
    write_csv(static_cast<std::ostream&>(f));
  }
  void write_json(const std::filesystem::path& path, int indent = 1) const {
    std::ofstream f = detail::open_for_writing(path);
    write_json(static_cast<std::ostream&>(f), indent);
  }

  // The text of one value as written to CSV (and, for non-finite numbers, to JSON).
  static std::string text(double x) {
    if (std::isnan(x)) return "nan";
    if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, res.ptr);
  }
  static std::string text(std::int64_t x) { return std::to_string(x); }
  static std::string text(bool x) { return x ? "true" : "false"; }

 private:
  template <class T>
  static std::int64_t to_int64(T x) {
    if constexpr (std::is_unsigned_v<T>)
      detail::require(static_cast<std::uintmax_t>(x) <= static_cast<std::uintmax_t>(INT64_MAX), "values", "integer ",
                      x, " does not fit in int64");
    return static_cast<std::int64_t>(x);
  }

  template <class List>
  static void check_new_name(const std::string& name, const List& list, const char* kind) {
    detail::require(!name.empty(), "name", "a ", kind, " name must not be empty");
    for (const auto& [n, v] : list) detail::require(n != name, "name", "duplicate ", kind, " '", name, "'");
  }

  static std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  }

  static nlohmann::ordered_json json_value(double x) {
    if (!std::isfinite(x)) return text(x);
    return x;
  }
  static nlohmann::ordered_json json_value(std::int64_t x) { return x; }
  static nlohmann::ordered_json json_value(bool x) { return x; }

  std::size_t rows_ = 0;
  std::vector<std::pair<std::string, column_data>> columns_;
  std::vector<std::pair<std::string, scalar>> totals_;
};

}  // namespace suptok::io
