#include "test_support.hpp"
#include <catch2/catch.hpp>
TEMPLATE_TEST_CASE("smoke", "[attention]", SUPTOK_REAL_SCALARS) {
  using namespace suptok;
  auto hs = test::random_heads<TestType>(2, 4, 3, 2, 1);
  auto U = test::random_matrix<TestType>(5, 4, 9);
  auto out = attention_forward(U, hs);
  CHECK(to_double(out.mu.row(0).norm()) == 0.0);
}
