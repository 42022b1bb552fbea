// bench/bench_attention.cpp: causal attention, simd fast path (float, double) and reference (cpu).
//
// Workload: one sequence of N tokens, one head with p = d_k = d_v = d, inclusive causal mask
// (the decoder mask of a masked matmul-softmax-matmul), default temperature sqrt(d).
// Flop counts (written next to each benchmark) count only the N^2 part over the
// pairs = N (N + 1) / 2 (s, t) of the causal past, 2 flops per multiply-add:
//   forward           2 pairs (d_k + d_v)               logits Q K^T, then P V
//   forward+backward  2 pairs (d_k + d_v) + 2 pairs (3 d_k + 2 d_v)
//                     (backward: logits recomputed, dV, dP, dK, dQ; the forward that the simd
//                      backward recomputes internally to get O and lse is not counted)
// The projections (O(N p d)) and the exponentials are not counted.
// Before timing, each (backend, precision, d) is checked once against the reference at
// N = min(N, 256); the process aborts on a mismatch.
//
// Threads: OMP_NUM_THREADS (the single-thread target is measured with OMP_NUM_THREADS=1).
// Run all:          ./bench_attention
// A short subset:   ./bench_attention --benchmark_filter='forward_simd<float>/(256|2048)/64$'
#include <suptok/simd.hpp>

#include "bench_support.hpp"

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <tuple>

namespace {

using suptok::index;
using suptok::bench::random_matrix;


template <class S>
struct workload {
  suptok::matrix<S> U, dMu;  // (N, d)
  suptok::heads<S> hs;       // one head, d_k = d_v = p = d
  suptok::attention_params params{suptok::mask::inclusive, 0};

  workload(index N, index d) : U(random_matrix<S>(N, d, 1, 1.0)), dMu(random_matrix<S>(N, d, 2, 1.0)), hs(1) {
    const double scale = 1 / std::sqrt(double(d));  // logits of order 1
    hs[0] = {random_matrix<S>(d, d, 3, scale), random_matrix<S>(d, d, 4, scale), random_matrix<S>(d, d, 5, scale),
             random_matrix<S>(d, d, 6, scale)};
  }
};

double pairs(index N) { return double(N) * double(N + 1) / 2; }
double forward_flops(index N, index d) { return 2 * pairs(N) * (d + d); }
double forward_backward_flops(index N, index d) { return forward_flops(N, d) + 2 * pairs(N) * (3 * d + 2 * d); }

template <class M>
double rel_diff(const M& x, const M& r) {
  return double((x - r).cwiseAbs().maxCoeff()) / std::max(double(r.cwiseAbs().maxCoeff()), 1e-300);
}

// Checks the simd path against the reference once per (precision, d): mu, and with the backward
// dU and dW; 1e3 eps relative to the largest entry is a sanity bound (tests/simd has the sweep).
template <class S>
void validate_once(index N, index d, bool backward) {
  static std::set<std::tuple<index, bool>> done;
  if (!done.insert({d, backward}).second) return;
  const workload<S> w(std::min<index>(N, 256), d);
  const double tol = 1e3 * std::numeric_limits<S>::epsilon();
  suptok::attention_output<S> out;
  suptok::attention_forward(suptok::simd{}, out, w.U, w.hs, w.params);
  double err = rel_diff(out.mu, suptok::attention_forward<S>(w.U, w.hs, w.params).mu);
  if (backward) {
    suptok::attention_gradients<S> g;
    suptok::attention_backward(suptok::simd{}, g, w.dMu, w.U, w.hs, w.params);
    const suptok::attention_gradients<S> r = suptok::attention_backward<S>(w.dMu, w.U, w.hs, w.params);
    err = std::max({err, rel_diff(g.dU, r.dU), rel_diff(g.dW[0].W_Q, r.dW[0].W_Q), rel_diff(g.dW[0].W_K, r.dW[0].W_K),
                    rel_diff(g.dW[0].W_V, r.dW[0].W_V), rel_diff(g.dW[0].W_O, r.dW[0].W_O)});
  }
  if (!(err <= tol)) {
    std::fprintf(stderr, "bench_attention: simd differs from the reference (d = %ld): %g > %g\n", long(d), err, tol);
    std::abort();
  }
}

void set_counters(benchmark::State& state, index N, double flops) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = suptok::detail::simd_kernels::max_threads();
  state.SetItemsProcessed(state.iterations() * N);  // tokens
}

// Forward: 2 pairs (d_k + d_v) flops.
template <class S>
void forward_simd(benchmark::State& state) {
  const index N = state.range(0), d = state.range(1);
  validate_once<S>(N, d, false);
  const workload<S> w(N, d);
  suptok::attention_output<S> out;
  for (auto _ : state) {
    suptok::attention_forward(suptok::simd{}, out, w.U, w.hs, w.params);
    benchmark::DoNotOptimize(out.mu.data());
  }
  set_counters(state, N, forward_flops(N, d));
}

// Forward then backward: 2 pairs (d_k + d_v) + 2 pairs (3 d_k + 2 d_v) flops.
template <class S>
void forward_backward_simd(benchmark::State& state) {
  const index N = state.range(0), d = state.range(1);
  validate_once<S>(N, d, true);
  const workload<S> w(N, d);
  suptok::attention_output<S> out;
  suptok::attention_gradients<S> grads;
  for (auto _ : state) {
    suptok::attention_forward(suptok::simd{}, out, w.U, w.hs, w.params);
    suptok::attention_backward(suptok::simd{}, grads, w.dMu, w.U, w.hs, out, w.params);
    benchmark::DoNotOptimize(grads.dU.data());
  }
  set_counters(state, N, forward_backward_flops(N, d));
}

// Reference forward, same flop count as forward_simd (it also forms the (N, N) weights).
template <class S>
void forward_reference(benchmark::State& state) {
  const index N = state.range(0), d = state.range(1);
  const workload<S> w(N, d);
  suptok::attention_output<S> out;
  for (auto _ : state) {
    suptok::attention_forward(suptok::cpu{}, out, w.U, w.hs, w.params);
    benchmark::DoNotOptimize(out.mu.data());
  }
  set_counters(state, N, forward_flops(N, d));
}

// Reference forward then backward (the reference backward recomputes its forward), flops as above.
template <class S>
void forward_backward_reference(benchmark::State& state) {
  const index N = state.range(0), d = state.range(1);
  const workload<S> w(N, d);
  suptok::attention_output<S> out;
  suptok::attention_gradients<S> grads;
  for (auto _ : state) {
    suptok::attention_forward(suptok::cpu{}, out, w.U, w.hs, w.params);
    suptok::attention_backward(suptok::cpu{}, grads, w.dMu, w.U, w.hs, w.params);
    benchmark::DoNotOptimize(grads.dU.data());
  }
  set_counters(state, N, forward_backward_flops(N, d));
}

const std::vector<int64_t> sweep_N = {256, 512, 1024, 2048, 4096};
const std::vector<int64_t> sweep_d = {8, 16, 32, 64, 128};

BENCHMARK_TEMPLATE(forward_simd, float)->ArgsProduct({sweep_N, sweep_d})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(forward_backward_simd, float)->ArgsProduct({sweep_N, sweep_d})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(forward_simd, double)->ArgsProduct({{256, 1024, 2048}, {16, 64}})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(forward_backward_simd, double)
    ->ArgsProduct({{256, 1024, 2048}, {16, 64}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(forward_reference, float)->ArgsProduct({{256, 512}, {16, 64}})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(forward_backward_reference, float)
    ->ArgsProduct({{256, 512}, {16, 64}})
    ->Unit(benchmark::kMillisecond);

}  // namespace
