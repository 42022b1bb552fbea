// simd barrier gradients against the reference (barrier_penalty_backward of barrier/penalty.hpp):
// dU and every dW over a shape sweep, both masks, H in {1, 3}, float and double and the double
// reference for float; every extension policy, including tokens in the continuation region;
// the exact policy's error; the batch backward; which problems go to the kernels; the per-token
// inverse transpose (simd/block_inverse.hpp) against Eigen's inverse in long double.
#include "barrier_checks.hpp"

#include <suptok/simd/block_inverse.hpp>

#include <catch2/catch.hpp>

#include <Eigen/LU>
#include <Eigen/SVD>

#include <cstdio>

namespace suptok {  // inside the namespace: `index` would clash with ::index of <strings.h>

namespace {

// Counts of the counted tokens of the reference's J_t on the -log z branch and below it, and the
// smallest |z - threshold| / threshold (how far the branch decision is from a rounding flip).
struct branch_census {
  index log_branch = 0, continuation = 0;
  double margin = HUGE_VAL;
};

template <class S>
branch_census census(const test::barrier_problem<S>& pb, const barrier_params& bp, const attention_params& ap) {
  const std::vector<matrix<double>> J =
      jacobian_blocks<double>(test::cast<double>(pb.U), test::cast<double>(pb.hs), ap);
  const double thr = detail::barrier_threshold(bp);
  branch_census c;
  for (std::size_t t = std::size_t(first_nontrivial(ap.causal_mask)); t < J.size(); ++t) {
    const signed_log_det<double> ld = log_det<double>(J[t]);
    (detail::on_log_branch(ld, bp) ? c.log_branch : c.continuation) += 1;
    if (thr > 0) c.margin = std::min(c.margin, std::abs(ld.value() - thr) / thr);
  }
  return c;
}

// The penalty and every gradient (one sequence's or a batch's) equal bit for bit.
template <class S, class G>
void check_bitwise_equal(const barrier_gradients<S, G>& got, const barrier_gradients<S, G>& expected) {
  CHECK(got.penalty == expected.penalty);
  CHECK(got.grad.dU == expected.grad.dU);
  REQUIRE(got.grad.dW.size() == expected.grad.dW.size());
  for (std::size_t h = 0; h < got.grad.dW.size(); ++h) {
    CHECK(got.grad.dW[h].W_Q == expected.grad.dW[h].W_Q);
    CHECK(got.grad.dW[h].W_K == expected.grad.dW[h].W_K);
    CHECK(got.grad.dW[h].W_V == expected.grad.dW[h].W_V);
    CHECK(got.grad.dW[h].W_O == expected.grad.dW[h].W_O);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("simd block inverse transpose against Eigen's PartialPivLU in long double", "[simd][lu]", float,
                   double) {
  using S = TestType;
  const double eps = test::epsilon_of<S>();
  detail::simd_kernels::block_inverse_scratch<S> scratch;  // one scratch through every shape
  // Sizes around the vector width (8 / 16 floats, 4 / 8 doubles) and the eight-vector row chunks;
  // the graded matrices (columns scaled by 10^(-6 j / n)) have entries over six decades, and each
  // column of their inverse transpose must be accurate relative to its own size.
  for (const bool graded : {false, true})
    for (const index n : {1, 2, 7, 8, 9, 17, 33, 64, 65, 100, 161}) {
      DYNAMIC_SECTION((graded ? "graded, " : "") << "n = " << n) {
        matrix<S> A = test::random_matrix<S>(n, n, 1500 + std::uint64_t(n) + (graded ? 7 : 0));
        if (graded)
          for (index j = 0; j < n; ++j) A.col(j) *= S(std::pow(10.0, -6.0 * double(j) / double(n)));
        const index ld = detail::simd_kernels::round_up(n, detail::simd_kernels::lanes<S>);
        const S s = S(-0.375);
        matrix<S> out = A;  // in place, as the backward calls it
        const signed_log_det<S> ld_A =
            detail::simd_kernels::lu_inverse_transpose<S>(out.data(), n, out.data(), n, n, ld, s, scratch);
        const matrix<long double> A_hi = test::cast<long double>(A);
        const Eigen::PartialPivLU<matrix<long double>> lu(A_hi);
        const matrix<long double> ref = (-0.375L) * lu.inverse().transpose();
        const signed_log_det<long double> ld_ref = log_det<long double>(lu);
        REQUIRE(ld_A.sign == ld_ref.sign);
        const double log_det_error =
            std::abs(double(ld_A.log_abs - ld_ref.log_abs)) / (eps * (std::abs(double(ld_ref.log_abs)) + n));
        // Column j of A^{-T} is row j of A^{-1}: it scales as 1 / |a_j|, and pivoting does not see the
        // column scales, so each column's error relative to its own size is bounded by k eps cond(A D)
        // with D equilibrating the columns of A (backward stable substitutions).
        matrix<long double> equilibrated = A_hi;
        for (index j = 0; j < n; ++j) equilibrated.col(j) /= A_hi.col(j).norm();
        const Eigen::JacobiSVD<matrix<long double>> svd(equilibrated);
        const double cond = double(svd.singularValues()(0) / svd.singularValues()(n - 1));
        const auto column_error = [&](const matrix<S>& got) {
          const matrix<long double> diff = test::cast<long double>(got) - ref;
          double worst = 0;
          for (index j = 0; j < n; ++j)
            worst = std::max(worst, double(diff.col(j).cwiseAbs().maxCoeff() / ref.col(j).cwiseAbs().maxCoeff()));
          return worst / (eps * cond);
        };
        const double err = column_error(out);
        // the backward's dispatch: this kernel up to register_inverse_max, recursive_lu's inverse above
        matrix<S> dispatched = A;
        REQUIRE(detail::scale_inverse_transpose<S>(dispatched.data(), n, s, scratch));
        const double err_dispatched = column_error(dispatched);
        INFO("cond " << cond << ", log det error " << log_det_error << " eps, inverse error " << err
                     << " eps cond, dispatched " << err_dispatched);
        // measured up to 4.4 eps (log det) and 0.58 eps cond (inverse), float and double, AVX-512
        CHECK(log_det_error <= 8);
        CHECK(err <= 2);
        CHECK(err_dispatched <= 2);
      }
    }
  SECTION("a zero pivot: sign 0 and the output untouched") {
    matrix<S> Z = test::random_matrix<S>(20, 20, 1601);
    Z.col(13).setZero();
    matrix<S> out = matrix<S>::Constant(20, 20, S(7));
    const index ld = detail::simd_kernels::round_up(20, detail::simd_kernels::lanes<S>);
    const signed_log_det<S> ld_Z =
        detail::simd_kernels::lu_inverse_transpose<S>(out.data(), 20, Z.data(), 20, 20, ld, S(1), scratch);
    CHECK(ld_Z.sign == 0);
    CHECK((out.array() == S(7)).all());
  }
}

// Tolerances in eps of S (err_eps_gradients: atol k eps times the largest entry of the whole
// gradient). The gradients are sums over up to N^2 / 2 products through J_t^{-T}, the moments and
// the softmax, summed in other orders by the two paths: measured worst cases 3.9 eps (float),
// 5.6 eps (double), penalty 0.9 eps (docs/simd.md); k = 16 leaves a margin of about 3 (this check
// caught 12 eps when the one-head form summed G = sum_t C_t dJ'_t one multiply-add at a time into
// G instead of one finished product per token). Against the double
// reference the float simd path is held to the rule of the shape sweeps: within twice the float
// reference's own error (measured 8.3 eps, both) or k; the float reference itself: k = 32.
// Penalty: measured 0.9 / 0.35 eps (float / double), k = 4.
TEMPLATE_TEST_CASE("simd barrier gradients match the reference over a shape sweep", "[simd][barrier][backward]", float,
                   double) {
  using S = TestType;
  const test::omp_threads one(1);
  test::barrier_errors e;
  std::uint64_t seed = 8000;
  const barrier_params bp{extension::extended, 1e-8, 1e-2};
  for (mask m : test::sweep_masks)
    for (index H : test::sweep_H)
      for (index p : test::sweep_p)
        for (index N : {1, 2, 3, 9, 17, 64, 65, 129})
          if (p < 64 || N >= 3) {  // p = 64 at N in {3, 9, 17, 64, 65, 129}: the reference is O(N^2 p^2) per head
            seed += 10;
            if (test::barrier_sweep_checks(N, p, H))
              test::compare_barrier_gradients<S>(e, test::make_barrier_problem<S>(N, p, H, test::barrier_head_scale(p), seed),
                                                 bp, {m, 0});
          }
  std::printf("simd barrier gradients <%s>: penalty %.2f, dU and dW %.2f eps; vs double: simd %.2f, "
              "reference %.2f eps\n",
              sizeof(S) == 4 ? "float" : "double", e.penalty, e.grad, e.grad_hi, e.ref_g_hi);
  CHECK(e.penalty <= 4);
  CHECK(e.grad <= 16);
  if (std::is_same_v<S, float>) {
    CHECK(e.grad_hi <= std::max(16.0, 2 * e.ref_g_hi));
    CHECK(e.ref_g_hi <= 32);
  }
}

// One workspace through shapes that grow, shrink and change the number of heads and the mask (the
// buffers of a larger call stay allocated for a smaller one): each result against the reference,
// with the shape sweep's bounds, and bit for bit against a call with a fresh workspace.
TEMPLATE_TEST_CASE("simd barrier backward keeps one workspace across calls", "[simd][barrier][backward]", float,
                   double) {
  using S = TestType;
  const test::omp_threads one(1);
  const double eps = test::epsilon_of<S>();
  const barrier_params bp{extension::extended, 1e-8, 1e-2};
  barrier_workspace<S> ws;
  struct shape {
    index N, p, H;
    mask m;
  };
  std::uint64_t seed = 8500;
  for (const shape& c : {shape{300, 17, 3, mask::strict}, shape{70, 8, 1, mask::inclusive},
                         shape{200, 17, 1, mask::strict}, shape{65, 3, 3, mask::inclusive},
                         shape{300, 17, 3, mask::strict}}) {
    INFO("N = " << c.N << ", p = " << c.p << ", H = " << c.H);
    const auto pb = test::make_barrier_problem<S>(c.N, c.p, c.H, test::barrier_head_scale(c.p), seed += 10);
    const attention_params ap{c.m, 0};
    const barrier_gradients<S> kept = barrier_penalty_backward(simd{}, pb.U, pb.hs, bp, ap, ws);
    const barrier_gradients<S> ref = barrier_penalty_backward<S>(pb.U, pb.hs, bp, ap);
    CHECK(test::err_eps(Eigen::Matrix<S, 1, 1>(kept.penalty), Eigen::Matrix<S, 1, 1>(ref.penalty), eps,
                        double(c.p)) <= 4);
    CHECK(test::err_eps_gradients(kept.grad.dU, kept.grad.dW, ref.grad.dU, ref.grad.dW, eps) <= 16);
    check_bitwise_equal(kept, barrier_penalty_backward(simd{}, pb.U, pb.hs, bp, ap));
    const std::vector<matrix<S>> batch{pb.U, pb.U.topRows(c.N / 2)};
    check_bitwise_equal(barrier_penalty_batch_backward(simd{}, batch, pb.hs, bp, ap, ws),
                        barrier_penalty_batch_backward(simd{}, batch, pb.hs, bp, ap));
  }
}

// Every policy on a problem whose heads push some tokens out of the feasible set (det J_t below
// the threshold, some < 0): the continuation branch (cofactor gradient) and the clamp's zero
// gradient are exercised. No determinant lies within 1% of the threshold (the relative error of
// det J_t is below 1e-3 in float here), so no branch decision can flip by rounding (it would make
// the clamp's gradient jump). J_t is far from I (condition numbers of 10^2 - 10^3 near the
// boundary, and J^{-T} multiplies rounding errors by them), so the float simd path is held to the
// float reference's own error against the double reference (bounds and measured values below).
// Two heads (the general blocks) and one head (the Sylvester blocks
// J'_t = I - M_t V, heads scaled 2.0: 2 of its tokens are below the threshold, the rest of the
// 51 - 53 continuation tokens are the two-head problem's).
TEMPLATE_TEST_CASE("simd barrier matches the reference for every policy, continuation region included",
                   "[simd][barrier][backward]", float, double) {
  using S = TestType;
  const test::omp_threads one(1);
  for (const barrier_params bp : {barrier_params{extension::clamp, 1e-2, 1e-2},
                                  barrier_params{extension::extended, 1e-8, 3e-1}}) {
    test::barrier_errors e;
    index continuation = 0;
    for (mask m : test::sweep_masks)
      for (index H : {1, 2}) {  // one head: the Sylvester blocks J'_t = I - M_t V
      const auto pb = test::make_barrier_problem<S>(80, 3, H, H == 1 ? 2.0 : 1.2, 9000 + int(m) + 10 * (H - 2), 0.0);
      const branch_census c = census(pb, bp, {m, 0});
      REQUIRE(c.log_branch > 0);
      REQUIRE(c.margin > 0.01);
      continuation += c.continuation;
      test::compare_barrier_values<S>(e, pb, bp, {m, 0});
      test::compare_barrier_gradients<S>(e, pb, bp, {m, 0});
      }
    std::printf("simd barrier <%s> policy %s: continuation tokens %ld; b %.2f, dU and dW %.2f eps; vs double: "
                "simd b %.2f, grad %.2f; reference b %.2f, grad %.2f eps\n",
                sizeof(S) == 4 ? "float" : "double", to_string(bp.policy), long(continuation), e.b, e.grad, e.b_hi,
                e.grad_hi, e.ref_b_hi, e.ref_g_hi);
    REQUIRE(continuation > 0);
    // Sharp heads concentrate the attention, so C_t = m2 - m1 m1^T cancels on most tokens and they
    // take the centred second pass (simd/barrier_forward.hpp). Measured, worst of the four problems
    // per policy (clamp / extended): float simd vs double b 97 / 318 eps, the float reference
    // 79 / 90 eps (without the second pass the simd path measured 2210 / 868); gradients vs double
    // simd 391 / 132, reference 1820 / 2516 eps. Rule: within 4 x the float reference's own error
    // + 64 eps (4: the one-head Sylvester blocks round differently, 318 vs 90 eps). Double, against
    // the double reference: b 233 / 728, gradients 4520 / 4132 eps; against long double b 249 / 553
    // eps, the reference 20 / 175 eps.
    if (std::is_same_v<S, float>) {
      CHECK(e.b_hi <= 4 * e.ref_b_hi + 64);
      CHECK(e.grad_hi <= 4 * e.ref_g_hi + 64);
      CHECK(e.ref_b_hi <= 256);
      CHECK(e.ref_g_hi <= 4096);
    } else {
      CHECK(e.b <= 2048);
      CHECK(e.grad <= 8192);
      CHECK(e.b_hi <= 1024);
      CHECK(e.ref_b_hi <= 512);
    }
  }
}

TEMPLATE_TEST_CASE("simd barrier under the exact policy: gradients when feasible, the reference's error when not",
                   "[simd][barrier][backward]", float, double) {
  using S = TestType;
  const test::omp_threads one(1);
  const barrier_params exact{extension::exact, 1e-8, 1e-2};
  // Feasible: every counted det J_t > 0 (checked); measured 0.25 eps for b_t (k = 2), 1.1 eps for
  // the gradients (k = 8), float and double.
  test::barrier_errors e;
  for (mask m : test::sweep_masks) {
    const auto pb = test::make_barrier_problem<S>(100, 8, 3, test::barrier_head_scale(8), 9100 + int(m));
    REQUIRE(census(pb, exact, {m, 0}).continuation == 0);
    test::compare_barrier_values<S>(e, pb, exact, {m, 0});
    test::compare_barrier_gradients<S>(e, pb, exact, {m, 0});
  }
  std::printf("simd barrier <%s> exact policy: b %.2f, dU and dW %.2f eps\n", sizeof(S) == 4 ? "float" : "double",
              e.b, e.grad);
  CHECK(e.b <= 2);
  CHECK(e.grad <= 8);
  // Infeasible: b_t = +inf exactly where the reference has it; the backward throws naming "U".
  const auto pb = test::make_barrier_problem<S>(80, 3, 2, 1.2, 9000, 0.0);
  REQUIRE(census(pb, exact, {mask::strict, 0}).continuation > 0);
  const std::vector<S> fast = barrier_per_token(simd{}, pb.U, pb.hs, exact);
  const std::vector<S> ref = barrier_per_token<S>(pb.U, pb.hs, exact);
  for (std::size_t t = 0; t < ref.size(); ++t) CHECK(std::isinf(fast[t]) == std::isinf(ref[t]));
  CHECK(std::isinf(barrier_penalty(simd{}, pb.U, pb.hs, exact)));
  try {
    barrier_penalty_backward(simd{}, pb.U, pb.hs, exact);
    FAIL("no error for an infeasible token under the exact policy");
  } catch (const error& err) {
    CHECK(err.argument() == "U");
  }
}

TEST_CASE("simd barrier batch backward equals the reference batch backward", "[simd][barrier][backward]") {
  using S = double;
  const test::omp_threads one(1);
  const std::vector<matrix<S>> Us{test::random_matrix<S>(70, 8, 1, 1.0), test::random_matrix<S>(2, 8, 2, 1.0),
                                  test::random_matrix<S>(130, 8, 3, 1.0)};
  const heads<S> hs = test::random_heads<S>(3, 8, 8, 11, 4, test::barrier_head_scale(8));
  const barrier_params bp{extension::extended, 1e-8, 1e-2};
  const double eps = test::epsilon_of<S>();
  for (mask m : test::sweep_masks) {
    const attention_params ap{m, 0};
    const auto fast = barrier_penalty_batch_backward(simd{}, Us, hs, bp, ap);
    const auto ref = barrier_penalty_batch_backward<S>(Us, hs, bp, ap);
    // Tolerances as the shape sweeps (absolute floor p eps for the penalty).
    CHECK(std::abs(fast.penalty - ref.penalty) <= 16 * eps * (std::abs(ref.penalty) + 8));
    REQUIRE(fast.grad.dU.size() == Us.size());
    for (std::size_t b = 0; b < Us.size(); ++b)
      CHECK(test::err_eps_gradients(fast.grad.dU[b], fast.grad.dW, ref.grad.dU[b], ref.grad.dW, eps) <= 16);
  }
}

// The public simd functions run the kernels, or the reference path for small problems
// (detail::simd_barrier_prefers_reference: N < 32; then in double N <= 2p for one head below
// p = 48 and N <= 4p otherwise, in float N <= p / 2 for one head and N <= 2p for several).
// Both paths are deterministic on one thread, so each result must equal its path's bit for bit.
// Shapes on both sides of every threshold.
template <class S>
struct dispatch_shape {
  index N, p, H;
  bool reference;
};

template <class S>
void check_dispatch(std::initializer_list<dispatch_shape<S>> shapes) {
  const test::omp_threads one(1);
  const barrier_params bp{extension::extended, 1e-8, 1e-2};
  const attention_params ap{mask::strict, 0};
  for (const dispatch_shape<S>& s : shapes) {
    INFO("N = " << s.N << ", p = " << s.p << ", H = " << s.H);
    REQUIRE(detail::simd_barrier_prefers_reference<S>(s.N, s.p, std::size_t(s.H)) == s.reference);
    const auto pb = test::make_barrier_problem<S>(s.N, s.p, s.H, test::barrier_head_scale(s.p), 70);
    const std::vector<S> expected_b =
        s.reference ? barrier_per_token<S>(pb.U, pb.hs, bp, ap) : test::simd_kernel_values<S>(pb, bp, ap);
    CHECK(barrier_per_token(simd{}, pb.U, pb.hs, bp, ap) == expected_b);
    const barrier_gradients<S> expected =
        s.reference ? barrier_penalty_backward<S>(pb.U, pb.hs, bp, ap) : test::simd_kernel_gradients<S>(pb, bp, ap);
    check_bitwise_equal(barrier_penalty_backward(simd{}, pb.U, pb.hs, bp, ap), expected);
  }
}

TEST_CASE("simd barrier sends small problems to the reference path and the rest to the kernels", "[simd][barrier]") {
  SECTION("double") {
    check_dispatch<double>({{20, 2, 1, true}, {40, 20, 1, true}, {41, 20, 1, false}, {192, 48, 1, true},
                            {193, 48, 1, false}, {80, 20, 2, true}, {81, 20, 3, false}});
  }
  SECTION("float") {
    check_dispatch<float>({{31, 2, 1, true}, {32, 2, 1, false}, {32, 64, 1, true}, {33, 64, 1, false},
                           {40, 20, 2, true}, {41, 20, 3, false}});
  }
}

}  // namespace suptok
