// bench/bench_support.hpp: seeded inputs shared by the Google Benchmark files of bench/.
#pragma once

#include <suptok/core/view.hpp>

#include <cstdint>
#include <random>

namespace suptok::bench {

// A (rows, cols) matrix of N(0, scale^2) entries from a fixed seed (the same on every machine).
template <class S>
matrix<S> random_matrix(index rows, index cols, std::uint64_t seed, double scale) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, scale);
  matrix<S> m(rows, cols);
  for (index r = 0; r < rows; ++r)
    for (index c = 0; c < cols; ++c) m(r, c) = S(normal(gen));
  return m;
}

}  // namespace suptok::bench
