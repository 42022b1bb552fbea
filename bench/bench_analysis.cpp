// Benchmarks of the per-token analysis of a layer (docs/layers.md; the fast path in docs/simd.md):
// analyse(U, layer, options) on the reference path against analyse(simd{}, U, layer, options), in
// the projected form, margins estimated, support tokens within 0.1. The layer is GPT-2-shaped:
// p / 64 heads of width 64, biases on Q, K, V, tau = 8, weights of standard deviation 0.05 (W_Q,
// W_K, W_V), 0.01 (W_O) and 0.02 (biases), U ~ N(0, 1), as in examples/06_real_layer.cpp.
// Arguments: N, p, mask (0 strict, 1 inclusive), path (0 reference, 1 simd).
// Run e.g.  OMP_NUM_THREADS=1 ./bench_analysis --benchmark_filter='<double>/32/768'
#include <suptok/simd.hpp>

#include "bench_support.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>

namespace {

using suptok::index;
using suptok::bench::random_matrix;

template <class S>
suptok::layer<S> gpt2_shaped_layer(index p) {
  const index H = p / 64, d = 64;
  suptok::layer<S> l;
  std::uint64_t seed = 31;
  for (index h = 0; h < H; ++h) {
    l.W_Q.push_back(random_matrix<S>(d, p, seed++, 0.05));
    l.W_K.push_back(random_matrix<S>(d, p, seed++, 0.05));
    l.W_V.push_back(random_matrix<S>(d, p, seed++, 0.05));
    l.W_O.push_back(random_matrix<S>(p, d, seed++, 0.01));
    for (auto* b : {&l.b_Q, &l.b_K, &l.b_V}) b->push_back(random_matrix<S>(d, 1, seed++, 0.02));
  }
  return l;
}

template <class S>
void BM_analysis(benchmark::State& state) {
  const index N = state.range(0), p = state.range(1);
  const bool simd = state.range(3) == 1;
  const suptok::layer<S> l = gpt2_shaped_layer<S>(p);
  const suptok::matrix<S> U = random_matrix<S>(N, p, 7, 1.0);
  suptok::analysis_options o;
  o.attention = {state.range(2) == 1 ? suptok::mask::inclusive : suptok::mask::strict, 0};
  o.form = suptok::jacobian_form::projected;
  o.support = suptok::support_rule::within(0.1);
  for (auto _ : state) {
    if (simd)
      benchmark::DoNotOptimize(suptok::analyse(suptok::simd{}, U, l, o).penalty);
    else
      benchmark::DoNotOptimize(suptok::analyse<S>(U, l, o).penalty);
  }
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "p", "mask", "path"})->Unit(benchmark::kMillisecond)->UseRealTime();
  for (index p : {256, 768})
    for (index N : {32, 128})
      for (index m : {0, 1})
        for (index path : {0, 1}) b->Args({N, p, m, path});
}

}  // namespace

BENCHMARK_TEMPLATE(BM_analysis, float)->Apply(grid);
BENCHMARK_TEMPLATE(BM_analysis, double)->Apply(grid);
