// Tier 1: support-token rules on constructed margin and barrier lists, with ties.
#include "barrier_checks.hpp"

#include <catch2/catch.hpp>

#include <limits>

using namespace suptok;

namespace {

// position:                         0    1    2    3    4    5    6    7
const std::vector<double> margins{1.0, 1.0, 0.3, 0.1, 0.3, 0.7, 0.1, 0.5};

}  // namespace

TEST_CASE("rule (a): k smallest margins, ties by position", "[barrier][support]") {
  auto s = support_smallest(margins, 4);
  CHECK(s.positions == std::vector<suptok::index>{3, 6, 2, 4});
  CHECK(s.margins == std::vector<double>{0.1, 0.1, 0.3, 0.3});
  CHECK(support_smallest(margins, 0).positions.empty());
  CHECK(support_smallest(margins, 8).positions == std::vector<suptok::index>{3, 6, 2, 4, 7, 5, 0, 1});
  // trivial positions (strict: first = 2) are never selected
  CHECK(support_smallest(margins, 6, 2).positions == std::vector<suptok::index>{3, 6, 2, 4, 7, 5});
  CHECK_THROWS_AS(support_smallest(margins, 7, 2), error);
  CHECK_THROWS_AS(support_smallest(margins, -1), error);
}

TEST_CASE("rule (b): margin <= delta, in order of margin then position", "[barrier][support]") {
  auto s = support_within(margins, 0.3);
  CHECK(s.positions == std::vector<suptok::index>{3, 6, 2, 4});  // 0.3 itself is included
  CHECK(s.margins == std::vector<double>{0.1, 0.1, 0.3, 0.3});
  CHECK(support_within(margins, 0.05).positions.empty());
  CHECK(support_within(margins, 1.0).positions.size() == 8);
  CHECK(support_within(margins, 1.0, 2).positions.size() == 6);
  CHECK_THROWS_AS(support_within(margins, -0.1), error);
  CHECK_THROWS_AS(support_within(margins, std::numeric_limits<double>::infinity()), error);
}

TEST_CASE("rule (c): smallest set carrying a fraction q of the total barrier", "[barrier][support]") {
  // position:           0  1    2    3    4    5    6    7
  const std::vector<double> b{0, 0, 1.0, 3.0, 1.0, 2.0, 3.0, -1.0};  // eligible total (first 2) = 9
  // q = 0.5: 4.5 -> 3 (pos 3), 3 (pos 6): 6 >= 4.5 -> {3, 6}
  auto s = support_barrier_fraction(margins, b, 0.5, 2);
  CHECK(s.positions == std::vector<suptok::index>{3, 6});
  CHECK(s.margins == std::vector<double>{0.1, 0.1});
  // q = 2/3: 6 >= 6 reached exactly by {3, 6}
  CHECK(support_barrier_fraction(margins, b, 2.0 / 3.0, 2).positions == std::vector<suptok::index>{3, 6});
  // q = 0.7: 6.3 -> needs pos 5 (2): {3, 6, 5}
  CHECK(support_barrier_fraction(margins, b, 0.7, 2).positions == std::vector<suptok::index>{3, 6, 5});
  // q = 1: 9 = 3+3+2+1 (pos 2 before pos 4 by position); the negative token is never needed
  CHECK(support_barrier_fraction(margins, b, 1.0, 2).positions == std::vector<suptok::index>{3, 6, 5, 2});
  // total <= 0: the empty set already carries q * B
  CHECK(support_barrier_fraction(margins, std::vector<double>{0, 0, -1, 0.5, 0, 0, 0, 0}, 0.5, 2).positions.empty());
  // +inf (exact policy, infeasible tokens): all of them, by position
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(support_barrier_fraction(margins, std::vector<double>{0, 0, 1, inf, 2, inf, 0, 0}, 0.1, 2).positions ==
        std::vector<suptok::index>{3, 5});
  CHECK_THROWS_AS(support_barrier_fraction(margins, b, 0.0, 2), error);
  CHECK_THROWS_AS(support_barrier_fraction(margins, b, 1.5, 2), error);
  CHECK_THROWS_AS(support_barrier_fraction(margins, std::vector<double>{1, 2}, 0.5), error);
  CHECK_THROWS_AS(support_barrier_fraction(margins, std::vector<double>(8, std::nan("")), 0.5), error);
}

TEST_CASE("support-token validation names the argument", "[barrier][validation]") {
  const auto argument_of = [](auto&& f) {
    try {
      f();
    } catch (const error& e) {
      return e.argument();
    }
    return std::string("no error");
  };
  CHECK(argument_of([] { support_smallest(std::vector<double>{0.1, NAN}, 1); }) == "margins[1]");
  CHECK(argument_of([] { support_smallest(std::vector<double>{0.1, 0.2}, 3); }) == "k");
  CHECK(argument_of([] { support_smallest(std::vector<double>{0.1, 0.2}, 1, 3); }) == "first");
  CHECK(argument_of([] { support_within(std::vector<double>{0.1}, -1.0); }) == "delta");
  CHECK(argument_of([] { support_barrier_fraction(std::vector<double>{0.1}, std::vector<double>{1}, 0.0); }) == "q");
  CHECK(argument_of([] { support_barrier_fraction(std::vector<double>{0.1}, std::vector<double>{}, 0.5); }) == "b");
  CHECK(argument_of([] { support_barrier_fraction(std::vector<double>{0.1, 0.2}, std::vector<double>{1, NAN}, 0.5); }) ==
        "b[1]");
}

TEST_CASE("support tokens of a sequence are consistent with its margins and barrier", "[barrier][support]") {
  const test::barrier_case c = test::gradient_cases()[2];  // strict, straddling
  const matrix<double> U = test::case_U<double>(c);
  const heads<double> hs = test::case_heads<double>(c);
  const attention_params ap = test::case_params(c);
  const std::vector<double> m = margins_of(token_margins<double>(U, hs, ap));
  const std::vector<double> b = barrier_per_token<double>(U, hs, c.bp, ap);
  const suptok::index first = first_nontrivial(ap.causal_mask);
  const auto s = support_smallest(m, 1, first);
  REQUIRE(s.positions.size() == 1);
  for (suptok::index t = first; t < suptok::index(m.size()); ++t) CHECK(s.margins[0] <= m[std::size_t(t)]);
  // the token with det < 0 carries the largest extended barrier
  const auto top = support_barrier_fraction(m, b, 0.01, first);
  REQUIRE(top.positions.size() == 1);
  CHECK(top.positions[0] == 2);
}
