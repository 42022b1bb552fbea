// Validation: every invalid argument of the public attention functions throws suptok::error whose
// argument() names it, before any output is touched, and the caller's inputs are unchanged.
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

// Entry-wise identity, NaN matching NaN (the invalid inputs below contain NaN).
template <class S>
bool identical(const matrix<S>& a, const matrix<S>& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return false;
  for (suptok::index i = 0; i < a.rows(); ++i)
    for (suptok::index j = 0; j < a.cols(); ++j)
      if (!(a(i, j) == b(i, j) || (a(i, j) != a(i, j) && b(i, j) != b(i, j)))) return false;
  return true;
}

template <class S>
bool same(const heads<S>& a, const heads<S>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t h = 0; h < a.size(); ++h)
    if (!(identical(a[h].W_Q, b[h].W_Q) && identical(a[h].W_K, b[h].W_K) && identical(a[h].W_V, b[h].W_V) &&
          identical(a[h].W_O, b[h].W_O)))
      return false;
  return true;
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
    const matrix<S> U_copy = U2;
    const heads<S> hs_copy = hs2;
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
    CHECK(identical(U2, U_copy));
    CHECK(same(hs2, hs_copy));
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
