// bench/compare/suptok_workloads.cpp: the library side of the PyTorch comparison (compare.sh).
//
// One process runs one workload on inputs written by torch_workloads.py (raw little-endian
// float32, in the order listed below), times it (warm-up, then the median of `reps` timed
// repetitions, wall clock) and writes its outputs (raw float32) for the driver to compare with
// PyTorch's. Threads: OMP_NUM_THREADS.
//
//   barrier_fwd      penalty = mean over sequences b and tokens t >= 2 (0-based) of -log det J_bt,
//   barrier_fwd_bwd  J_t = I - C_t A (strict mask, one head, V = W_O W_V = I with W_V = W_O = I,
//                    d_k = d_v = p, tau = sqrt(p), exact policy), and its gradients (U, W_Q, W_K)
//                    inputs: U (B, N, p), W_Q (p, p), W_K (p, p)
//                    outputs: penalty [, dU (B, N, p), dW_Q (p, p), dW_K (p, p)]
//                    both pass one barrier_workspace to the warm-up and every timed run
//   attention_fwd    mu = softmax(Q K^T / sqrt(d), inclusive causal mask) (U W_V^T) W_O^T, one head
//   attention_fwd_bwd  and the gradients of <dMu, mu> (U, W_Q, W_K, W_V, W_O); B = 1, p = d
//                    inputs: U (N, d), W_Q, W_K, W_V, W_O (d, d), dMu (N, d)
//                    outputs: mu (N, d) [, dU (N, d), dW_Q, dW_K, dW_V, dW_O (d, d)]
//                    both pass one attention_workspace to the warm-up and every timed run
//   layer_barrier_fwd  b_t = -log det J_t for t = 2..N-1 of one sequence under a GPT-2-shaped layer
//                    (H = p / 64 heads of width 64, biases on Q, K, V; strict mask, tau = 8, exact
//                    policy), projected form: barrier_per_token(simd{}, U, layer, ...)
//                    inputs: U (N, p), W_Q, W_K, W_V (H, 64, p), W_O (H, p, 64), b_Q, b_K, b_V (H, 64)
//                    outputs: b (N - 2)
//   layer_barrier_fwd_bwd  the penalty (mean of b_t over t = 2..N-1) of that layer and its
//                    gradients: barrier_penalty_backward(simd{}, U, layer, ...); inputs as
//                    layer_barrier_fwd; outputs: penalty, dU (N, p), dW_Q, dW_K, dW_V (H, 64, p),
//                    dW_O (H, p, 64), db_Q (H, 64) (those of b_K and b_V are 0 in exact arithmetic)
//   layer_analysis   analyse(simd{}, U, layer, options) for the layer of layer_barrier_fwd (margins
//                    estimated, support tokens: signed margin <= 0.1); inputs as layer_barrier_fwd
//                    outputs: b (N - 2), sigma_min (N - 2) of t = 2..N-1
//   llama_layer_barrier_fwd  as layer_barrier_fwd for a Llama-shaped layer with no PyTorch side:
//                    H = p / 128 query heads of width 128 sharing H / 4 key/value heads, rotary
//                    embeddings (theta 500000), no biases; seeded weights of standard deviation
//                    0.02 and U ~ N(0, 1) made here (INPUTS and OUTPUTS are ignored); prints the
//                    number of infeasible tokens (t >= 2) and the range and mean of the other b_t
//   llama_layer_analysis  analyse(simd{}, U, layer, options) for that layer (margins estimated,
//                    support tokens: signed margin <= 0.1); prints the support and infeasible
//                    counts and the range of sigma_min over t >= 2
//   fma_peak         no inputs or outputs: the fp32 FMA rate of one thread (GFLOP/s, printed), from
//                    independent fused multiply-adds on registers of the widest vectors the build
//                    targets (xsimd's default architecture)
//   baseline         reads nothing, computes nothing: the empty-process resident set
//
// Usage: suptok_workloads WORKLOAD B N p REPS INPUTS OUTPUTS
// Prints: RESULT side=suptok workload=... B=.. N=.. p=.. threads=.. median_ms=.. times_ms=a,b,..
#include <suptok/simd.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using suptok::index;
using mat = suptok::matrix<float>;

// Sequential reader of the raw float32 input file; every read states the shape it expects.
struct reader {
  std::vector<float> data;
  std::size_t pos = 0;

  explicit reader(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open inputs " + path);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    data.resize(bytes.size() / sizeof(float));
    std::copy(bytes.begin(), bytes.begin() + std::ptrdiff_t(data.size() * sizeof(float)),
              reinterpret_cast<char*>(data.data()));
  }
  mat next(index rows, index cols) {
    const std::size_t n = std::size_t(rows * cols);
    if (pos + n > data.size()) throw std::runtime_error("inputs file too short for the requested shapes");
    mat m = Eigen::Map<const mat>(data.data() + pos, rows, cols);
    pos += n;
    return m;
  }
  void expect_end() const {
    if (pos != data.size()) throw std::runtime_error("inputs file longer than the requested shapes");
  }
};

struct writer {
  std::ofstream out;
  explicit writer(const std::string& path) : out(path, std::ios::binary) {
    if (!out) throw std::runtime_error("cannot open outputs " + path);
  }
  void put(const mat& m) { out.write(reinterpret_cast<const char*>(m.data()), std::streamsize(m.size() * sizeof(float))); }
  void put(float x) { out.write(reinterpret_cast<const char*>(&x), sizeof(float)); }
};

// Warm-up, then `reps` timed runs; returns the times in ms.
std::vector<double> time_runs(int reps, const std::function<void()>& run) {
  run();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return ms;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The barrier head: W_Q, W_K from the inputs, W_V = W_O = I (V = I, d_v = p).
suptok::heads<float> barrier_head(reader& in, index p) {
  suptok::heads<float> hs(1);
  hs[0].W_Q = in.next(p, p);
  hs[0].W_K = in.next(p, p);
  hs[0].W_V = mat::Identity(p, p);
  hs[0].W_O = mat::Identity(p, p);
  return hs;
}

std::vector<double> run_barrier(bool backward, index B, index N, index p, int reps, reader& in, writer& out) {
  std::vector<mat> Us;
  for (index b = 0; b < B; ++b) Us.push_back(in.next(N, p));  // (N, p) each
  const suptok::heads<float> hs = barrier_head(in, p);
  in.expect_end();
  const suptok::barrier_params bp{suptok::extension::exact};
  const suptok::attention_params ap{suptok::mask::strict, 0};  // tau = sqrt(p)
  const std::span<const mat> span(Us);
  if (!backward) {
    float penalty = 0;
    suptok::barrier_workspace<float> ws;  // kept across the runs, as a training loop would keep it
    const auto ms =
        time_runs(reps, [&] { penalty = suptok::barrier_penalty_batch(suptok::simd{}, span, hs, bp, ap, ws); });
    out.put(penalty);
    return ms;
  }
  suptok::barrier_gradients<float, suptok::attention_batch_gradients<float>> g;
  suptok::barrier_workspace<float> ws;
  const auto ms =
      time_runs(reps, [&] { g = suptok::barrier_penalty_batch_backward(suptok::simd{}, span, hs, bp, ap, ws); });
  out.put(g.penalty);
  for (const mat& dU : g.grad.dU) out.put(dU);
  out.put(g.grad.dW[0].W_Q);
  out.put(g.grad.dW[0].W_K);
  return ms;
}

std::vector<double> run_attention(bool backward, index N, index d, int reps, reader& in, writer& out) {
  const mat U = in.next(N, d);
  suptok::heads<float> hs(1);
  hs[0].W_Q = in.next(d, d);
  hs[0].W_K = in.next(d, d);
  hs[0].W_V = in.next(d, d);
  hs[0].W_O = in.next(d, d);
  const mat dMu = in.next(N, d);
  in.expect_end();
  const suptok::attention_params ap{suptok::mask::inclusive, 0};  // tau = sqrt(d)
  suptok::attention_output<float> o;
  suptok::attention_gradients<float> g;
  suptok::attention_workspace<float> ws;  // buffers kept from the warm-up to the timed runs
  const auto ms = time_runs(reps, [&] {
    suptok::attention_forward(suptok::simd{}, o, U, hs, ap, ws);
    if (backward) suptok::attention_backward(suptok::simd{}, g, dMu, U, hs, o, ap, ws);  // reuses o's lse and O
  });
  out.put(o.mu);
  if (backward) {
    out.put(g.dU);
    for (const mat* m : {&g.dW[0].W_Q, &g.dW[0].W_K, &g.dW[0].W_V, &g.dW[0].W_O}) out.put(*m);
  }
  return ms;
}

// 12 independent accumulators (more than the FMA latency 4 x 2 pipes), `reps` timed rounds of 2^24
// steps; the inner loop is unrolled so that the accumulators stay in registers. With the two
// constants they fit in the 16 vector registers of AVX2: 16 accumulators spilled there and
// measured 64 instead of 105 GFLOP/s (a Zen 5 built for x86-64-v3; 211 either way with AVX-512).
std::vector<double> run_fma_peak(int reps) {
  using batch = xsimd::batch<float>;
  constexpr int chains = 12;
  constexpr long steps = 1L << 24;
  const batch a(1.0f + 1e-7f), b(1e-7f);
  float sink = 0;
  const auto ms = time_runs(reps, [&] {
    std::array<batch, chains> acc;
    for (int c = 0; c < chains; ++c) acc[c] = batch(float(c));
    for (long i = 0; i < steps; ++i) {
#pragma GCC unroll 16
      for (int c = 0; c < chains; ++c) acc[c] = xsimd::fma(acc[c], a, b);
    }
    for (int c = 0; c < chains; ++c) sink += xsimd::hadd(acc[c]);
  });
  const double flops = 2.0 * double(steps) * chains * double(batch::size);
  std::printf("FMA_PEAK lanes=%d gflops=%.1f (sink %g)\n", int(batch::size), flops / (median(ms) * 1e6), double(sink));
  return ms;
}

// The GPT-2-shaped layer of the layer workloads: H = p / 64 heads of width 64, biases on Q, K, V.
suptok::layer<float> read_layer(index p, reader& in) {
  const index H = p / 64, d = 64;
  suptok::layer<float> l;
  for (auto* W : {&l.W_Q, &l.W_K, &l.W_V})
    for (index h = 0; h < H; ++h) W->push_back(in.next(d, p));
  for (index h = 0; h < H; ++h) l.W_O.push_back(in.next(p, d));
  for (auto* b : {&l.b_Q, &l.b_K, &l.b_V})
    for (index h = 0; h < H; ++h) b->push_back(in.next(d, 1));
  return l;
}

enum class layer_run { barrier, gradients, analysis };

std::vector<double> run_layer(layer_run what, index N, index p, int reps, reader& in, writer& out) {
  const mat U = in.next(N, p);
  const suptok::layer<float> l = read_layer(p, in);
  in.expect_end();
  const suptok::barrier_params bp{suptok::extension::exact};
  const suptok::attention_params ap{suptok::mask::strict, 0};  // tau = sqrt(64)
  if (what == layer_run::barrier) {
    std::vector<float> b;
    const auto ms = time_runs(reps, [&] { b = suptok::barrier_per_token(suptok::simd{}, U, l, bp, ap); });
    for (std::size_t t = 2; t < b.size(); ++t) out.put(b[t]);
    return ms;
  }
  if (what == layer_run::gradients) {
    suptok::barrier_gradients<float, suptok::layer_gradients<float>> g;
    const auto ms = time_runs(reps, [&] { g = suptok::barrier_penalty_backward(suptok::simd{}, U, l, bp, ap); });
    out.put(g.penalty);
    out.put(g.grad.dU);
    for (const auto* list : {&g.grad.dW.W_Q, &g.grad.dW.W_K, &g.grad.dW.W_V, &g.grad.dW.W_O})
      for (const mat& W : *list) out.put(W);
    for (const auto& b : g.grad.dW.b_Q) out.put(mat(b.transpose()));
    return ms;
  }
  suptok::analysis_options o;
  o.attention = ap;
  o.barrier = bp;
  o.support = suptok::support_rule::within(0.1);
  suptok::analysis<float> r;
  const auto ms = time_runs(reps, [&] { r = suptok::analyse(suptok::simd{}, U, l, o); });
  for (std::size_t t = 2; t < r.tokens.size(); ++t) out.put(r.tokens[t].b);
  for (std::size_t t = 2; t < r.tokens.size(); ++t) out.put(r.tokens[t].sigma_min);
  std::printf("ANALYSIS form %s: %ld support tokens, %ld infeasible\n", suptok::to_string(r.form), long(r.support_count),
              long(r.infeasible_count));
  return ms;
}

std::vector<double> run_llama_layer(bool analysis, index N, index p, int reps) {
  const index H = p / 128, G = H / 4, d = 128;
  std::mt19937_64 gen(20261203);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const auto random = [&](index rows, index cols, float scale) {
    mat m(rows, cols);
    for (index i = 0; i < m.size(); ++i) m.data()[i] = scale * normal(gen);
    return m;
  };
  suptok::layer<float> l;
  for (index h = 0; h < H; ++h) l.W_Q.push_back(random(d, p, 0.02f)), l.W_O.push_back(random(p, d, 0.02f));
  for (index g = 0; g < G; ++g) l.W_K.push_back(random(d, p, 0.02f)), l.W_V.push_back(random(d, p, 0.02f));
  l.rope_theta = 500000;
  const mat U = random(N, p, 1.0f);
  const suptok::barrier_params bp{suptok::extension::exact};
  const suptok::attention_params ap{suptok::mask::strict, 0};  // tau = sqrt(128)
  std::vector<float> b, sigma_min;
  std::vector<double> ms;
  if (analysis) {
    suptok::analysis_options o;
    o.attention = ap;
    o.barrier = bp;
    o.support = suptok::support_rule::within(0.1);
    suptok::analysis<float> r;
    ms = time_runs(reps, [&] { r = suptok::analyse(suptok::simd{}, U, l, o); });
    for (const auto& row : r.tokens) b.push_back(row.b), sigma_min.push_back(row.sigma_min);
    std::printf("ANALYSIS form %s: %ld support tokens, %ld infeasible; sigma_min over t >= 2 in [%g, %g]\n",
                suptok::to_string(r.form), long(r.support_count), long(r.infeasible_count),
                double(*std::min_element(sigma_min.begin() + 2, sigma_min.end())),
                double(*std::max_element(sigma_min.begin() + 2, sigma_min.end())));
  } else {
    ms = time_runs(reps, [&] { b = suptok::barrier_per_token(suptok::simd{}, U, l, bp, ap); });
  }
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  index infeasible = 0;  // det J_t <= 0: b_t = +inf under the exact policy
  for (auto it = b.begin() + 2; it != b.end(); ++it) {
    if (!std::isfinite(*it)) {
      ++infeasible;
      continue;
    }
    lo = std::min(lo, double(*it));
    hi = std::max(hi, double(*it));
    sum += *it;
  }
  std::printf("LAYER H=%ld G=%ld d=%ld: %ld of %ld tokens infeasible; finite b_t in [%g, %g], mean %g\n", long(H),
              long(G), long(d), long(infeasible), long(N - 2), lo, hi, sum / double(N - 2 - infeasible));
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s WORKLOAD B N p REPS INPUTS OUTPUTS\n", argv[0]);
    return 2;
  }
  const std::string workload = argv[1];
  const suptok::index B = std::atol(argv[2]), N = std::atol(argv[3]), p = std::atol(argv[4]);
  const int reps = std::atoi(argv[5]);
  try {
    std::vector<double> ms;
    if (workload == "baseline") {
      ms = {0.0};
    } else if (workload == "fma_peak") {
      ms = run_fma_peak(reps);
    } else if ((workload == "llama_layer_barrier_fwd" || workload == "llama_layer_analysis") && B == 1 &&
               p % 512 == 0 && N > 2) {
      ms = run_llama_layer(workload == "llama_layer_analysis", N, p, reps);
    } else {
      reader in(argv[6]);
      writer out(argv[7]);
      if (workload == "barrier_fwd" || workload == "barrier_fwd_bwd")
        ms = run_barrier(workload == "barrier_fwd_bwd", B, N, p, reps, in, out);
      else if (workload.starts_with("layer_") && B == 1 && p % 64 == 0)
        ms = run_layer(workload == "layer_analysis"          ? layer_run::analysis
                       : workload == "layer_barrier_fwd_bwd" ? layer_run::gradients
                       : workload == "layer_barrier_fwd"     ? layer_run::barrier
                                                             : throw std::runtime_error("unknown workload " + workload),
                       N, p, reps, in, out);
      else if ((workload == "attention_fwd" || workload == "attention_fwd_bwd") && B == 1)
        ms = run_attention(workload == "attention_fwd_bwd", N, p, reps, in, out);
      else
        throw std::runtime_error("unknown workload " + workload +
                                 " (or B != 1 for attention and the layer, or p not a multiple of 64)");
    }
    std::printf("RESULT side=suptok workload=%s B=%ld N=%ld p=%ld threads=%d median_ms=%.4f times_ms=",
                workload.c_str(), long(B), long(N), long(p), suptok::detail::simd_kernels::max_threads(), median(ms));
    for (std::size_t i = 0; i < ms.size(); ++i) std::printf("%s%.4f", i ? "," : "", ms[i]);
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "suptok_workloads: %s\n", e.what());
    return 1;
  }
  return 0;
}
