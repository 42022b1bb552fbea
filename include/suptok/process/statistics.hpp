// suptok/process/statistics.hpp: Monte-Carlo estimates of P_S and a goodness-of-fit test of the
// sampler against the exact P_S (docs/math.md section 5). Needs Boost.Math (distributions).
//
// wilson_interval(k, N, c): the Wilson score interval of a binomial proportion at confidence c,
//   z = Phi^{-1}((1 + c) / 2),  center = (p + z^2 / 2N) / (1 + z^2 / N),
//   half = z / (1 + z^2 / N) sqrt(p (1 - p) / N + z^2 / 4N^2),      p = k / N.
// estimate_fdd: counts of x_S over N sequences (layout of fdd.hpp), p_hat = count / N and the
//   Wilson interval of each cell. From a model it samples N sequences of length max S (so that a
//   joint model is estimated against the marginal of P_{max S}, as log_fdd defines it).
// chi_square_gof(counts, P): Pearson's X^2 = sum (O - E)^2 / E with E = N P over pooled cells,
//   p-value = Q(X^2; df) of Boost.Math's chi_squared, df = pooled cells - 1. Pooling: the cells
//   with E < 5 are merged into one cell; while that cell still has E < 5 and other cells remain,
//   the remaining cell of smallest E is merged into it. At least two cells must remain. A pooled
//   cell of probability zero is dropped if empty and gives X^2 = inf, p = 0 if anything fell in it.
//   P must be a distribution (entries >= 0, sum within 1e-9 of 1: it is converted to double).
#pragma once

#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/normal.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "sampling.hpp"

namespace suptok {

struct interval {
  double lower = 0;
  double upper = 0;
};

struct fdd_estimate {
  index_set positions;
  std::int64_t samples = 0;
  double confidence = 0;
  std::vector<std::int64_t> counts;  // K^|S|
  std::vector<double> p_hat;         // K^|S|: counts / samples
  std::vector<interval> wilson;      // K^|S|: Wilson score intervals at `confidence`
};

struct gof_result {
  double statistic = 0;        // Pearson's X^2 over the pooled cells
  int degrees_of_freedom = 0;  // pooled cells - 1
  double p_value = 0;          // P(chi^2_df >= statistic)
  index cells = 0;             // cells before pooling (K^|S|)
  index pooled_cells = 0;      // cells after pooling
};

namespace detail {

inline void validate_confidence(double confidence) {
  require(confidence > 0 && confidence < 1, "confidence", "must lie in (0, 1), got ", confidence);
}

}  // namespace detail

inline interval wilson_interval(std::int64_t successes, std::int64_t trials, double confidence = 0.95) {
  detail::require(trials >= 1, "trials", "at least one trial is required, got ", trials);
  detail::require(successes >= 0 && successes <= trials, "successes", successes, " outside 0..", trials);
  detail::validate_confidence(confidence);
  const double z = boost::math::quantile(boost::math::normal_distribution<double>(), (1 + confidence) / 2);
  const double N = double(trials), p = double(successes) / N, z2 = z * z;
  const double center = (p + z2 / (2 * N)) / (1 + z2 / N);
  const double half = z / (1 + z2 / N) * std::sqrt(p * (1 - p) / N + z2 / (4 * N * N));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

// Counts and intervals of x_S over the rows of `sequences` (tokens in 0..K-1, max S <= columns).
inline fdd_estimate estimate_fdd(const matrix<token>& sequences, index_set positions, index K,
                                 double confidence = 0.95) {
  detail::require(K >= 1, "K", "must be at least 1, got ", K);
  detail::require(!positions.empty(), "positions", "the empty set has nothing to estimate");
  detail::require(sequences.rows() >= 1, "sequences", "no sequences");
  detail::require(positions.max() <= sequences.cols(), "positions", positions.to_string(),
                  " reaches beyond the sequence length ", sequences.cols());
  detail::validate_confidence(confidence);
  const index cells = detail::enumeration_size(K, positions.size(), default_enumeration_budget, "positions");
  fdd_estimate e{positions, sequences.rows(), confidence, std::vector<std::int64_t>(std::size_t(cells), 0), {}, {}};
  for (index i = 0; i < sequences.rows(); ++i) {
    detail::validate_tokens(std::span<const token>(sequences.row(i).data(), std::size_t(sequences.cols())), K,
                            "sequences.row(" + std::to_string(i) + ")");
    index c = 0;
    for (int t : positions) c = c * K + sequences(i, t - 1);
    ++e.counts[std::size_t(c)];
  }
  for (std::int64_t k : e.counts) {
    e.p_hat.push_back(double(k) / double(e.samples));
    e.wilson.push_back(wilson_interval(k, e.samples, confidence));
  }
  return e;
}

// Samples `samples` sequences of length max S from the model (seeded) and estimates P_S.
template <process_model M>
fdd_estimate estimate_fdd(const M& model, index_set positions, std::int64_t samples, std::uint64_t seed,
                          double confidence = 0.95, std::uint64_t budget = default_enumeration_budget) {
  detail::require(!positions.empty(), "positions", "the empty set has nothing to estimate");
  detail::validate_confidence(confidence);
  detail::require(samples >= 1, "samples", "at least one sample is required, got ", samples);
  return estimate_fdd(sample_sequences(model, positions.max(), samples, seed, budget), positions,
                      detail::vocab_of(model), confidence);
}

// Pearson's chi-square test of observed counts against a distribution (pooling above).
template <class S>
gof_result chi_square_gof(std::span<const std::int64_t> counts, const vector<S>& probabilities) {
  const index cells = probabilities.size();
  detail::require(static_cast<index>(counts.size()) == cells, "counts", counts.size(),
                  " cells, but probabilities has ", cells);
  std::vector<double> p(static_cast<std::size_t>(cells));
  double total_p = 0;
  std::int64_t N = 0;
  for (index i = 0; i < cells; ++i) {
    p[std::size_t(i)] = to_double(probabilities(i));
    detail::require(std::isfinite(p[std::size_t(i)]) && p[std::size_t(i)] >= 0, "probabilities", "entry ", i,
                    " is ", p[std::size_t(i)], ", expected a probability");
    detail::require(counts[std::size_t(i)] >= 0, "counts", "entry ", i, " is negative");
    total_p += p[std::size_t(i)];
    N += counts[std::size_t(i)];
  }
  detail::require(std::abs(total_p - 1) <= 1e-9, "probabilities", "sum to ", total_p, ", expected 1");
  detail::require(N >= 1, "counts", "no observations");
  std::vector<std::size_t> order(p.size());  // cells by increasing expected count
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&p](std::size_t a, std::size_t b) { return p[a] < p[b]; });
  double pooled_E = 0, pooled_O = 0, statistic = 0;
  std::size_t next = 0;
  while (next < order.size() && (double(N) * p[order[next]] < 5 || (pooled_E > 0 && pooled_E < 5))) {
    pooled_E += double(N) * p[order[next]];
    pooled_O += double(counts[order[next]]);
    ++next;
  }
  // A pooled cell of probability zero counts only when something was observed in it (X^2 = inf).
  const bool pooled = pooled_E > 0 || pooled_O > 0;
  const index groups = index(order.size() - next) + (pooled ? 1 : 0);
  detail::require(groups >= 2, "counts", "fewer than two cells with expected count >= 5 after pooling (N = ", N,
                  "): draw more samples");
  if (pooled_E > 0)
    statistic += (pooled_O - pooled_E) * (pooled_O - pooled_E) / pooled_E;
  else if (pooled_O > 0)
    statistic = std::numeric_limits<double>::infinity();
  for (std::size_t j = next; j < order.size(); ++j) {
    const double E = double(N) * p[order[j]], O = double(counts[order[j]]);
    statistic += (O - E) * (O - E) / E;
  }
  gof_result r;
  r.statistic = statistic;
  r.degrees_of_freedom = static_cast<int>(groups - 1);
  const boost::math::chi_squared_distribution<double> chi2(r.degrees_of_freedom);
  r.p_value = std::isfinite(statistic) ? boost::math::cdf(boost::math::complement(chi2, statistic)) : 0.0;
  r.cells = cells;
  r.pooled_cells = groups;
  return r;
}

// The sampler of a model against its exact P_S: `samples` seeded sequences of length max S.
template <process_model M>
gof_result sampler_gof(const M& model, index_set positions, std::int64_t samples, std::uint64_t seed,
                       std::uint64_t budget = default_enumeration_budget) {
  const fdd_estimate e = estimate_fdd(model, positions, samples, seed, 0.95, budget);
  return chi_square_gof<scalar_of<M>>(e.counts, fdd(model, positions, budget));
}

}  // namespace suptok
