// Bad input: every public entry point throws suptok::error naming the offending argument.
#include "process_checks.hpp"

#include <catch2/catch.hpp>

#include <limits>

using namespace suptok;
using test::argument_of;

namespace {
// A user model that returns the wrong number of values (mode 0), a NaN (1), probability zero for
// every token (2), or has no tokens (3).
struct broken_model {
  using scalar_type = double;
  int mode = 0;
  suptok::index vocab_size() const { return mode == 3 ? 0 : 2; }
  void next_log_probs(vector<double>& out, std::span<const token>) const {
    constexpr double nan = std::numeric_limits<double>::quiet_NaN(), minus_inf = -std::numeric_limits<double>::infinity();
    out = vector<double>::Constant(mode == 0 ? 3 : 2, mode == 0 ? -1.0 : mode == 1 ? nan : minus_inf);
  }
};

// A joint (non-causal) model that gives every sequence score -inf.
struct zero_joint_model {
  using scalar_type = double;
  suptok::index vocab_size() const { return 2; }
  double log_score(std::span<const token>) const { return -std::numeric_limits<double>::infinity(); }
};
}  // namespace

TEST_CASE("models validate their construction and their inputs", "[process][validation]") {
  vector<double> pi(2);
  pi << 0.5, 0.5;
  matrix<double> T3 = matrix<double>::Constant(3, 3, 1.0 / 3);
  CHECK(argument_of([&] { markov_chain<double>(pi, T3); }) == "T");  // K mismatch
  matrix<double> T(2, 2);
  T << 0.5, 0.5, 0.3, 0.6;
  CHECK(argument_of([&] { markov_chain<double>(pi, T); }) == "T.row(1)");  // does not sum to 1
  vector<double> negative(2);
  negative << 1.5, -0.5;
  T << 0.5, 0.5, 0.5, 0.5;
  CHECK(argument_of([&] { markov_chain<double>(negative, T); }) == "pi");
  CHECK(argument_of([&] { markov_chain<double>(pi, T); }) == "no error");
  CHECK(argument_of([] { markov_chain<double>::random(0, 1); }) == "K");

  const markov_chain<double> chain(pi, T);
  vector<double> out;
  const token bad[] = {0, 2};
  CHECK(argument_of([&] { chain.next_log_probs(out, bad); }) == "prefix");  // token out of range

  CHECK(argument_of([] { transformer_lm<double>(0, 4, 1, 1, 1); }) == "K");
  CHECK(argument_of([] { transformer_lm<double>(3, 4, 0, 1, 1); }) == "layers");
  CHECK(argument_of([] { bidirectional_lm<double>(3, 0, 1, 1, 1); }) == "p");
  lm_weights<double> w = lm_weights<double>::random(3, 4, 1, 1, 1);
  w.E.resize(3, 4);
  CHECK(argument_of([&] { transformer_lm<double>{w}; }) == "weights.E");
  w = lm_weights<double>::random(3, 4, 1, 1, 1);
  w.P.resize(2, 4);
  CHECK(argument_of([&] { transformer_lm<double>{w}; }) == "weights.P");
  w = lm_weights<double>::random(3, 4, 1, 1, 1);
  w.W_U.resize(0, 4);
  CHECK(argument_of([&] { transformer_lm<double>{w}; }) == "weights.W_U");
  w = lm_weights<double>::random(3, 4, 1, 1, 1);
  w.layers.clear();
  CHECK(argument_of([&] { transformer_lm<double>{w}; }) == "weights.layers");
  w = lm_weights<double>::random(3, 4, 1, 1, 1);
  w.layers[0][0].W_K(0, 0) = std::numeric_limits<double>::infinity();
  CHECK(argument_of([&] { bidirectional_lm<double>{w}; }) == "heads[0].W_K");

  const transformer_lm<double> lm(3, 4, 1, 1, 1);
  const bidirectional_lm<double> bi(3, 4, 1, 1, 1);
  const std::vector<token> too_long(64, 0);
  CHECK(argument_of([&] { lm.next_log_probs(out, too_long); }) == "prefix");
  CHECK(argument_of([&] { lm.next_log_probs(out, bad); }) == "no error");  // 2 < K = 3
  const token minus[] = {-1};
  CHECK(argument_of([&] { lm.next_log_probs(out, minus); }) == "prefix");
  CHECK(argument_of([&] { bi.log_score(std::span<const token>()); }) == "x");  // empty sequence
}

TEST_CASE("enumeration, consistency and sampling validate their arguments", "[process][validation]") {
  const auto chain = markov_chain<double>::random(3, 1);
  // Budget: 3^15 > 2^22 by default; a stated smaller budget applies too.
  CHECK(argument_of([&] { fdd(chain, index_set{15}); }) == "positions");
  CHECK(argument_of([&] { fdd(chain, index_set{3}, 26); }) == "positions");
  CHECK(argument_of([&] { fdd(chain, index_set{3}, 27); }) == "no error");
  CHECK(argument_of([&] { enumerate_prefixes(chain, 65); }) == "n");
  CHECK(argument_of([&] { enumerate_prefixes(chain, -1); }) == "n");
  CHECK(argument_of([&] { check_consistency(chain, 65); }) == "n");
  CHECK(argument_of([&] { check_consistency(chain, 8); }) == "n");  // 7^8 > 2^22 terms
  const auto table = enumerate_prefixes(chain, 3);
  CHECK(argument_of([&] { log_fdd(table, index_set{4}); }) == "positions");
  CHECK(argument_of([&] { log_marginalize(table.log_joint[2], index_set{1, 2}, index_set{3}, 3); }) == "B");
  CHECK(argument_of([&] { log_marginalize(table.log_joint[3], index_set{1, 2}, index_set{1}, 3); }) == "log_p_A");

  CHECK(argument_of([&] { sample_sequences(chain, 0, 10, 1); }) == "m");
  CHECK(argument_of([&] { sample_sequences(chain, 3, 0, 1); }) == "count");
  CHECK(argument_of([&] { estimate_fdd(chain, index_set{1}, 0, 1); }) == "samples");
  CHECK(argument_of([&] { estimate_fdd(matrix<token>(0, 2), index_set{1}, 3); }) == "sequences");
  CHECK(argument_of([] { check_consistency(prefix_joints<double>{}); }) == "table");
  CHECK(argument_of([&] { estimate_fdd(chain, index_set{}, 10, 1); }) == "positions");  // empty S
  CHECK(argument_of([&] { estimate_fdd(chain, index_set{1}, 10, 1, 1.5); }) == "confidence");
  const matrix<token> x = sample_sequences(chain, 2, 10, 1);
  CHECK(argument_of([&] { estimate_fdd(x, index_set{3}, 3); }) == "positions");
  matrix<token> y(2, 2);
  y << 0, 1, 0, 2;
  CHECK(argument_of([&] { estimate_fdd(y, index_set{1}, 2); }) == "sequences.row(1)");  // token 2 with K = 2

  const std::int64_t counts[] = {5, 5};
  vector<double> p3(3);
  p3 << 0.2, 0.3, 0.5;
  CHECK(argument_of([&] { chi_square_gof<double>(counts, p3); }) == "counts");  // K mismatch
  vector<double> p2(2);
  p2 << 0.2, 0.3;
  CHECK(argument_of([&] { chi_square_gof<double>(counts, p2); }) == "probabilities");
  CHECK(argument_of([] { wilson_interval(3, 2); }) == "successes");
  CHECK(argument_of([] { wilson_interval(0, 0); }) == "trials");

  CHECK(argument_of([] { fdd(broken_model{0}, index_set{1}); }) == "model.next_log_probs");
  CHECK(argument_of([] { fdd(broken_model{1}, index_set{1}); }) == "model.next_log_probs");
  CHECK(argument_of([] { sample_sequences(broken_model{1}, 2, 3, 1); }) == "model.next_log_probs");
  CHECK(argument_of([] { sample_sequences(broken_model{2}, 2, 3, 1); }) == "model");
  CHECK(argument_of([] { fdd(broken_model{3}, index_set{1}); }) == "model.vocab_size()");
  CHECK(argument_of([] { fdd(zero_joint_model{}, index_set{1}); }) == "model.log_score");
}
