// Validation: every invalid argument of the public attention functions throws suptok::error whose
// argument() names it, before any output is touched. (Inputs are const references, which the
// compiler already keeps unchanged: no test for that.)
#include "attention_checks.hpp"

#include <catch2/catch.hpp>

#include <limits>
#include <string>

using namespace suptok;

namespace {

// The argument named by the suptok::error that f throws, or "<no error>".
template <class F>
std::string thrown_argument(F&& f) {
  try {
    f();
  } catch (const suptok::error& e) {
    // The message starts with the same name: "suptok: <argument>: ...".
    CHECK(std::string(e.what()).rfind("suptok: " + e.argument() + ": ", 0) == 0);
    return e.argument();
  }
  return "<no error>";
}

}  // namespace

TEMPLATE_TEST_CASE("attention functions reject invalid arguments", "[attention][validation]", SUPTOK_REAL_SCALARS) {
  using S = TestType;
  const S nan = std::numeric_limits<S>::quiet_NaN();
  const S inf = std::numeric_limits<S>::infinity();
  const matrix<S> U = test::random_matrix<S>(4, 3, 301);
  const matrix<S> dMu = test::random_matrix<S>(4, 3, 302);
  const heads<S> hs = test::mixed_heads<S>(3, 303);
  const attention_params ok{mask::strict, 0.0};

  // The valid call goes through (so each failure below is caused by the one change it makes).
  CHECK(thrown_argument([&] { attention_forward<S>(U, hs, ok); }) == "<no error>");
  CHECK(thrown_argument([&] { attention_backward<S>(dMu, U, hs, ok); }) == "<no error>");

  // Each case: a modified copy of (U, heads, params) and the argument name it must produce, checked
  // through the forward, the backward and the tagged forward (whose output must stay untouched).
  auto expect = [&](const matrix<S>& U2, const heads<S>& hs2, const attention_params& p2, const std::string& arg) {
    INFO("expected argument " << arg);
    CHECK(thrown_argument([&] { attention_forward<S>(U2, hs2, p2, true); }) == arg);
    const matrix<S> dMu2 = matrix<S>::Ones(U2.rows(), U2.cols());
    CHECK(thrown_argument([&] { attention_backward<S>(dMu2, U2, hs2, p2); }) == arg);
    attention_output<S> out;
    out.mu = matrix<S>::Constant(2, 2, S(7));
    CHECK(thrown_argument([&] { attention_forward<S>(cpu{}, out, U2, hs2, p2); }) == arg);
    CHECK(out.mu == matrix<S>::Constant(2, 2, S(7)));
    CHECK(out.lse.empty());
    attention_gradients<S> grads;
    grads.dU = matrix<S>::Constant(2, 2, S(7));
    CHECK(thrown_argument([&] { attention_backward<S>(cpu{}, grads, dMu2, U2, hs2, p2); }) == arg);
    CHECK(grads.dU == matrix<S>::Constant(2, 2, S(7)));
    CHECK(grads.dW.empty());
  };

  SECTION("U") {
    expect(matrix<S>(0, 3), hs, ok, "U");  // N = 0
    expect(matrix<S>(4, 0), hs, ok, "U");  // p = 0
    matrix<S> bad = U;
    bad(2, 1) = nan;
    expect(bad, hs, ok, "U");
    bad(2, 1) = -inf;
    expect(bad, hs, ok, "U");
  }
  SECTION("head shapes") {
    heads<S> h2 = hs;
    h2[0].W_Q = test::random_matrix<S>(2, 4, 1);  // p mismatch
    expect(U, h2, ok, "heads[0].W_Q");
    h2 = hs;
    h2[1].W_K = test::random_matrix<S>(2, 3, 1);  // d_k = 2, W_Q has 3 rows
    expect(U, h2, ok, "heads[1].W_K");
    h2 = hs;
    h2[1].W_V = test::random_matrix<S>(1, 2, 1);  // p mismatch
    expect(U, h2, ok, "heads[1].W_V");
    h2 = hs;
    h2[0].W_O = test::random_matrix<S>(3, 2, 1);  // d_v = 3 expected
    expect(U, h2, ok, "heads[0].W_O");
    h2 = hs;
    h2[0].W_O = test::random_matrix<S>(2, 3, 1);  // transposed
    expect(U, h2, ok, "heads[0].W_O");
    h2 = hs;
    h2[0].W_Q = matrix<S>(0, 3);  // d_k = 0
    h2[0].W_K = matrix<S>(0, 3);
    expect(U, h2, ok, "heads[0].W_Q");
    h2 = hs;
    h2[1].W_V = matrix<S>(0, 3);  // d_v = 0
    h2[1].W_O = matrix<S>(3, 0);
    expect(U, h2, ok, "heads[1].W_V");
    expect(U, heads<S>{}, ok, "heads");  // no heads
  }
  SECTION("head values") {
    heads<S> h2 = hs;
    h2[1].W_O(0, 0) = nan;
    expect(U, h2, ok, "heads[1].W_O");
    h2 = hs;
    h2[0].W_K(1, 2) = inf;
    expect(U, h2, ok, "heads[0].W_K");
  }
  SECTION("params") {
    expect(U, hs, {mask::strict, -1.0}, "params.temperature");
    expect(U, hs, {mask::inclusive, std::numeric_limits<double>::quiet_NaN()}, "params.temperature");
    expect(U, hs, {mask::strict, std::numeric_limits<double>::infinity()}, "params.temperature");
    expect(U, hs, {static_cast<mask>(7), 0.0}, "params.causal_mask");
  }
  SECTION("dMu") {
    CHECK(thrown_argument([&] { attention_backward<S>(matrix<S>(3, 3), U, hs, ok); }) == "dMu");
    CHECK(thrown_argument([&] { attention_backward<S>(matrix<S>::Zero(4, 2), U, hs, ok); }) == "dMu");
    matrix<S> bad = dMu;
    bad(3, 0) = nan;
    CHECK(thrown_argument([&] { attention_backward<S>(bad, U, hs, ok); }) == "dMu");
    bad(3, 0) = inf;
    CHECK(thrown_argument([&] { attention_backward<S>(bad, U, hs, ok); }) == "dMu");
  }
  SECTION("batch") {
    const std::vector<matrix<S>> none;
    CHECK(thrown_argument([&] { attention_forward_batch<S>(none, hs, ok); }) == "Us");
    CHECK(thrown_argument([&] { attention_backward_batch<S>(none, none, hs, ok); }) == "Us");
    const std::vector<matrix<S>> mixed_p{U, test::random_matrix<S>(2, 4, 5)};
    CHECK(thrown_argument([&] { attention_forward_batch<S>(mixed_p, hs, ok); }) == "Us[1]");
    const std::vector<matrix<S>> first_p0{matrix<S>(4, 0), U};  // named as Us[0], not as a head mismatch
    CHECK(thrown_argument([&] { attention_forward_batch<S>(first_p0, hs, ok); }) == "Us[0]");
    const std::vector<matrix<S>> with_empty{U, matrix<S>(0, 3)};
    CHECK(thrown_argument([&] { attention_forward_batch<S>(with_empty, hs, ok); }) == "Us[1]");
    matrix<S> bad = U;
    bad(0, 0) = nan;
    const std::vector<matrix<S>> with_nan{U, U, bad};
    CHECK(thrown_argument([&] { attention_forward_batch<S>(with_nan, hs, ok); }) == "Us[2]");
    const std::vector<matrix<S>> Us{U, test::random_matrix<S>(2, 3, 6)};
    const std::vector<matrix<S>> dMus{dMu, matrix<S>::Ones(2, 3)};
    CHECK(thrown_argument([&] { attention_backward_batch<S>(dMus, Us, hs, ok); }) == "<no error>");
    CHECK(thrown_argument([&] { attention_forward_batch<S>(Us, hs, {mask::strict, -2.0}); }) ==
          "params.temperature");
    CHECK(thrown_argument([&] { attention_forward_batch<S>(Us, heads<S>{}, ok); }) == "heads");
    const std::vector<matrix<S>> one_dMu{dMu};
    CHECK(thrown_argument([&] { attention_backward_batch<S>(one_dMu, Us, hs, ok); }) == "dMus");
    const std::vector<matrix<S>> wrong_dMu{dMu, matrix<S>::Ones(3, 3)};
    CHECK(thrown_argument([&] { attention_backward_batch<S>(wrong_dMu, Us, hs, ok); }) == "dMus[1]");
    const std::vector<matrix<S>> nan_dMu{bad, matrix<S>::Ones(2, 3)};
    CHECK(thrown_argument([&] { attention_backward_batch<S>(nan_dMu, Us, hs, ok); }) == "dMus[0]");
  }
}

// The non-owning view of core/view.hpp on the host: view_of of a row-major matrix and of a
// column vector, reads and writes through the view, row pointers, a strided sub-view, and the
// const view's element type.
TEST_CASE("matrix_view and view_of on the host", "[core][view]") {
  matrix<double> m(3, 4);
  for (suptok::index i = 0; i < 3; ++i)
    for (suptok::index j = 0; j < 4; ++j) m(i, j) = double(10 * i + j);
  const matrix_view<double> v = view_of(m);
  CHECK(v.data == m.data());
  CHECK(v.rows == 3);
  CHECK(v.cols == 4);
  CHECK(v.row_stride == 4);
  for (suptok::index i = 0; i < 3; ++i) {
    CHECK(v.row(i) == m.data() + 4 * i);
    for (suptok::index j = 0; j < 4; ++j) CHECK(v(i, j) == m(i, j));
  }
  v(2, 1) = -5;  // writes reach the matrix
  CHECK(m(2, 1) == -5);
  // A sub-view of columns 1..2 keeps the parent's row stride.
  const matrix_view<double> sub{m.data() + 1, 3, 2, v.row_stride};
  for (suptok::index i = 0; i < 3; ++i)
    for (suptok::index j = 0; j < 2; ++j) CHECK(sub(i, j) == m(i, j + 1));
  // const matrices give views of const elements.
  const matrix<float> c = matrix<float>::Constant(2, 5, 1.5f);
  const auto cv = view_of(c);
  STATIC_REQUIRE(std::is_same_v<std::remove_const_t<decltype(cv)>, matrix_view<const float>>);
  CHECK(cv.data == c.data());
  CHECK(cv.rows == 2);
  CHECK(cv.cols == 5);
  CHECK(cv.row_stride == 5);
  CHECK(cv(1, 4) == 1.5f);
  // A column vector: N rows of one entry, stride 1.
  vector<double> x(4);
  x << 1, 2, 3, 4;
  const auto xv = view_of(x);
  CHECK(xv.rows == 4);
  CHECK(xv.cols == 1);
  CHECK(xv.row_stride == 1);
  CHECK(xv(3, 0) == 4);
  // The default view is empty.
  const matrix_view<int> empty;
  CHECK(empty.data == nullptr);
  CHECK(empty.rows == 0);
  CHECK(empty.cols == 0);
}
