// Benchmarks of the per-token factorisation of the projected form (simd/recursive_lu.hpp): the
// recursive row-major LU against Eigen's blocked PartialPivLU on the same (n, n) matrix, float and
// double, n in {64, 128, 256, 512, 768} (768 = H d_v of a GPT-2-small layer). Flops 2/3 n^3.
// And the inverse the barrier's backward takes of every block (db/dJ = -J^{-T} on the log branch):
// simd_kernels::lu_inverse_transpose (simd/block_inverse.hpp, what the backward calls), recursive_lu
// with lu_inverse, and Eigen's PartialPivLU(J).inverse() on the row-major block, each counted as
// 2 n^3 flops (the LU and the inverse from its factors).
// And the trailing update C -= A B those factorisations spend their time in, on row-major operands
// of the shapes the recursion meets at n = 768: simd_kernels::packed_gemm_subtract (what
// recursive_lu calls with 512-bit vectors) against Eigen's product, 2 m k n flops.
// Run e.g.  OMP_NUM_THREADS=1 ./bench_lu --benchmark_filter='<float>/768'
#include <suptok/simd.hpp>
#include <suptok/simd/block_inverse.hpp>

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

void set_rate(benchmark::State& state, index n, double flops_per_n3 = 2.0 / 3.0) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_n3 * double(n) * double(n) * double(n) * 1e-9,
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

template <class S>
void BM_inverse_transpose_simd(benchmark::State& state) {
  namespace k = suptok::detail::simd_kernels;
  const index n = state.range(0);
  const suptok::matrix<S> A = block<S>(n);
  suptok::matrix<S> out(n, n);
  k::block_inverse_scratch<S> scratch;
  for (auto _ : state) {
    k::lu_inverse_transpose<S>(out.data(), n, A.data(), n, n, k::round_up(n, k::lanes<S>), S(1), scratch);
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state, n, 2.0);
}

template <class S>
void BM_inverse_recursive(benchmark::State& state) {
  const index n = state.range(0);
  const suptok::matrix<S> A = block<S>(n);
  suptok::matrix<S> work(n, n), inverse(n, n);
  std::vector<index> pivot(static_cast<std::size_t>(n));
  for (auto _ : state) {
    work = A;
    suptok::detail::recursive_lu_log_det<S>(work, pivot);
    suptok::detail::lu_inverse<S>(work, pivot, inverse);
    benchmark::DoNotOptimize(inverse.data());
  }
  set_rate(state, n, 2.0);
}

template <class S>
void BM_inverse_eigen(benchmark::State& state) {
  const index n = state.range(0);
  const suptok::matrix<S> A = block<S>(n);  // row-major, as the stacked blocks of the backward
  suptok::matrix<S> inverse(n, n);
  for (auto _ : state) {
    inverse = Eigen::PartialPivLU<suptok::matrix<S>>(A).inverse();
    benchmark::DoNotOptimize(inverse.data());
  }
  set_rate(state, n, 2.0);
}

template <class S, bool packed>
void BM_gemm_subtract(benchmark::State& state) {
  const index m = state.range(0), k = state.range(1), n = state.range(2);
  const suptok::matrix<S> A = suptok::bench::random_matrix<S>(m, k, 5, 1.0);
  const suptok::matrix<S> B = suptok::bench::random_matrix<S>(k, n, 6, 1.0);
  suptok::matrix<S> C = suptok::bench::random_matrix<S>(m, n, 7, 1.0);
  for (auto _ : state) {
    if constexpr (packed)
      suptok::detail::simd_kernels::packed_gemm_subtract<S>(C.data(), n, A.data(), k, B.data(), n, m, k, n);
    else
      C.noalias() -= A * B;
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(m) * double(k) * double(n) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void trailing_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "k", "n"})->Unit(benchmark::kMicrosecond)->UseRealTime();
  for (index k : {384, 192, 96, 48}) b->Args({768 - k, k, k});
  b->Args({192, 192, 192});
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
BENCHMARK_TEMPLATE(BM_inverse_transpose_simd, float)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_inverse_recursive, float)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_inverse_eigen, float)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_inverse_transpose_simd, double)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_inverse_recursive, double)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_inverse_eigen, double)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_gemm_subtract, float, true)->Apply(trailing_shapes);
BENCHMARK_TEMPLATE(BM_gemm_subtract, float, false)->Apply(trailing_shapes);
BENCHMARK_TEMPLATE(BM_gemm_subtract, double, true)->Apply(trailing_shapes);
BENCHMARK_TEMPLATE(BM_gemm_subtract, double, false)->Apply(trailing_shapes);
