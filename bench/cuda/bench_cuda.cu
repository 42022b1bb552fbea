// bench/cuda/bench_cuda.cu: GPU timings of the CUDA backend, the suptok side of the GPU
// comparison that scripts/gpu-check.sh runs next to bench/compare/torch_gpu.py.
//
//   bench_cuda [REPS]     prints one line per workload (exit 77 without a usable GPU):
//   RESULT <workload> <storage> <ms> <GFLOP/s> <workspace MiB>
//
// Each time is the median of REPS (default 20) launches after 3 warm-ups, by CUDA events on one
// stream. Workloads (the shapes of the CUDA issue's targets; inputs N(0, 1), weights as in
// bench/compare/torch_workloads.py):
//   attention_fwd   causal attention forward, inclusive mask (PyTorch's is_causal), 32
//                   sequence-heads of N = 4096, d = 128; flops 2 BH N^2 d (the causal half of
//                   the two products); float storage on the scalar kernel, bf16 on the
//                   tensor-core kernel (cuda::tensor_cores)
//   attention_fwd_scalar  the same in bf16 on the scalar kernel
//   barrier_fwd     barrier forward, packed form, (B = 8, N = 2048, p = 64), one head with
//                   W_V = W_O = I (J_t = I - C_t A), strict mask, exact policy, float; flops: the
//                   moments B N^2 w (w = p (p + 3) / 2, the causal half of the product, a multiply
//                   and an add) plus 4 B N p^3 of block products
//   barrier_fwd_bwd the same forward and barrier_backward(cuda, ...) to U and every weight of the
//                   mean penalty; flops 3 times the forward's (torch_gpu.py's count)
//   barrier_moments the moment products of that forward alone, M = P X for one head (the causal
//                   row blocks of cuBLAS products, detail::causal_moments); flops B N^2 w, for the
//                   issue's target of half the FP32 peak (no PyTorch counterpart)
//   layer_barrier_fwd  barrier forward, projected form, one sequence of a GPT-2-small layer's
//                   shape (N = 1024, p = 768, H = 12, d_k = d_v = 64; no biases: the CUDA heads
//                   take none, PyTorch's adds three vectors), strict mask, exact policy, float;
//                   flops H N^2 d^2 (the value-key moments, causal half) plus 2/3 N n^3 (the LUs,
//                   n = H d), torch_gpu.py's count
//   layer_barrier_fwd_bwd  the same forward and barrier_backward(cuda, ..., projected) to U and
//                   every weight of the mean penalty; flops 3 times the forward's
//   layer_margins   token_margins(cuda, ..., projected) on that layer: sign, log|det J_t|,
//                   sigma_min, sigma_max by 100 steps of each iteration (the default); flops: the
//                   forward's count (no PyTorch counterpart: an exact SVD of 1024 blocks of 768,
//                   torch_workloads.py's projected_layer_analysis, is not timed within the
//                   check's few minutes of GPU time)
#include <suptok/cuda.hpp>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "../../tests/cuda/device_memory.hpp"
#include "../../tests/cuda/gpu_available.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace {

using suptok::index;
using suptok::test::device_buffer;
using suptok::test::upload;

template <class T>
std::vector<T> normal_values(std::size_t n, float stddev, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.f, stddev);
  std::vector<T> x(n);
  for (T& e : x) e = T(normal(gen));
  return x;
}

// Median milliseconds of `reps` runs of `work` on the default stream, after 3 warm-ups.
template <class Work>
double median_ms(int reps, Work work) {
  using suptok::detail::cuda_check;
  for (int i = 0; i < 3; ++i) work();
  cudaEvent_t start, stop;
  cuda_check(cudaEventCreate(&start), "cudaEventCreate");
  cuda_check(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    cuda_check(cudaEventRecord(start), "cudaEventRecord");
    work();
    cuda_check(cudaEventRecord(stop), "cudaEventRecord");
    cuda_check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float elapsed = 0;
    cuda_check(cudaEventElapsedTime(&elapsed, start, stop), "cudaEventElapsedTime");
    ms.push_back(elapsed);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void report(const char* workload, const char* storage, double ms, double flops, std::size_t workspace) {
  std::printf("RESULT %s %s %.4f %.1f %.1f\n", workload, storage, ms, flops / ms * 1e-6,
              double(workspace) / (1 << 20));
  std::fflush(stdout);
}

template <class T>
void attention_fwd(const char* workload, const char* storage, bool tensor_cores, int reps) {
  const index bh = 32, N = 4096, d = 128, n = bh * N * d;
  const std::vector<T> q = normal_values<T>(n, 1.f, 1), k = normal_values<T>(n, 1.f, 2), v = normal_values<T>(n, 1.f, 3);
  device_buffer<T> dq(n), dk(n), dv(n), dout(n);
  device_buffer<float> dlse(bh * N);
  upload(dq, q);
  upload(dk, k);
  upload(dv, v);
  const suptok::batched_view<const T> Q{dq.data, bh, N, d, N * d, d}, K{dk.data, bh, N, d, N * d, d},
      V{dv.data, bh, N, d, N * d, d};
  const suptok::batched_view<T> O{dout.data, bh, N, d, N * d, d};
  const suptok::batched_view<float> lse{dlse.data, bh, N, 1, N, 1};
  const suptok::cuda backend{nullptr, nullptr, tensor_cores};
  const double ms = median_ms(reps, [&] { suptok::attention_forward(backend, O, lse, Q, K, V, {suptok::mask::inclusive, 0}); });
  report(workload, storage, ms, 2.0 * double(bh) * double(N) * double(N) * double(d), 0);
}

// barrier_fwd, or with `backward` barrier_fwd_bwd: the forward and the gradients to U and every
// weight of the mean penalty (db_t = 1 / n on the counted tokens), flops counted as 3 times the
// forward's (torch_gpu.py's convention).
void barrier(bool backward, int reps) {
  const index B = 8, N = 2048, p = 64, w = p * (p + 3) / 2;
  const std::vector<float> u = normal_values<float>(B * N * p, 1.f, 4);
  const std::vector<float> wq = normal_values<float>(p * p, std::sqrt(0.25f / p), 5),
                           wk = normal_values<float>(p * p, std::sqrt(0.25f / p), 6);
  std::vector<float> eye(p * p, 0.f);
  for (index i = 0; i < p; ++i) eye[i * p + i] = 1.f;
  device_buffer<float> dU(u.size()), dWq(wq.size()), dWk(wk.size()), dWv(eye.size()), dWo(eye.size());
  upload(dU, u);
  upload(dWq, wq);
  upload(dWk, wk);
  upload(dWv, eye);
  upload(dWo, eye);
  device_buffer<float> b_out(B * N), log_out(B * N), upstream(B * N);
  device_buffer<int> dsign(B * N);
  const suptok::attention_core_params attention{suptok::mask::strict, 0};
  std::vector<float> db(B * N, 0.f);  // d penalty / d b_t
  for (index i = 0; i < B * N; ++i)
    if (i % N >= suptok::first_nontrivial(attention.causal_mask)) db[i] = 1.f / float(B * (N - 2));
  upload(upstream, db);
  device_buffer<float> gU(u.size()), gWq(wq.size()), gWk(wk.size()), gWv(eye.size()), gWo(eye.size());
  const suptok::batched_view<const float> U{dU.data, B, N, p, N * p, p};
  const auto weights = [&](const float* data) { return suptok::batched_view<const float>{data, 1, p, p, p * p, p}; };
  const auto gradient = [&](float* data) { return suptok::batched_view<float>{data, 1, p, p, p * p, p}; };
  const suptok::cuda_heads<float> heads{weights(dWq.data), weights(dWk.data), weights(dWv.data), weights(dWo.data)};
  const suptok::cuda_token_barrier<float> out{
      {b_out.data, B, N, 1, N, 1}, {log_out.data, B, N, 1, N, 1}, {dsign.data, B, N, 1, N, 1}};
  const suptok::cuda_barrier_gradients<float> grad{
      {gU.data, B, N, p, N * p, p}, gradient(gWq.data), gradient(gWk.data), gradient(gWv.data), gradient(gWo.data)};
  cublasHandle_t blas = nullptr;
  suptok::detail::cublas_check(cublasCreate(&blas), "cublasCreate");
  const suptok::cuda backend{nullptr, blas};
  const std::size_t bytes = suptok::barrier_workspace_bytes(backend, B, N, heads, attention, backward);
  device_buffer<unsigned char> workspace(bytes);
  const double ms = median_ms(reps, [&] {
    if (backward)
      suptok::barrier_backward(backend, grad, out, {upstream.data, B, N, 1, N, 1}, U, heads, suptok::barrier_params{},
                               attention, workspace.data, bytes);
    else
      suptok::barrier_per_token(backend, out, U, heads, suptok::barrier_params{}, attention, workspace.data, bytes);
  });
  cublasDestroy(blas);
  const double flops = double(B) * double(N) * double(N) * double(w) + 4.0 * double(B) * double(N) * double(p * p * p);
  report(backward ? "barrier_fwd_bwd" : "barrier_fwd", "float", ms, backward ? 3 * flops : flops, bytes);
}

// barrier_moments: M = P X (B, N, w) over the causal row blocks, P of softmax-like rows (their
// values do not change the time), X the packed rows of N(0, 1) tokens.
void barrier_moments(int reps) {
  const index B = 8, N = 2048, p = 64, w = p * (p + 3) / 2;
  const std::vector<float> weights = normal_values<float>(B * N * N, 1.f / float(N), 12),
                           rows = normal_values<float>(B * N * w, 1.f, 13);
  device_buffer<float> P(weights.size()), X(rows.size()), M(rows.size()), dummy(p);
  upload(P, weights);
  upload(X, rows);
  cublasHandle_t blas = nullptr;
  suptok::detail::cublas_check(cublasCreate(&blas), "cublasCreate");
  const suptok::batched_view<const float> U{dummy.data, B, N, p, 0, 0};  // extents only
  const suptok::cuda_heads<float> heads{{dummy.data, 1, p, p, 0, 0}, {dummy.data, 1, p, p, 0, 0},
                                        {dummy.data, 1, p, p, 0, 0}, {dummy.data, 1, p, p, 0, 0}};
  const suptok::detail::cuda_barrier_operands<float> operands(suptok::cuda{nullptr, blas}, U, heads,
                                                              {suptok::mask::strict, 0});
  double ms = 0;
  {
    const suptok::detail::blas_scope scope(blas, nullptr);  // the default math mode, as the barrier's calls
    ms = median_ms(reps, [&] { suptok::detail::causal_moments(operands, P.data, X.data, w, M.data); });
  }
  cublasDestroy(blas);
  report("barrier_moments", "float", ms, double(B) * double(N) * double(N) * double(w), 0);
}

// One sequence of a GPT-2-small layer's shape in device memory (no biases: the CUDA heads take
// none), strict mask, and a cuBLAS handle.
struct gpt2_layer {
  static constexpr index N = 1024, p = 768, H = 12, d = 64, n = H * d;
  device_buffer<float> u{N * p}, wq{H * d * p}, wk{H * d * p}, wv{H * d * p}, wo{H * p * d};
  const suptok::attention_core_params attention{suptok::mask::strict, 0};
  cublasHandle_t blas = nullptr;

  gpt2_layer() {
    upload(u, normal_values<float>(N * p, 1.f, 7));
    upload(wq, normal_values<float>(H * d * p, 0.05f, 8));
    upload(wk, normal_values<float>(H * d * p, 0.05f, 9));
    upload(wv, normal_values<float>(H * d * p, 0.05f, 10));
    upload(wo, normal_values<float>(H * p * d, 0.02f, 11));
    suptok::detail::cublas_check(cublasCreate(&blas), "cublasCreate");
  }
  ~gpt2_layer() { cublasDestroy(blas); }
  gpt2_layer(const gpt2_layer&) = delete;
  gpt2_layer& operator=(const gpt2_layer&) = delete;

  suptok::batched_view<const float> U() const { return {u.data, 1, N, p, N * p, p}; }
  suptok::cuda_heads<float> heads() const {
    const auto rows = [](const float* data) { return suptok::batched_view<const float>{data, H, d, p, d * p, p}; };
    return {rows(wq.data), rows(wk.data), rows(wv.data), {wo.data, H, p, d, p * d, d}};
  }
  // The forward's flops: the value-key moments (causal half) and the LUs, torch_gpu.py's count.
  static double forward_flops() {
    return double(H) * double(N) * double(N) * double(d * d) + double(N) * 2.0 / 3.0 * std::pow(double(n), 3);
  }
};

// layer_barrier_fwd, or with `backward` layer_barrier_fwd_bwd: the projected form at GPT-2-small's
// width, the backward to U and every weight of the mean penalty.
void layer_barrier(bool backward, int reps) {
  const gpt2_layer layer;
  const index N = gpt2_layer::N, p = gpt2_layer::p, H = gpt2_layer::H, d = gpt2_layer::d;
  device_buffer<float> b_out(N), log_out(N), upstream(N);
  device_buffer<int> dsign(N);
  std::vector<float> db(N, 0.f);  // d penalty / d b_t
  for (index t = suptok::first_nontrivial(layer.attention.causal_mask); t < N; ++t) db[t] = 1.f / float(N - 2);
  upload(upstream, db);
  device_buffer<float> gU(N * p), gWq(H * d * p), gWk(H * d * p), gWv(H * d * p), gWo(H * p * d);
  const auto grad_rows = [&](float* data) { return suptok::batched_view<float>{data, H, d, p, d * p, p}; };
  const suptok::cuda_token_barrier<float> out{{b_out.data, 1, N, 1, N, 1}, {log_out.data, 1, N, 1, N, 1},
                                              {dsign.data, 1, N, 1, N, 1}};
  const suptok::cuda_barrier_gradients<float> grad{
      {gU.data, 1, N, p, N * p, p}, grad_rows(gWq.data), grad_rows(gWk.data), grad_rows(gWv.data),
      {gWo.data, H, p, d, p * d, d}};
  const suptok::jacobian_form form = suptok::jacobian_form::projected;
  const suptok::cuda backend{nullptr, layer.blas};
  const std::size_t bytes =
      suptok::barrier_workspace_bytes(backend, 1, N, layer.heads(), layer.attention, backward, form);
  device_buffer<unsigned char> workspace(bytes);
  const double ms = median_ms(std::max(3, reps / 4), [&] {
    if (backward)
      suptok::barrier_backward(backend, grad, out, {upstream.data, 1, N, 1, N, 1}, layer.U(), layer.heads(),
                               suptok::barrier_params{}, layer.attention, workspace.data, bytes, form);
    else
      suptok::barrier_per_token(backend, out, layer.U(), layer.heads(), suptok::barrier_params{}, layer.attention,
                                workspace.data, bytes, form);
  });
  const double flops = gpt2_layer::forward_flops();
  report(backward ? "layer_barrier_fwd_bwd" : "layer_barrier_fwd", "float", ms, backward ? 3 * flops : flops, bytes);
}

// layer_margins: every token's margins at GPT-2-small's width, projected form, default iteration.
void layer_margins() {
  const gpt2_layer layer;
  const index N = gpt2_layer::N;
  device_buffer<int> sign(N);
  device_buffer<float> log_abs(N), sigma_min(N), signed_margin(N), sigma_max(N), kappa(N);
  const auto column = [&](float* data) { return suptok::batched_view<float>{data, 1, N, 1, N, 1}; };
  const suptok::cuda_token_margins<float> out{{sign.data, 1, N, 1, N, 1}, column(log_abs.data),
                                              column(sigma_min.data),     column(signed_margin.data),
                                              column(sigma_max.data),     column(kappa.data)};
  const suptok::jacobian_form form = suptok::jacobian_form::projected;
  const suptok::cuda backend{nullptr, layer.blas};
  const std::size_t bytes = suptok::margins_workspace_bytes(backend, 1, N, layer.heads(), layer.attention, form);
  device_buffer<unsigned char> workspace(bytes);
  const double ms = median_ms(3, [&] {
    suptok::token_margins(backend, out, layer.U(), layer.heads(), layer.attention, workspace.data, bytes, form);
  });
  report("layer_margins", "float", ms, gpt2_layer::forward_flops(), bytes);
}

}  // namespace

int main(int argc, char** argv) {
  if (!suptok::test::gpu_available()) return suptok::test::skip_code;
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  if (reps < 1) {
    std::fprintf(stderr, "bench_cuda: REPS must be a positive integer, got %s\n", argv[1]);
    return 2;
  }
  attention_fwd<float>("attention_fwd", "float", false, reps);
  attention_fwd<__nv_bfloat16>("attention_fwd", "bf16", true, reps);
  attention_fwd<__nv_bfloat16>("attention_fwd_scalar", "bf16", false, reps);
  barrier(false, reps);
  barrier(true, reps);
  barrier_moments(reps);
  layer_barrier(false, reps);
  layer_barrier(true, reps);
  layer_margins();
  return 0;
}
