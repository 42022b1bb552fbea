// barrier_backward(cuda, ...) in both forms (packed: jacobian_form::general, and projected)
// against the library's reference gradients in double
// (barrier_penalty_batch_backward, barrier_reference.cpp) on seeded inputs: the forward test's
// sweep of shapes (one token, the first non-trivial tokens, the row blocks of 256, p from 1 to 33
// with d_k != d_v, one to eight heads, n = H d_v up to 128), both masks, the three policies, U and dU
// with padded row strides, float and double. db_t = 1 / n on the n counted tokens (t >=
// first_nontrivial) and 0 elsewhere, so that the GPU's gradients are those of the reference's mean
// penalty. The gradients are filled with NaN first: an element left unwritten fails. Exits 77
// (ctest: skipped) without a usable GPU.
//
// Tolerance (derived, not yet measured on a GPU). Each gradient array G (dU, dW_Q, dW_K, dW_V,
// dW_O) must satisfy
//   max_i |G_i - ref_i| <= k eps_S c max_i |ref_i|,   k = 512,
// with c the largest c_t = max(1, |J_t - I|_2 / sigma_min(J_t)) of the counted tokens
// (barrier_reference.hpp; in the projected form c_t of I - K_t, projected_conditions): J_t^{-1}
// carries a relative error of about p eps_S c_t (n eps_S c_t in the projected form), and the sums
// over tokens, keys and the p^2 entries of the products add a few hundred eps_S at these sizes
// (N <= 300, p <= 33). A wrong term or a missed token errs by a fraction of max|ref| itself:
// 1 / (512 eps_f) > 10^4 times the bound in float where c = 1. An all-zero reference (no counted
// token) requires exact zeros.
// The exact policy at heads of scale 3 (some det J_t <= 0, where the reference throws) must give
// NaN weight gradients: the documented result of a c_t that does not exist.
#include <suptok/cuda.hpp>

#include <cublas_v2.h>

#include "barrier_device.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

namespace {

using suptok::index;
using suptok::test::barrier_problem;
using suptok::test::device_buffer;
using suptok::test::download;
using shape = suptok::test::barrier_shape;

// The gradients in device memory, every byte 0xff (NaN) before the call; dU with row stride p + 1.
template <class S>
struct device_gradients {
  index B, N, p, H, d_k, d_v;
  device_buffer<S> dU, dWq, dWk, dWv, dWo;
  explicit device_gradients(const shape& s)
      : B(s.B), N(s.N), p(s.p), H(s.H), d_k(s.d_k), d_v(s.d_v), dU(std::size_t(s.B * s.N * (s.p + 1))),
        dWq(std::size_t(s.H * s.d_k * s.p)), dWk(std::size_t(s.H * s.d_k * s.p)), dWv(std::size_t(s.H * s.d_v * s.p)),
        dWo(std::size_t(s.H * s.p * s.d_v)) {
    for (const device_buffer<S>* x : {&dU, &dWq, &dWk, &dWv, &dWo})
      suptok::detail::cuda_check(cudaMemset(x->data, 0xff, x->size * sizeof(S)), "cudaMemset");
  }
  suptok::cuda_barrier_gradients<S> views() const {
    return {{dU.data, B, N, p, N * (p + 1), p + 1},
            {dWq.data, H, d_k, p, d_k * p, p},
            {dWk.data, H, d_k, p, d_k * p, p},
            {dWv.data, H, d_v, p, d_v * p, p},
            {dWo.data, H, p, d_v, p * d_v, d_v}};
  }
  std::vector<double> U() const {  // (B N, p) dense, from the padded rows
    const std::vector<S> padded = download(dU, dU.size);
    std::vector<double> out;
    for (index r = 0; r < B * N; ++r) out.insert(out.end(), &padded[r * (p + 1)], &padded[r * (p + 1)] + p);
    return out;
  }
};

template <class S>
std::vector<double> widened(const device_buffer<S>& x) {
  const std::vector<S> v = download(x, x.size);
  return {v.begin(), v.end()};
}

// Runs the GPU backward on a problem with db_t = 1 / n on the counted tokens; returns the gradients
// (dU, dW_Q, dW_K, dW_V, dW_O).
template <class S>
suptok::test::gradient_values gpu_gradients(cublasHandle_t blas, barrier_problem& pb, const shape& s, suptok::mask m,
                                            const suptok::barrier_params& barrier, suptok::jacobian_form form) {
  const suptok::test::device_barrier_problem<S> device(pb);
  const suptok::test::device_token_barrier<S> outputs(s.B, s.N);
  const device_gradients<S> grads(s);
  const index first = suptok::first_nontrivial(m), n = s.B * std::max<index>(0, s.N - first);
  std::vector<S> db(std::size_t(s.B * s.N), S(0));
  for (index i = 0; i < s.B * s.N; ++i)
    if (i % s.N >= first) db[std::size_t(i)] = S(1) / S(n);
  device_buffer<S> d_db(db.size());
  suptok::test::upload(d_db, db);
  const suptok::attention_core_params attention{m, 0};
  const suptok::cuda backend{nullptr, blas};
  const suptok::cuda_heads<S> heads = device.heads();
  const std::size_t bytes = suptok::barrier_workspace_bytes(backend, s.B, s.N, heads, attention, true, form);
  device_buffer<unsigned char> workspace(bytes);
  suptok::barrier_backward(backend, grads.views(), outputs.views(), {d_db.data, s.B, s.N, 1, s.N, 1}, device.U(),
                           heads, barrier, attention, workspace.data, bytes, form);
  suptok::detail::cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return {grads.U(), widened(grads.dWq), widened(grads.dWk), widened(grads.dWv), widened(grads.dWo)};
}

// Whether got is within k eps_S c max|want| of want everywhere; worst_ratio collects error / bound.
template <class S>
bool within(const std::vector<double>& got, const std::vector<double>& want, double c, double& worst_ratio) {
  double scale = 0;
  for (double x : want) scale = std::max(scale, std::abs(x));
  const double bound = 512 * double(std::numeric_limits<S>::epsilon()) * c * scale;
  bool ok = got.size() == want.size();
  for (std::size_t i = 0; ok && i < got.size(); ++i) {
    const double error = std::abs(got[i] - want[i]);
    ok = error <= bound;  // false for NaN
    if (bound > 0) worst_ratio = std::max(worst_ratio, error / bound);
  }
  return ok;
}

template <class S>
bool check_case(cublasHandle_t blas, const shape& s, suptok::mask m, const suptok::barrier_params& barrier,
                suptok::jacobian_form form, double head_scale, std::uint64_t seed, double& worst_ratio) {
  barrier_problem pb = suptok::test::draw_barrier_problem(s, head_scale, seed);
  const suptok::test::gradient_values got = gpu_gradients<S>(blas, pb, s, m, barrier, form);
  const suptok::test::gradient_values want = suptok::test::reference_gradients(pb, m, 0.0, barrier);
  const std::vector<double> condition = form == suptok::jacobian_form::projected
                                            ? suptok::test::projected_conditions(pb, m, 0.0)
                                            : suptok::test::reference_barrier(pb, m, 0.0, barrier).condition;
  double c = 1;
  for (index i = 0; i < s.B * s.N; ++i)
    if (i % s.N >= suptok::first_nontrivial(m)) c = std::max(c, condition[std::size_t(i)]);
  bool ok = true;
  ok &= within<S>(got.U, want.U, c, worst_ratio);
  ok &= within<S>(got.W_Q, want.W_Q, c, worst_ratio);
  ok &= within<S>(got.W_K, want.W_K, c, worst_ratio);
  ok &= within<S>(got.W_V, want.W_V, c, worst_ratio);
  ok &= within<S>(got.W_O, want.W_O, c, worst_ratio);
  return ok;
}

// The exact policy where some counted det J_t < 0 (the first seed from `seed` whose reference has a
// counted token of det J_t < -e^-5, so that rounding to S cannot move it across 0): every weight
// gradient holds a NaN.
template <class S>
bool check_infeasible(cublasHandle_t blas, const shape& s, suptok::mask m, suptok::jacobian_form form,
                      std::uint64_t seed) {
  const suptok::barrier_params& exact = suptok::test::sweep_exact;
  for (std::uint64_t tries = 0; tries < 100; ++tries, ++seed) {
    barrier_problem pb = suptok::test::draw_barrier_problem(s, 3.0, seed);
    for (std::vector<double>* x : {&pb.U, &pb.W_Q, &pb.W_K, &pb.W_V, &pb.W_O})
      suptok::test::rounded<S>(*x);  // the reference sees what the GPU will
    const suptok::test::token_values ref = suptok::test::reference_barrier(pb, m, 0.0, exact);
    bool infeasible = false;
    for (index i = 0; i < s.B * s.N; ++i)
      infeasible |= i % s.N >= suptok::first_nontrivial(m) && ref.sign[i] < 0 && ref.log_abs[i] > -5;
    if (!infeasible) continue;
    const suptok::test::gradient_values got = gpu_gradients<S>(blas, pb, s, m, exact, form);
    const auto has_nan = [](const std::vector<double>& x) {
      return std::any_of(x.begin(), x.end(), [](double v) { return std::isnan(v); });
    };
    return has_nan(got.W_Q) && has_nan(got.W_K) && has_nan(got.W_V) && has_nan(got.W_O);
  }
  std::printf("check_infeasible: no seed with an infeasible token\n");
  return false;
}

template <class S>
int sweep(cublasHandle_t blas) {
  suptok::test::sweep_tally tally{suptok::test::scalar_name<S>};
  std::uint64_t seed = 900;
  const suptok::barrier_params &extended = suptok::test::sweep_extended, &clamp = suptok::test::sweep_clamp,
                               &exact = suptok::test::sweep_exact;
  for (suptok::jacobian_form form : {suptok::jacobian_form::general, suptok::jacobian_form::projected}) {
    const std::string form_name = std::string(suptok::to_string(form)) + " ";
    const auto run = [&](const shape& s, suptok::mask m, const suptok::barrier_params& barrier, double scale) {
      const bool ok = check_case<S>(blas, s, m, barrier, form, scale, seed += 10, tally.worst);
      tally.record(ok, s, form_name + suptok::to_string(m) + " " + suptok::to_string(barrier.policy), scale);
    };
    for (suptok::mask m : {suptok::mask::strict, suptok::mask::inclusive}) {
      for (const shape& s : suptok::test::barrier_sweep) run(s, m, extended, 0.5);
      run({2, 33, 7, 2, 3, 5}, m, exact, 0.5);
      // Heads of scale 3 / sqrt(p): some det J_t below z0 = 0.5 and below 0.
      const shape crossing{2, 40, 6, 2, 4, 4};
      for (const suptok::barrier_params& barrier : {extended, clamp}) run(crossing, m, barrier, 3.0);
      tally.record(check_infeasible<S>(blas, crossing, m, form, seed += 10), crossing,
                   form_name + suptok::to_string(m) + " exact, infeasible tokens: expected NaN weight gradients", 3.0);
    }
  }
  return tally.summary();
}

}  // namespace

int main() {
  return suptok::test::run_barrier_test([](cublasHandle_t blas) { return sweep<float>(blas) + sweep<double>(blas); });
}
