// The process table of docs/errors.md beyond tests/process/validation.cpp and index_set.cpp: the
// language-model weights' head count, the bidirectional model's sequences, the enumeration budget
// of each function that has one, the vocabulary size of a user's model, the confidence and counts
// of the statistics, and a prefix table whose probabilities are not finite.
#include "error_cases.hpp"

#include <cstdint>
#include <span>

using namespace suptok;
using namespace suptok::errors_test;

namespace {

// A user's causal model with no tokens.
struct no_tokens {
  using scalar_type = double;
  suptok::index vocab_size() const { return 0; }
  void next_log_probs(V& out, std::span<const token>) const { out = V(); }
};

// A user's joint model: every sequence of K = 2 tokens equally likely.
struct uniform_joint {
  using scalar_type = double;
  suptok::index vocab_size() const { return 2; }
  double log_score(std::span<const token>) const { return 0; }
};

}  // namespace

TEST_CASE("language models name their sizes, weights and sequences", "[errors][process]") {
  const bidirectional_lm<double> bi(3, 4, 1, 1, 1);
  const std::vector<token> long_x(65, 0), bad_token{0, 3};
  check_cases({
      {"random weights: K = 0", "K", [] { lm_weights<double>::random(0, 4, 1, 1, 1); }},
      {"random weights: p = -1", "p", [] { lm_weights<double>::random(3, -1, 1, 1, 1); }},
      {"random weights: no layers", "layers", [] { lm_weights<double>::random(3, 4, 0, 1, 1); }},
      {"random weights: no heads", "heads", [] { lm_weights<double>::random(3, 4, 1, 0, 1); }},
      {"transformer: no heads", "heads", [] { transformer_lm<double>(3, 4, 1, 0, 1); }},
      {"bidirectional: 65 tokens", "x", [&] { bi.log_score(long_x); }},
      {"bidirectional: token 3 of K = 3", "x", [&] { bi.log_score(bad_token); }},
  });
}

TEST_CASE("enumeration, consistency and sampling name the budget's argument and the vocabulary", "[errors][process]") {
  const auto chain = markov_chain<double>::random(3, 1);
  // log P_1 = (+inf, 0): not a distribution; the check finds a non-finite probability.
  prefix_joints<double> infinite{2, {V::Zero(1), (V(2) << inf, 0.0).finished()}};
  check_valid("enumerate_prefixes within a budget of 27", [&] { enumerate_prefixes(chain, 3, 27); });
  check_cases({
      {"enumerate_prefixes: no tokens", "model.vocab_size()", [] { enumerate_prefixes(no_tokens{}, 1); }},
      {"enumerate_prefixes: 3^3 over a budget of 26", "n", [&] { enumerate_prefixes(chain, 3, 26); }},
      {"log_fdd: no tokens", "model.vocab_size()", [] { log_fdd(no_tokens{}, index_set{1}); }},
      {"log_marginalize: K = 0", "K", [] { log_marginalize(V(V::Zero(1)), index_set{1}, index_set{}, 0); }},
      {"log_marginalize: 2^23 cells", "A", [] { log_marginalize(V(V::Zero(2)), index_set::first(23), index_set{1}, 2); }},
      {"check_consistency: no tokens", "model.vocab_size()", [] { check_consistency(no_tokens{}, 2); }},
      {"check_consistency: 7^2 terms over a budget of 48", "n", [&] { check_consistency(enumerate_prefixes(chain, 2), 48); }},
      {"check_consistency: infinite probabilities", "model", [&] { check_consistency(infinite); }},
      {"sample_sequences: no tokens", "model.vocab_size()", [] { sample_sequences(no_tokens{}, 2, 1, 1); }},
      {"sample_sequences: m = 65", "m", [&] { sample_sequences(chain, 65, 1, 1); }},
      {"sample_sequences: joint model, 2^10 over a budget of 1000", "n",
       [] { sample_sequences(uniform_joint{}, 10, 1, 1, 1000); }},
  });
  check_valid("sample_sequences: joint model within the budget", [] { sample_sequences(uniform_joint{}, 9, 1, 1, 1000); });
}

TEST_CASE("the statistics name K, positions, confidence, samples and counts", "[errors][process]") {
  const auto chain = markov_chain<double>::random(2, 3);
  const matrix<token> x = sample_sequences(chain, 3, 20, 1);
  const std::vector<std::int64_t> counts{10, 10, 10}, negative{10, -1, 10}, none{0, 0, 0};
  const V p = V::Constant(3, 1.0 / 3);
  check_cases({
      {"wilson: confidence 1", "confidence", [] { wilson_interval(1, 2, 1.0); }},
      {"wilson: NaN confidence", "confidence", [] { wilson_interval(1, 2, NaN); }},
      {"wilson: negative successes", "successes", [] { wilson_interval(-1, 2); }},
      {"estimate_fdd: K = 0", "K", [&] { estimate_fdd(x, index_set{1}, 0); }},
      {"estimate_fdd: empty S", "positions", [&] { estimate_fdd(x, index_set{}, 2); }},
      {"estimate_fdd: confidence 0", "confidence", [&] { estimate_fdd(x, index_set{1}, 2, 0.0); }},
      {"estimate_fdd: 4096^2 cells", "positions", [&] { estimate_fdd(x, index_set{1, 2}, 4096); }},
      {"estimate_fdd (model): NaN confidence", "confidence", [&] { estimate_fdd(chain, index_set{2}, 10, 1, NaN); }},
      {"estimate_fdd (model): no tokens", "model.vocab_size()", [] { estimate_fdd(no_tokens{}, index_set{2}, 10, 1); }},
      {"chi_square_gof: NaN probability", "probabilities",
       [&] { chi_square_gof<double>(counts, with_entry(p, 1, NaN)); }},
      {"chi_square_gof: negative probability", "probabilities",
       [&] { chi_square_gof<double>(counts, (V(3) << 0.5, -0.5, 1.0).finished()); }},
      {"chi_square_gof: negative count", "counts", [&] { chi_square_gof<double>(negative, p); }},
      {"chi_square_gof: no observations", "counts", [&] { chi_square_gof<double>(none, p); }},
      {"chi_square_gof: one cell after pooling", "counts",
       [&] { chi_square_gof<double>(std::vector<std::int64_t>{1, 1, 1}, p); }},
      {"sampler_gof: empty S", "positions", [&] { sampler_gof(chain, index_set{}, 100, 1); }},
      {"sampler_gof: no samples", "samples", [&] { sampler_gof(chain, index_set{1}, 0, 1); }},
      {"sampler_gof: 2^3 over a budget of 4", "positions", [&] { sampler_gof(chain, index_set{3}, 100, 1, 4); }},
  });
}
