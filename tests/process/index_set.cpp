// Index sets: printing, set operations, subset enumeration (counts, orders) and errors.
#include <suptok/process.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <set>
#include <sstream>

using namespace suptok;

TEST_CASE("index_set prints, iterates and combines", "[process][index_set]") {
  const index_set s{4, 1, 3};
  CHECK(s.to_string() == "{1,3,4}");
  CHECK(index_set{}.to_string() == "{}");
  CHECK(s.bits() == 0b1101u);
  CHECK(s.size() == 3);
  CHECK(s.max() == 4);
  CHECK(index_set{}.max() == 0);
  CHECK(s.contains(3));
  CHECK_FALSE(s.contains(2));
  CHECK_FALSE(s.contains(0));
  CHECK_FALSE(s.contains(65));
  std::ostringstream os;
  for (int i : s) os << i << ' ';
  CHECK(os.str() == "1 3 4 ");

  const index_set t{3, 5};
  CHECK((s | t).to_string() == "{1,3,4,5}");
  CHECK((s & t).to_string() == "{3}");
  CHECK((s - t).to_string() == "{1,4}");
  CHECK((s ^ t).to_string() == "{1,4,5}");
  CHECK(index_set{1, 4}.subset_of(s));
  CHECK_FALSE(t.subset_of(s));
  CHECK(index_set::first(3) == index_set{1, 2, 3});
  CHECK(index_set::first(0).empty());
  const index_set all = index_set::first(64);
  CHECK(all.bits() == ~std::uint64_t{0});
  CHECK(all.size() == 64);
  CHECK(all.max() == 64);
  CHECK(index_set{64}.to_string() == "{64}");
}

TEST_CASE("subset enumeration: 2^n subsets, 3^n pairs, both orders", "[process][index_set]") {
  for (int n = 0; n <= 10; ++n) {
    const index_set all = index_set::first(n);
    std::uint64_t count_up = 0, count_down = 0, pairs = 0;
    std::set<std::uint64_t> seen;
    std::uint64_t previous = 0;
    for (index_set s : subsets(all, subset_order::increasing)) {
      CHECK(s.subset_of(all));
      if (count_up > 0) CHECK(s.bits() > previous);  // strictly increasing
      previous = s.bits();
      seen.insert(s.bits());
      ++count_up;
      for (index_set s_prime : subsets(s)) {
        CHECK(s_prime.subset_of(s));
        ++pairs;
      }
    }
    for (index_set s : subsets(all, subset_order::decreasing)) {
      if (count_down > 0) CHECK(s.bits() < previous);  // strictly decreasing
      previous = s.bits();
      CHECK(seen.count(s.bits()) == 1);
      ++count_down;
    }
    std::uint64_t three_n = 1;
    for (int i = 0; i < n; ++i) three_n *= 3;
    CHECK(count_up == (std::uint64_t{1} << n));
    CHECK(count_down == (std::uint64_t{1} << n));
    CHECK(seen.size() == (std::uint64_t{1} << n));
    CHECK(pairs == three_n);
  }
}

TEST_CASE("subsets of sparse and full 64-bit sets", "[process][index_set]") {
  const index_set s{2, 7, 64};
  std::ostringstream up, down;
  for (index_set t : subsets(s)) up << t;
  for (index_set t : subsets(s, subset_order::decreasing)) down << t;
  CHECK(up.str() == "{}{2}{7}{2,7}{64}{2,64}{7,64}{2,7,64}");
  CHECK(down.str() == "{2,7,64}{7,64}{2,64}{64}{2,7}{7}{2}{}");

  // The first and last subsets of {1..64} in each order (2^64 of them: only the ends are walked).
  auto up_it = subsets(index_set::first(64)).begin();
  CHECK((*up_it).empty());
  ++up_it;
  CHECK(*up_it == index_set{1});
  ++up_it;
  CHECK(*up_it == index_set{2});
  auto down_it = subsets(index_set::first(64), subset_order::decreasing).begin();
  CHECK(*down_it == index_set::first(64));
  ++down_it;
  CHECK(*down_it == index_set::first(64) - index_set{1});
}

TEST_CASE("index_set rejects positions outside 1..64", "[process][index_set][validation]") {
  auto argument_of = [](auto&& f) {
    try {
      f();
    } catch (const suptok::error& e) {
      return e.argument();
    }
    return std::string("no error");
  };
  CHECK(argument_of([] { return index_set{0}; }) == "positions");
  CHECK(argument_of([] { return index_set{1, 65}; }) == "positions");
  CHECK(argument_of([] { return index_set::first(65); }) == "n");
  CHECK(argument_of([] { return index_set::first(-1); }) == "n");
  CHECK(argument_of([] { return index_set::single(0); }) == "i");
}
