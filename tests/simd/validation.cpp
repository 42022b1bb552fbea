// The simd overloads reject exactly what the reference rejects, naming the same argument.
#include "simd_checks.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <limits>
#include <string>

namespace suptok {  // inside the namespace: `index` would clash with ::index of <strings.h>

namespace {

// The argument named by the suptok::error that f throws ("" when it does not throw).
std::string rejected_argument(const std::function<void()>& f) {
  try {
    f();
  } catch (const suptok::error& e) {
    return e.argument();
  }
  return "";
}

}  // namespace

TEST_CASE("simd attention validates its arguments as the reference", "[simd][validation]") {
  using S = float;
  const index N = 5, p = 3;
  const matrix<S> U = test::random_matrix<S>(N, p, 1);
  const matrix<S> dMu = test::random_matrix<S>(N, p, 2);
  const heads<S> hs = test::random_heads<S>(2, p, 2, 4, 3);
  const attention_params ok{};

  matrix<S> U_nan = U;
  U_nan(2, 1) = std::numeric_limits<S>::quiet_NaN();
  heads<S> bad_wk = hs;
  bad_wk[1].W_K.resize(2, p + 1);
  heads<S> bad_wo = hs;
  bad_wo[0].W_O.resize(p, 3);
  const matrix<S> dMu_short = test::random_matrix<S>(N - 1, p, 4);

  struct bad_case {
    const char* argument;
    matrix<S> U, dMu;
    heads<S> hs;
    attention_params params;
  };
  const std::vector<bad_case> cases = {
      {"U", matrix<S>(0, p), matrix<S>(0, p), hs, ok},
      {"U", U_nan, dMu, hs, ok},
      {"heads", U, dMu, heads<S>{}, ok},
      {"heads[1].W_K", U, dMu, bad_wk, ok},
      {"heads[0].W_O", U, dMu, bad_wo, ok},
      {"params.temperature", U, dMu, hs, attention_params{mask::strict, -1.0}},
      {"dMu", U, dMu_short, hs, ok},
  };
  for (const bad_case& c : cases) {
    INFO("expected argument " << c.argument);
    const bool forward_case = std::string(c.argument) != "dMu";
    if (forward_case) {
      attention_output<S> out;
      CHECK(rejected_argument([&] { attention_forward(simd{}, out, c.U, c.hs, c.params); }) == c.argument);
      CHECK(rejected_argument([&] { attention_forward<S>(c.U, c.hs, c.params); }) == c.argument);
    }
    attention_gradients<S> grads;
    CHECK(rejected_argument([&] { attention_backward(simd{}, grads, c.dMu, c.U, c.hs, c.params); }) == c.argument);
    CHECK(rejected_argument([&] { attention_backward<S>(c.dMu, c.U, c.hs, c.params); }) == c.argument);
  }
}

TEST_CASE("simd batch attention validates its arguments as the reference", "[simd][validation]") {
  using S = double;
  const index p = 3;
  const heads<S> hs = test::random_heads<S>(1, p, 2, 2, 3);
  const std::vector<matrix<S>> Us = {test::random_matrix<S>(4, p, 1), test::random_matrix<S>(6, p + 1, 2)};
  const std::vector<matrix<S>> good = {test::random_matrix<S>(4, p, 1), test::random_matrix<S>(6, p, 2)};
  const std::vector<matrix<S>> one = {test::random_matrix<S>(4, p, 1)};
  std::vector<attention_output<S>> outs;
  attention_batch_gradients<S> grads;
  CHECK(rejected_argument([&] { attention_forward_batch(simd{}, outs, std::vector<matrix<S>>{}, hs); }) == "Us");
  CHECK(rejected_argument([&] { attention_forward_batch(simd{}, outs, Us, hs); }) == "Us[1]");
  CHECK(rejected_argument([&] { attention_forward_batch<S>(Us, hs); }) == "Us[1]");
  CHECK(rejected_argument([&] { attention_backward_batch(simd{}, grads, one, good, hs); }) == "dMus");
  CHECK(rejected_argument([&] { attention_backward_batch<S>(one, good, hs); }) == "dMus");
  CHECK(rejected_argument([&] { attention_backward_batch(simd{}, grads, good, good, hs); }).empty());
}

}  // namespace suptok
