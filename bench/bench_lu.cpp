// Benchmarks of the per-token factorisation of the projected form (simd/recursive_lu.hpp): the
// recursive row-major LU against Eigen's blocked PartialPivLU on the same (n, n) matrix, float and
// double, n in {64, 128, 256, 512, 768} (768 = H d_v of a GPT-2-small layer). Flops 2/3 n^3.
// Run e.g.  OMP_NUM_THREADS=1 ./bench_lu --benchmark_filter='<float>/768'
#include <suptok/simd.hpp>

#include "bench_support.hpp"

#include <benchmark/benchmark.h>

#include <vector>

#include <Eigen/LU>

namespace {

using suptok::index;

// I - K with K of norm about 1/2: a block of the shape the projected form factors.
template <class S>
suptok::matrix<S> block(index n) {
  suptok::matrix<S> A = -suptok::bench::random_matrix<S>(n, n, 3, 0.5 / std::sqrt(double(n)));
  A.diagonal().array() += S(1);
  return A;
}

void set_rate(benchmark::State& state, index n) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 / 3.0 * double(n) * double(n) * double(n) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

template <class S>
void BM_lu_recursive(benchmark::State& state) {
  const index n = state.range(0);
  const suptok::matrix<S> A = block<S>(n);
  suptok::matrix<S> work(n, n);
  std::vector<index> pivot(static_cast<std::size_t>(n));
  for (auto _ : state) {
    work = A;  // the factorisation overwrites its input
    benchmark::DoNotOptimize(suptok::detail::recursive_lu_log_det<S>(work, pivot));
  }
  set_rate(state, n);
}

template <class S>
void BM_lu_eigen(benchmark::State& state) {
  const index n = state.range(0);
  const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic> A = block<S>(n);  // Eigen's native column-major
  for (auto _ : state) {
    const Eigen::PartialPivLU<Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>> lu(A);
    benchmark::DoNotOptimize(lu.matrixLU().data());
  }
  set_rate(state, n);
}

void sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n"})->Unit(benchmark::kMillisecond)->UseRealTime();
  for (index n : {64, 128, 256, 512, 768}) b->Args({n});
}

}  // namespace

BENCHMARK_TEMPLATE(BM_lu_recursive, float)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_lu_eigen, float)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_lu_recursive, double)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_lu_eigen, double)->Apply(sizes);
