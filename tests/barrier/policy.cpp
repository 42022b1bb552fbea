// Tier 1/2: the extension policies f(z) and f'(z), at and around their thresholds (C^1 continuity
// of the extended barrier), their evaluation from the signed log-determinant, the cofactor
// matrix (singular blocks included) and parameter validation.
#include "barrier_checks.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using namespace suptok;

namespace {

const barrier_params exact{extension::exact, 1e-8, 1e-2};
const barrier_params clamp{extension::clamp, 0.25, 1e-2};
const barrier_params extended{extension::extended, 1e-8, 0.25};

}  // namespace

TEST_CASE("policy values (hand-computed)", "[barrier][policy]") {
  using std::log;
  // -log z on the feasible branch, identical for all three policies above their thresholds.
  // Hand-computed values: bound 2 eps, measured 0 (the same libm log on both sides).
  for (const barrier_params& bp : {exact, clamp, extended}) CHECK(test::within_eps(barrier_value(2.0, bp), -std::log(2.0), 2));
  CHECK(std::isinf(barrier_value(0.0, exact)));
  CHECK(std::isinf(barrier_value(-1.0, exact)));
  CHECK(test::within_eps(barrier_value(0.1, clamp), -std::log(0.25), 2));   // -log max(z, eps)
  CHECK(test::within_eps(barrier_value(-3.0, clamp), -std::log(0.25), 2));
  // extended below z0: -log z0 - (z - z0) / z0
  CHECK(test::within_eps(barrier_value(0.1, extended), -std::log(0.25) - (0.1 - 0.25) / 0.25, 2));
  CHECK(test::within_eps(barrier_value(-2.0, extended), -std::log(0.25) + 9.0, 2));
  CHECK(test::within_eps(barrier_value(0.0, extended), -std::log(0.25) + 1.0, 2));
  // slopes
  CHECK(barrier_slope(2.0, exact) == -0.5);
  CHECK(barrier_slope(0.1, clamp) == 0.0);
  CHECK(barrier_slope(0.5, clamp) == -2.0);
  CHECK(barrier_slope(-7.0, extended) == -4.0);
  CHECK_THROWS_AS(barrier_slope(0.0, exact), error);
}

TEST_CASE("extended barrier is C^1 at z0, clamp is C^0 at eps (float50)", "[barrier][policy]") {
  const float50 z0 = float50(0.25), d = float50(1e-30);
  // value and slope from both sides of z0: jumps 2d / z0 = 8e-30 and 2d / z0^2 = 3.2e-29 at most
  // (measured 8e-30 and 1.6e-29)
  CHECK(to_double(abs(barrier_value(z0 + d, extended) - barrier_value(z0 - d, extended))) < 1e-29);
  CHECK(to_double(abs(barrier_slope(z0 + d, extended) - barrier_slope(z0 - d, extended))) < 4e-29);
  CHECK(to_double(abs(barrier_value(z0, extended) + log(z0))) < 1e-48);  // a few eps of float50 (measured 0)
  // clamp: continuous value (jump d / z0 = 4e-30, measured 4e-30), slope jumps from -1/eps to 0
  CHECK(to_double(abs(barrier_value(z0 + d, clamp) - barrier_value(z0 - d, clamp))) < 1e-29);
  CHECK(test::within_eps(barrier_slope(z0 + d, clamp), float50(-1) / (z0 + d), 2));  // bound 2 eps, measured 0
  CHECK(to_double(barrier_slope(z0 - d, clamp)) == 0.0);
  // slopes agree with central differences of the values away from the thresholds
  // (h = 1e-15: error ~h^2 |f'''| / 6 = 1e-30 x O(10^3) at z = 0.05; bound 1e-26, measured 2.7e-27)
  for (const barrier_params& bp : {exact, clamp, extended})
    for (double zd : {-1.5, 0.05, 0.2, 0.3, 1.0, 3.0}) {
      if (bp.policy == extension::exact && zd <= 0) continue;
      float50 z = float50(zd);
      const float50 fd = test::central_difference(z, float50(1e-15), [&] { return barrier_value(z, bp); });
      INFO(to_string(bp.policy) << " at z = " << zd);
      CHECK(to_double(abs(fd - barrier_slope(z, bp))) < 1e-26);
    }
}

TEST_CASE("barrier from the signed log-determinant: no exp/log round trip", "[barrier][policy]") {
  // det = e^-1000 and e^+1000 under/overflow a double; -log|det| is still exact on the log branch.
  // Hand-computed values: bound 2 eps, measured 0; the LU block below: bound 4 eps, measured 0.74.
  const signed_log_det<double> tiny{1, -1000.0}, huge{1, 1000.0}, negative{-1, 2.0}, singular{0, -HUGE_VAL};
  CHECK(barrier_from_log_det(tiny, exact) == 1000.0);
  CHECK(barrier_from_log_det(huge, exact) == -1000.0);
  CHECK(barrier_from_log_det(huge, extended) == -1000.0);
  CHECK(test::within_eps(barrier_from_log_det(tiny, clamp), -std::log(0.25), 2));
  CHECK(test::within_eps(barrier_from_log_det(tiny, extended), -std::log(0.25) + 1.0, 2));  // z ~ 0
  CHECK(test::within_eps(barrier_from_log_det(negative, extended), -std::log(0.25) + 1.0 + std::exp(2.0) / 0.25, 2));
  CHECK(std::isinf(barrier_from_log_det(singular, exact)));
  CHECK(test::within_eps(barrier_from_log_det(singular, extended), -std::log(0.25) + 1.0, 2));
  // barrier_block goes through the pivoted LU: a triangular block with det = 1e-300 * 1e-300
  matrix<double> J = matrix<double>::Identity(2, 2);
  J(0, 0) = 1e-300;
  J(1, 1) = 1e-300;
  J(0, 1) = 5;
  CHECK(test::within_eps(barrier_block<double>(J, exact), 600 * std::log(10.0), 4));
}

TEST_CASE("cofactor matrix, singular blocks included", "[barrier][cofactor]") {
  // cof(J)_ij = (-1)^(i+j) minor_ij, written out for p = 3 (exact arithmetic on the minors).
  const auto by_minors = [](const matrix<float50>& J) {
    matrix<float50> C(3, 3);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        const int r0 = i == 0 ? 1 : 0, r1 = i == 2 ? 1 : 2, c0 = j == 0 ? 1 : 0, c1 = j == 2 ? 1 : 2;
        C(i, j) = ((i + j) % 2 ? -1 : 1) * (J(r0, c0) * J(r1, c1) - J(r0, c1) * J(r1, c0));
      }
    return C;
  };
  const matrix<float50> full = test::random_matrix<float50>(3, 3, 11);
  matrix<float50> rank2 = full;
  rank2.row(2) = float50(2) * full.row(0) - full.row(1);   // det = 0, cof = rank 1, nonzero
  const matrix<float50> rank1 = full.col(0) * full.row(1);  // cof = 0
  for (const matrix<float50>* J : std::initializer_list<const matrix<float50>*>{&full, &rank2, &rank1}) {
    const matrix<float50> ref = by_minors(*J);
    const matrix<float50> cof = cofactor<float50>(*J);
    // SVD in 50 digits: a few eps of float50 on O(1) entries (bound 1e-48, measured 9.6e-50)
    CHECK(to_double((cof - ref).cwiseAbs().maxCoeff()) < 1e-48);
  }
  CHECK(by_minors(rank2).norm() > 0.1);
  // and cof = det(J) J^{-T} for a regular block (double)
  const matrix<double> D = test::random_matrix<double>(3, 3, 12);
  const matrix<double> expected = D.determinant() * D.inverse().transpose();
  // kappa(D) eps on both sides: bound 8 eps, measured 2.1
  CHECK(test::max_rel_error(cofactor<double>(D), expected) <= 8 * test::epsilon_of<double>());
}

TEST_CASE("barrier parameter validation names the parameter", "[barrier][validation]") {
  const auto argument_of = [](const barrier_params& bp) {
    try {
      barrier_value(1.0, bp);
    } catch (const error& e) {
      return e.argument();
    }
    return std::string("no error");
  };
  CHECK(argument_of({extension::extended, 1e-8, 0.0}) == "barrier.z0");
  CHECK(argument_of({extension::extended, 1e-8, -1.0}) == "barrier.z0");
  CHECK(argument_of({extension::extended, 1e-8, NAN}) == "barrier.z0");
  CHECK(argument_of({extension::clamp, 0.0, 1e-2}) == "barrier.eps");
  CHECK(argument_of({extension::clamp, INFINITY, 1e-2}) == "barrier.eps");
  CHECK(argument_of({static_cast<extension>(7), 1e-8, 1e-2}) == "barrier.policy");
  CHECK(argument_of({extension::clamp, 1e-8, 1e-2}) == "no error");
  CHECK_THROWS_AS(barrier_value(NAN, extended), error);
  const auto z_error = [](auto&& f) {
    try {
      f();
    } catch (const error& e) {
      return e.argument();
    }
    return std::string("no error");
  };
  CHECK(z_error([] { barrier_value(NAN, extended); }) == "z");
  CHECK(z_error([] { barrier_slope(INFINITY, extended); }) == "z");
  CHECK(z_error([] { barrier_slope(0.0, exact); }) == "z");  // no derivative at det <= 0
  matrix<double> nonsquare(2, 3);
  nonsquare.setOnes();
  CHECK_THROWS_AS(barrier_block<double>(nonsquare, extended), error);
  CHECK_THROWS_AS(cofactor<double>(nonsquare), error);
  const matrix<double> U = test::random_matrix<double>(4, 2, 1);
  const heads<double> hs = test::random_heads<double>(1, 2, 2, 2, 3);
  try {
    barrier_penalty<double>(U, hs, {extension::extended, 1e-8, -0.5});
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.argument() == "barrier.z0");
  }
}

TEST_CASE("barrier from an invalid signed log-determinant is rejected", "[barrier][validation]") {
  CHECK_THROWS_AS(barrier_from_log_det(signed_log_det<double>{2, 0.0}, extended), error);
  CHECK_THROWS_AS(barrier_from_log_det(signed_log_det<double>{1, std::nan("")}, extended), error);
  try {
    barrier_from_log_det(signed_log_det<double>{-2, 1.0}, extended);
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.argument() == "ld");
  }
  CHECK(std::isinf(barrier_from_log_det(signed_log_det<double>{0, -HUGE_VAL}, exact)));  // singular is valid
}
