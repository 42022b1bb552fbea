// token_margins(cuda, ...) against the reference in double (barrier_reference.cpp: the library's
// J_t, its pivoted LU and Eigen's JacobiSVD) on seeded inputs: the barrier tests' sweep of shapes
// (barrier_device.hpp; p from 1 to 33, odd and even, so that the round-robin pads a row), a
// problem at p = 128 (the largest, 132 KiB of shared memory in double), both masks, heads of
// scale 0.5 and 3 (det J_t near and below 0), float and double. The outputs are filled with NaN
// first. Exits 77 (ctest: skipped) without a usable GPU.
//
// Tolerances (derived, not yet measured on a GPU). Weyl's inequality bounds a singular value's
// move by the norm of J_t's error; that error is about eps_S times the size of the moments and
// weights that form J_t - I (with the amplification the barrier forward test measured on the
// heads of scale 3, its c_t), and one-sided Jacobi adds a few p eps_S sigma_max:
//   sigma_min, sigma_max, signed_margin:  |x - ref| <= k p eps_S (1 + |J_t - I|_2) c_t,  k = 128
//   kappa:  |x - ref| <= ref (e / sigma_min + e / sigma_max), e the bound above
//   sign equal; log|det J_t| within the barrier forward test's bound (same code)
// Tokens with |det J_t| < e^-5 are left out, as in that test: their sign is ill-conditioned. A
// wrong rotation or an unconverged sweep errs by a fraction of sigma itself: at c_t = 1, more than
// 10^3 times the bound in float at p = 33.
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

template <class S>
struct device_margins {
  index B, N;
  device_buffer<int> sign;
  device_buffer<S> log_abs, sigma_min, signed_margin, sigma_max, kappa;
  device_margins(index B_, index N_)
      : B(B_), N(N_), sign(std::size_t(B_ * N_)), log_abs(std::size_t(B_ * N_)), sigma_min(std::size_t(B_ * N_)),
        signed_margin(std::size_t(B_ * N_)), sigma_max(std::size_t(B_ * N_)), kappa(std::size_t(B_ * N_)) {
    for (const device_buffer<S>* x : {&log_abs, &sigma_min, &signed_margin, &sigma_max, &kappa})
      suptok::detail::cuda_check(cudaMemset(x->data, 0xff, x->size * sizeof(S)), "cudaMemset");
  }
  template <class T>
  suptok::batched_view<T> view(const device_buffer<T>& x) const {
    return {x.data, B, N, 1, N, 1};
  }
  suptok::cuda_token_margins<S> views() const {
    return {view(sign), view(log_abs), view(sigma_min), view(signed_margin), view(sigma_max), view(kappa)};
  }
};

template <class S>
bool check_case(cublasHandle_t blas, const shape& s, suptok::mask m, double head_scale, std::uint64_t seed,
                double& worst_ratio) {
  barrier_problem pb = suptok::test::draw_barrier_problem(s, head_scale, seed);
  const suptok::test::device_barrier_problem<S> device(pb);
  const device_margins<S> outputs(s.B, s.N);
  const suptok::attention_core_params attention{m, 0};
  const suptok::cuda backend{nullptr, blas};
  const suptok::cuda_heads<S> heads = device.heads();
  const std::size_t bytes = suptok::barrier_workspace_bytes(backend, s.B, s.N, heads, attention);
  device_buffer<unsigned char> workspace(bytes);
  suptok::token_margins(backend, outputs.views(), device.U(), heads, attention, workspace.data, bytes);
  suptok::detail::cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  const std::size_t tokens = std::size_t(s.B * s.N);
  const std::vector<int> sign = download(outputs.sign, tokens);
  const std::vector<S> log_abs = download(outputs.log_abs, tokens), sigma_min = download(outputs.sigma_min, tokens),
                       signed_margin = download(outputs.signed_margin, tokens),
                       sigma_max = download(outputs.sigma_max, tokens), kappa = download(outputs.kappa, tokens);
  const suptok::test::token_values ref = suptok::test::reference_barrier(pb, m, 0.0, suptok::test::sweep_extended);
  const double eps = double(std::numeric_limits<S>::epsilon());
  bool ok = true;
  for (std::size_t i = 0; i < tokens; ++i) {
    if (ref.log_abs[i] < -5) continue;  // |det J_t| < e^-5: the sign itself is ill-conditioned
    const double e = 128 * double(s.p) * eps * (1 + ref.spread[i]) * ref.condition[i];
    const auto within = [&](double got, double want, double bound) {
      worst_ratio = std::max(worst_ratio, std::abs(got - want) / bound);
      return std::abs(got - want) <= bound;  // false for NaN
    };
    const double log_bound = 128 * eps * (std::abs(ref.log_abs[i]) + double(s.p)) * ref.condition[i];
    const double kappa_ref = ref.sigma_max[i] / ref.sigma_min[i];
    ok &= sign[i] == ref.sign[i] && within(log_abs[i], ref.log_abs[i], log_bound) &&
          within(sigma_min[i], ref.sigma_min[i], e) && within(sigma_max[i], ref.sigma_max[i], e) &&
          within(signed_margin[i], ref.sign[i] * ref.sigma_min[i], e) &&
          within(kappa[i], kappa_ref, kappa_ref * (e / ref.sigma_min[i] + e / ref.sigma_max[i]));
  }
  return ok;
}

template <class S>
int sweep(cublasHandle_t blas) {
  suptok::test::sweep_tally tally{suptok::test::scalar_name<S>};
  std::uint64_t seed = 1300;
  const auto run = [&](const shape& s, suptok::mask m, double scale) {
    tally.record(check_case<S>(blas, s, m, scale, seed += 10, tally.worst), s, suptok::to_string(m), scale);
  };
  for (suptok::mask m : {suptok::mask::strict, suptok::mask::inclusive}) {
    for (const shape& s : suptok::test::barrier_sweep) run(s, m, 0.5);
    run({2, 40, 6, 2, 4, 4}, m, 3.0);
    run({1, 20, 7, 1, 3, 3}, m, 3.0);
    run({1, 12, 128, 2, 16, 16}, m, 0.5);
  }
  return tally.summary();
}

}  // namespace

int main() {
  return suptok::test::run_barrier_test([](cublasHandle_t blas) { return sweep<float>(blas) + sweep<double>(blas); });
}
