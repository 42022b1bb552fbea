// Benchmarks of the log-barrier penalty (docs/math.md section 3): the simd fast path, forward and
// forward+backward, float (double at a few sizes), over N in {256, ..., 4096} and p in {8, ..., 128};
// the moment accumulation alone at p = 64 (its % of the fp32 FMA peak); the reference backend at
// small sizes for scale. One head, d_k = d_v = p, strict mask, extended policy. Every problem is
// validated against the reference (double, at a reduced N) before timing. The public functions
// measured here send small problems to the reference path (detail::simd_barrier_prefers_reference:
// N < 32; in double N <= 2 p for one head below p = 48 and N <= 4 p otherwise, in float N <= p / 2
// for one head and N <= 2 p for several): in double the sweep's N <= 512 at p = 128 and N = 256 at
// p = 64 are such cases; in float, one head, none of the sweep.
// Run e.g.  OMP_NUM_THREADS=1 ./bench_barrier --benchmark_filter='forward<float>/1024/64'
#include <suptok/simd.hpp>

#include "bench_support.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>

namespace {

using suptok::index;
using suptok::bench::random_matrix;


template <class S>
suptok::heads<S> one_head(index p) {
  const double scale = 0.5 / std::sqrt(double(p));  // ||V C A|| below about 1: J_t feasible
  return {{random_matrix<S>(p, p, 11, scale), random_matrix<S>(p, p, 12, scale), random_matrix<S>(p, p, 13, scale),
           random_matrix<S>(p, p, 14, scale)}};
}

const suptok::barrier_params policy{suptok::extension::extended, 1e-8, 1e-2};

// Flops, strict mask, one head, d_k = p (unpadded, masked entries not counted), as the simd path
// computes them:
//   logits        N^2/2 * 2p, twice (the lse pass and the probability panels)
//   moments       N^2/2 * (p(p+1)/2 + p + 1) * 2   packed second moments, first moments, weight sum
//   per token     C B 2p^3 (one head: J'_t = I - C_t B, B = A V), LU 2p^3/3
double moment_flops(double N, double p) { return N * N / 2 * (p * (p + 1) / 2 + p + 1) * 2; }
double forward_flops(double N, double p) {
  return 2 * (N * N / 2 * 2 * p) + moment_flops(N, p) + N * (2 * p * p * p + 2 * p * p * p / 3);
}
// Backward (on top of its one forward): da = R X^T and E = a^T R (2 moment GEMMs), logits again,
// dQ and dK (N^2/2 * 2p each); per token the inverse J^{-T} (4p^3/3 after the LU), dC = -dJ' B^T
// and G += C_t dJ'_t (2p^3 each).
double backward_flops(double N, double p) {
  return 2 * moment_flops(N, p) + 3 * N * N / 2 * 2 * p + N * (4 * p * p * p / 3 + 4 * p * p * p);
}

// Checks the simd penalty and gradient against the reference in double before any timing, at an N
// the public functions give to the kernels (above detail::simd_barrier_prefers_reference, one head).
void validate(index p) {
  const index N = std::max<index>(100, 4 * p + 1);
  const auto U = random_matrix<double>(N, p, 1, 1.0);
  const auto hs = one_head<double>(p);
  const auto fast = suptok::barrier_penalty_backward(suptok::simd{}, U, hs, policy);
  const auto ref = suptok::barrier_penalty_backward<double>(U, hs, policy);
  const double err = std::abs(fast.penalty - ref.penalty) + (fast.grad.dU - ref.grad.dU).cwiseAbs().maxCoeff();
  if (!(err <= 1e-10 * (1 + ref.grad.dU.cwiseAbs().maxCoeff()))) {
    std::fprintf(stderr, "bench_barrier: simd differs from the reference at p = %ld (error %g)\n", long(p), err);
    std::exit(1);
  }
}

template <class S>
void set_counters(benchmark::State& state, double flops, index N, index p, bool backward) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["workspace_MB"] =
      double(suptok::barrier_workspace_bytes(suptok::simd{}, N, one_head<S>(p), backward)) / 1e6;
}

// The simd penalty (forward) or the penalty and its gradients (backward) at (N, p) = the state's range.
template <class S>
void run_barrier(benchmark::State& state, bool backward) {
  const index N = state.range(0), p = state.range(1);
  validate(p);
  const auto U = random_matrix<S>(N, p, 1, 1.0);
  const auto hs = one_head<S>(p);
  for (auto _ : state) {
    if (backward)
      benchmark::DoNotOptimize(suptok::barrier_penalty_backward(suptok::simd{}, U, hs, policy));
    else
      benchmark::DoNotOptimize(suptok::barrier_penalty(suptok::simd{}, U, hs, policy));
  }
  const double flops = forward_flops(double(N), double(p)) + (backward ? backward_flops(double(N), double(p)) : 0);
  set_counters<S>(state, flops, N, p, backward);
}

template <class S>
void BM_barrier_forward(benchmark::State& state) {
  run_barrier<S>(state, false);
}

template <class S>
void BM_barrier_forward_backward(benchmark::State& state) {
  run_barrier<S>(state, true);
}

// The moment accumulation alone (the lse pass and the packed moment GEMM of simd/barrier_moments.hpp),
// flops moment_flops + both logit passes: compare GFLOP/s with the fp32 FMA peak (about 92 GFLOP/s
// per core).
template <class S>
void BM_barrier_moments(benchmark::State& state) {
  const index N = state.range(0), p = state.range(1);
  const auto U = random_matrix<S>(N, p, 1, 1.0);
  const auto hs = one_head<S>(p);
  suptok::detail::simd_barrier_pass<S> ps;
  suptok::detail::simd_barrier_pack<S>(ps, U);
  suptok::detail::simd_head<S> w;
  std::vector<char> centred;  // tokens given the centred second pass (none expected on these inputs)
  for (auto _ : state) {
    suptok::detail::simd_barrier_moments<S>(w, centred, ps, U, hs[0], suptok::attention_params{});
    benchmark::DoNotOptimize(w.O.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter((moment_flops(double(N), double(p)) + 2 * double(N) * N * p) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["centred"] = double(std::count(centred.begin(), centred.end(), 1));
}

template <class S>
void BM_barrier_reference_forward(benchmark::State& state) {
  const index N = state.range(0), p = state.range(1);
  const auto U = random_matrix<S>(N, p, 1, 1.0);
  const auto hs = one_head<S>(p);
  for (auto _ : state) benchmark::DoNotOptimize(suptok::barrier_penalty<S>(U, hs, policy));
  state.counters["GFLOP/s"] =
      benchmark::Counter(forward_flops(double(N), double(p)) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

template <class S>
void BM_barrier_reference_forward_backward(benchmark::State& state) {
  const index N = state.range(0), p = state.range(1);
  const auto U = random_matrix<S>(N, p, 1, 1.0);
  const auto hs = one_head<S>(p);
  for (auto _ : state) benchmark::DoNotOptimize(suptok::barrier_penalty_backward<S>(U, hs, policy));
  state.counters["GFLOP/s"] =
      benchmark::Counter((forward_flops(double(N), double(p)) + backward_flops(double(N), double(p))) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

// Small problems: the reference path, the simd kernels called directly, and the public simd
// function, which sends N < 32, N <= 2 p (one head, p < 48) and N <= 4 p (otherwise) to the
// reference path (detail::simd_barrier_prefers_reference, chosen from this benchmark). Arguments: N, p, H heads,
// path (0 reference, 1 kernels, 2 public), backward (0 the values b_t, 1 the penalty and its
// gradients).
template <class S>
void BM_barrier_small(benchmark::State& state) {
  const index N = state.range(0), p = state.range(1), H = state.range(2);
  const index path = state.range(3);
  const bool backward = state.range(4) == 1;
  const auto U = random_matrix<S>(N, p, 1, 1.0);
  const double scale = 0.5 / std::sqrt(double(p));
  suptok::heads<S> hs;
  for (index h = 0; h < H; ++h) {
    const std::uint64_t seed = 11 + 4 * std::uint64_t(h);
    hs.push_back({random_matrix<S>(p, p, seed, scale), random_matrix<S>(p, p, seed + 1, scale),
                  random_matrix<S>(p, p, seed + 2, scale), random_matrix<S>(p, p, seed + 3, scale)});
  }
  const suptok::attention_params attention{};
  const index n = suptok::detail::counted_tokens(N, attention.causal_mask);
  for (auto _ : state) {
    if (path == 0 && !backward) {
      benchmark::DoNotOptimize(suptok::barrier_per_token<S>(U, hs, policy, attention));
    } else if (path == 0) {
      benchmark::DoNotOptimize(suptok::barrier_penalty_backward<S>(U, hs, policy, attention));
    } else if (path == 2 && !backward) {
      benchmark::DoNotOptimize(suptok::barrier_per_token(suptok::simd{}, U, hs, policy, attention));
    } else if (path == 2) {
      benchmark::DoNotOptimize(suptok::barrier_penalty_backward(suptok::simd{}, U, hs, policy, attention));
    } else if (!backward) {
      suptok::detail::simd_barrier_pass<S> ps;
      suptok::detail::simd_barrier_forward_sequence<S>(ps, U, hs, policy, attention, false, "U");
      benchmark::DoNotOptimize(ps.b.data());
    } else {
      suptok::detail::simd_barrier_pass<S> ps;
      suptok::matrix<S> dU = suptok::matrix<S>::Zero(N, p);
      suptok::heads<S> dW = suptok::detail::zero_like(hs);
      S sum = S(0);
      suptok::detail::simd_barrier_backward_sequence<S>(sum, dU, dW, ps, U, hs, S(1) / S(n), policy, attention, "U");
      benchmark::DoNotOptimize(dU.data());
    }
  }
}

void small_grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "p", "H", "path", "backward"})->Unit(benchmark::kMicrosecond)->UseRealTime();
  for (index backward : {0, 1})
    for (index N : {16, 32, 64, 128, 256})
      for (index p : {4, 8, 16, 32, 64})
        for (index H : {1, 2})
          for (index path : {0, 1, 2}) b->Args({N, p, H, path, backward});
}

void sweep(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "p"})->Unit(benchmark::kMillisecond)->UseRealTime();
  for (index N : {256, 512, 1024, 2048, 4096})
    for (index p : {8, 16, 32, 64, 128}) b->Args({N, p});
}
void few(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "p"})->Unit(benchmark::kMillisecond)->UseRealTime();
  for (auto [N, p] : {std::pair<index, index>{256, 8}, {512, 32}, {1024, 64}}) b->Args({N, p});
}
void small(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "p"})->Unit(benchmark::kMillisecond)->UseRealTime();
  for (auto [N, p] : {std::pair<index, index>{256, 8}, {256, 16}, {512, 32}}) b->Args({N, p});
}

}  // namespace

BENCHMARK_TEMPLATE(BM_barrier_forward, float)->Apply(sweep);
BENCHMARK_TEMPLATE(BM_barrier_forward_backward, float)->Apply(sweep);
BENCHMARK_TEMPLATE(BM_barrier_forward, double)->Apply(few);
BENCHMARK_TEMPLATE(BM_barrier_forward_backward, double)->Apply(few);
BENCHMARK_TEMPLATE(BM_barrier_moments, float)
    ->ArgNames({"N", "p"})
    ->Args({1024, 64})
    ->Args({2048, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_barrier_small, float)->Apply(small_grid);
BENCHMARK_TEMPLATE(BM_barrier_small, double)->Apply(small_grid);
BENCHMARK_TEMPLATE(BM_barrier_reference_forward, float)->Apply(small);
BENCHMARK_TEMPLATE(BM_barrier_reference_forward_backward, float)->Apply(small);
