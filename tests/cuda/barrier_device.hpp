// The CUDA barrier tests' problems: seeded inputs (barrier_reference.hpp's barrier_problem) and their
// copies in device memory, rounded to the scalar S as the GPU reads them, U with a padded row
// stride (p + 2) so that the kernels and cuBLAS are exercised through its strides.
#pragma once

#include <suptok/cuda/barrier_plan.hpp>
#include <suptok/cuda/blas.hpp>

#include "barrier_reference.hpp"
#include "device_memory.hpp"
#include "gpu_available.hpp"

#include <cublas_v2.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace suptok::test {

struct barrier_shape {
  index B, N, p, H, d_k, d_v;
};

// The sweep of the barrier tests: one token, the first non-trivial tokens, the moment products'
// row blocks of 256 (N = 256, 257, 300), p from 1 to 33 with d_k != d_v, one to eight heads, one
// to three sequences; n = H d_v from 1 to 128, beyond the 32 up to which cuBLAS's batched LU
// may take another path (the projected form's LU is of size n).
inline constexpr barrier_shape barrier_sweep[] = {{1, 1, 3, 1, 2, 2},     {1, 3, 1, 1, 1, 1},
                                                  {3, 4, 5, 2, 3, 4},     {1, 31, 8, 3, 4, 2},
                                                  {2, 65, 16, 1, 16, 16}, {1, 256, 9, 3, 5, 7},
                                                  {2, 257, 12, 2, 6, 4},  {1, 300, 33, 1, 8, 16},
                                                  {2, 37, 10, 6, 4, 12},  {1, 20, 16, 8, 8, 16}};
// The policies they use: extended with z0 = 0.5 (so that the heads of scale 3 cross it), clamp
// with eps = 0.5, exact.
inline constexpr barrier_params sweep_extended{extension::extended, 1e-8, 0.5};
inline constexpr barrier_params sweep_clamp{extension::clamp, 0.5, 1e-2};
inline constexpr barrier_params sweep_exact{extension::exact, 1e-8, 1e-2};

// A sweep's tally: its cases, failures (each printed with its problem) and the largest error /
// bound met (check functions raise `worst`).
struct sweep_tally {
  const char* type;  // "float" or "double"
  int cases = 0, failures = 0;
  double worst = 0;

  void record(bool ok, const barrier_shape& s, const std::string& what, double head_scale) {
    ++cases;
    if (ok) return;
    ++failures;
    std::printf("FAIL %s %s B=%ld N=%ld p=%ld H=%ld d_k=%ld d_v=%ld scale=%g\n", type, what.c_str(), long(s.B),
                long(s.N), long(s.p), long(s.H), long(s.d_k), long(s.d_v), head_scale);
  }
  // Prints "<type>: <passed> of <cases> cases within tolerance; largest error / bound <worst><extra>"
  // and returns the failures.
  int summary(const std::string& extra = "") const {
    std::printf("%s: %d of %d cases within tolerance; largest error / bound %.3f%s\n", type, cases - failures, cases,
                worst, extra.c_str());
    return failures;
  }
};

template <class S>
constexpr const char* scalar_name = sizeof(S) == 4 ? "float" : "double";

// A barrier test's main: exits 77 (skipped) without a GPU, else runs sweeps(blas) with a cuBLAS
// handle (sweeps returns its failures) and prints PASS or FAIL.
template <class Sweeps>
int run_barrier_test(Sweeps sweeps) {
  if (!gpu_available()) return skip_code;
  cublasHandle_t blas = nullptr;
  detail::cublas_check(cublasCreate(&blas), "cublasCreate");
  const int failures = sweeps(blas);
  cublasDestroy(blas);
  std::printf("%s\n", failures ? "FAIL" : "PASS");
  return failures ? 1 : 0;
}

// U of unit normal entries; the weights of scale head_scale / sqrt(p), so that at head_scale 0.5
// sum_h V_h C_t A_h has norm below about 1 and J_t is well conditioned, and at 3 some det J_t
// fall below 0.
inline barrier_problem draw_barrier_problem(const barrier_shape& s, double head_scale, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const auto draw = [&](index n, double scale) {
    std::vector<double> x(n);
    for (double& e : x) e = scale * normal(gen);
    return x;
  };
  const double w = head_scale / std::sqrt(double(s.p));
  barrier_problem pb{s.B, s.N, s.p, s.H, s.d_k, s.d_v};
  pb.U = draw(s.B * s.N * s.p, 1.0);
  pb.W_Q = draw(s.H * s.d_k * s.p, w);
  pb.W_K = draw(s.H * s.d_k * s.p, w);
  pb.W_V = draw(s.H * s.d_v * s.p, w);
  pb.W_O = draw(s.H * s.p * s.d_v, w);
  return pb;
}

// x becomes what S holds; returns the S values.
template <class S>
std::vector<S> rounded(std::vector<double>& x) {
  std::vector<S> out(x.begin(), x.end());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = double(out[i]);
  return out;
}

// The problem's inputs in device memory (the problem itself rounded to S on construction).
template <class S>
struct device_barrier_problem {
  index B, N, p, H, d_k, d_v, u_stride;
  device_buffer<S> u, wq, wk, wv, wo;

  explicit device_barrier_problem(barrier_problem& pb)
      : B(pb.B), N(pb.N), p(pb.p), H(pb.H), d_k(pb.d_k), d_v(pb.d_v), u_stride(pb.p + 2),
        u(std::size_t(pb.B * pb.N * (pb.p + 2))), wq(pb.W_Q.size()), wk(pb.W_K.size()), wv(pb.W_V.size()),
        wo(pb.W_O.size()) {
    const std::vector<S> dense = rounded<S>(pb.U);
    std::vector<S> padded(std::size_t(B * N * u_stride), S(0));
    for (index r = 0; r < B * N; ++r)
      for (index c = 0; c < p; ++c) padded[std::size_t(r * u_stride + c)] = dense[std::size_t(r * p + c)];
    upload(u, padded);
    upload(wq, rounded<S>(pb.W_Q));
    upload(wk, rounded<S>(pb.W_K));
    upload(wv, rounded<S>(pb.W_V));
    upload(wo, rounded<S>(pb.W_O));
  }

  batched_view<const S> U() const { return {u.data, B, N, p, N * u_stride, u_stride}; }
  cuda_heads<S> heads() const {
    return {{wq.data, H, d_k, p, d_k * p, p},
            {wk.data, H, d_k, p, d_k * p, p},
            {wv.data, H, d_v, p, d_v * p, p},
            {wo.data, H, p, d_v, p * d_v, d_v}};
  }
};

// Device outputs of the per-token barrier: b_t, log|det J_t| and the sign, (B, N, 1) each.
template <class S>
struct device_token_barrier {
  index B, N;
  device_buffer<S> b, log_abs;
  device_buffer<int> sign;
  device_token_barrier(index B_, index N_)
      : B(B_), N(N_), b(std::size_t(B_ * N_)), log_abs(std::size_t(B_ * N_)), sign(std::size_t(B_ * N_)) {}
  cuda_token_barrier<S> views() const {
    return {{b.data, B, N, 1, N, 1}, {log_abs.data, B, N, 1, N, 1}, {sign.data, B, N, 1, N, 1}};
  }
};

}  // namespace suptok::test
