// The table-driven form of the error tests: each case is a name, the argument the error must name
// and a call that must throw it. check_cases runs every case and checks
//   - that the call throws a suptok::error (any other exception fails the test case),
//   - that argument() is the expected name,
//   - that what() is "suptok: <argument>: <details>" with non-empty details.
// The small valid fixtures below are what each case modifies in one place.
#pragma once

#include <suptok/suptok.hpp>

#include <catch2/catch.hpp>

#include "instances_errors.hpp"
#include "test_support.hpp"
#include "thrown.hpp"

#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace suptok::errors_test {

struct error_case {
  std::string name;      // what the case does, printed when it fails
  std::string argument;  // the name the error must carry
  std::function<void()> call;
};

inline void check_cases(const std::vector<error_case>& cases) {
  for (const error_case& c : cases) {
    INFO("case: " << c.name << " (expects " << c.argument << ")");
    const test::thrown t = test::thrown_by(c.call);
    CHECK(t.argument == c.argument);
    const std::string prefix = "suptok: " + c.argument + ": ";
    CHECK(t.message.rfind(prefix, 0) == 0);
    CHECK(t.message.size() > prefix.size());
  }
}

// The call, with a check that the suptok::error it throws says `text` (then rethrown for
// check_cases).
inline std::function<void()> saying(const std::string& text, std::function<void()> call) {
  return [text, call] {
    try {
      call();
    } catch (const error& e) {
      CHECK(std::string(e.what()).find(text) != std::string::npos);
      throw;
    }
  };
}

// Runs a call that must not throw: the fixtures are valid, so each failing case above is caused by
// the one change it makes.
inline void check_valid(const std::string& name, const std::function<void()>& call) {
  INFO("valid call: " << name);
  CHECK(test::thrown_by(call).argument == "<no error>");
}

inline constexpr double NaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double inf = std::numeric_limits<double>::infinity();

using M = matrix<double>;
using V = vector<double>;

// A valid barrier policy that keeps every b_t finite.
inline const barrier_params extended{extension::extended, 1e-8, 0.3};

// A valid sequence (4, 3), head stack (2 heads, d_k = 2, d_v = 3) and upstream gradient.
inline M seq(suptok::index N = 4, suptok::index p = 3, std::uint64_t seed = 11) {
  return test::random_matrix<double>(N, p, seed);
}
inline heads<double> stack(suptok::index p = 3, std::uint64_t seed = 21) {
  return test::random_heads<double>(2, p, 2, 3, seed);
}

// A valid grouped-query layer for p = 3: 4 query heads over 2 key/value heads, d_k = 2, d_v = 3,
// every bias present, rotary embeddings on.
inline layer<double> gqa_layer(suptok::index p = 3, std::uint64_t seed = 31) {
  layer<double> l;
  for (int h = 0; h < 4; ++h) {
    l.W_Q.push_back(test::random_matrix<double>(2, p, seed++, 0.5));
    l.W_O.push_back(test::random_matrix<double>(p, 3, seed++, 0.5));
    l.b_Q.push_back(test::random_matrix<double>(2, 1, seed++, 0.5).col(0));
  }
  for (int g = 0; g < 2; ++g) {
    l.W_K.push_back(test::random_matrix<double>(2, p, seed++, 0.5));
    l.W_V.push_back(test::random_matrix<double>(3, p, seed++, 0.5));
    l.b_K.push_back(test::random_matrix<double>(2, 1, seed++, 0.5).col(0));
    l.b_V.push_back(test::random_matrix<double>(3, 1, seed++, 0.5).col(0));
  }
  l.b_O = test::random_matrix<double>(p, 1, seed, 0.5).col(0);
  l.rope_theta = 100;
  return l;
}

// A copy of m with entry (r, c) set to v.
inline M with_entry(M m, suptok::index r, suptok::index c, double v) {
  m(r, c) = v;
  return m;
}
inline V with_entry(V v, suptok::index i, double x) {
  v(i) = x;
  return v;
}

// One head of p = 1 (the scalar weights q, k, v, o), for the p = 1 functions.
inline heads<double> scalar_heads(double q = 1, double k = 1, double v = 0.5, double o = 1) {
  heads<double> hs(1);
  hs[0].W_Q = M::Constant(1, 1, q);
  hs[0].W_K = M::Constant(1, 1, k);
  hs[0].W_V = M::Constant(1, 1, v);
  hs[0].W_O = M::Constant(1, 1, o);
  return hs;
}

}  // namespace suptok::errors_test
