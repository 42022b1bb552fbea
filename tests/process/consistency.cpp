// Kolmogorov consistency over all 3^n pairs: rounding level for the causal models (double),
// a clearly non-zero violation for the bidirectional counterexample; the full-mask attention the
// counterexample uses is checked against a direct softmax over all positions.
#include "process_checks.hpp"

#include <test_support.hpp>

#include <catch2/catch.hpp>

#include <iostream>

using namespace suptok;

namespace {
void print(const char* name, const consistency_report<double>& r) {
  std::cout << name << ": pairs " << r.pairs_checked << ", max violation " << r.max_violation << " at S = "
            << r.worst_S << ", S' = " << r.worst_S_prime << "\n";
}
}  // namespace

TEST_CASE("causal models are consistent to rounding level (double)", "[process][consistency]") {
  const int n = 6;
  const auto chain = markov_chain<double>::random(3, 3);
  const transformer_lm<double> lm(3, 4, 2, 2, 7);
  const auto r_chain = check_consistency(chain, n);
  const auto r_lm = check_consistency(lm, n);
  print("Markov K = 3, n = 6", r_chain);
  print("transformer K = 3, n = 6", r_lm);
  CHECK(r_chain.pairs_checked == 729);  // 3^6
  CHECK(r_lm.pairs_checked == 729);
  // Sums of up to 3^6 probabilities of total mass <= 1, each from a log-space product of <= 6
  // conditionals: a few eps (bound 32 eps, measured 6 / 6.5 eps).
  const double eps = test::epsilon_of<double>();
  CHECK(r_chain.max_violation <= 32 * eps);
  CHECK(r_lm.max_violation <= 32 * eps);
}

TEST_CASE("the bidirectional counterexample is detected", "[process][consistency]") {
  const bidirectional_lm<double> bi(3, 4, 2, 2, 7);
  const auto r = check_consistency(bi, 6);
  print("bidirectional K = 3, n = 6", r);
  CHECK(r.pairs_checked == 729);
  // The violation is of the size of the model's probabilities, not of rounding.
  CHECK(r.max_violation > 1e-2);
  CHECK(r.worst_S_prime.subset_of(r.worst_S));
  CHECK(r.worst_S_prime != r.worst_S);
  CHECK(r.worst_S_prime.max() < r.worst_S.max());  // only a change of length can be inconsistent
  // Every P_m is still a distribution, and the smallest pair already shows it: P_1 differs from
  // the marginal of P_2 on position 1.
  const auto table = enumerate_prefixes(bi, 2);
  const vector<double> p1 = fdd(bi, index_set{1});
  CHECK(test::within_eps(p1.sum(), 1.0, 4));  // bound 4 eps, measured 1
  const vector<double> p2_on_1 = log_marginalize(table.log_joint[2], index_set{1, 2}, index_set{1}, 3).array().exp();
  CHECK(test::max_abs_diff(p1, p2_on_1) > 1e-3);
  // The same network with the causal mask is consistent: the violation comes from the mask.
  // (bound 32 eps as above, measured 6.5)
  CHECK(check_consistency(transformer_lm<double>(bi.weights()), 6).max_violation <= 32 * test::epsilon_of<double>());
}

TEST_CASE("full-mask attention equals a direct softmax over all positions", "[process][attention]") {
  const suptok::index N = 5, p = 4;
  const heads<double> hs = test::random_heads<double>(2, p, 2, 3, 21);
  const matrix<double> U = test::random_matrix<double>(N, p, 22);
  const matrix<double> mu = detail::full_attention_mu(U, hs);
  matrix<double> direct = matrix<double>::Zero(N, p);
  for (const auto& h : hs) {
    const matrix<double> Q = U * h.W_Q.transpose(), K = U * h.W_K.transpose(), Vv = U * h.W_V.transpose();
    matrix<double> a = (Q * K.transpose()) / std::sqrt(double(h.d_k()));  // (N, N)
    for (suptok::index t = 0; t < N; ++t) {
      a.row(t) = (a.row(t).array() - a.row(t).maxCoeff()).exp();
      a.row(t) /= a.row(t).sum();
    }
    direct += a * Vv * h.W_O.transpose();
  }
  // Two orders of the same O(N p) sums of O(1) terms (bound 8 eps, measured 1.5).
  CHECK(test::max_rel_error(mu, direct) <= 8 * test::epsilon_of<double>());
  // Permutation invariance (docs/math.md section 5): the last row of the inclusive forward does not depend on
  // the order of the rows before it.
  matrix<double> shuffled = U;
  shuffled.row(0) = U.row(2);
  shuffled.row(2) = U.row(0);
  const attention_params inclusive{mask::inclusive, 0};
  const matrix<double> a = attention_forward<double>(U, hs, inclusive).mu;
  const matrix<double> b = attention_forward<double>(shuffled, hs, inclusive).mu;
  // The same terms summed in another order (bound 4 eps relative, measured 0: bitwise equal here).
  CHECK((a.row(N - 1) - b.row(N - 1)).norm() <= 4 * test::epsilon_of<double>() * a.row(N - 1).norm());
  CHECK((a.row(1) - b.row(1)).norm() > 1e-6);  // a row whose past changed does change
}
