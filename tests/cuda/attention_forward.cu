// attention_forward(cuda, ...) against an independent host evaluation in double, on seeded
// inputs over a sweep of shapes: every query and key tile edge (N around 32 and 64), d_k and d_v
// below, at and above a warp's 32 columns up to the largest d_v, one and three sequence-heads,
// both masks, float, bf16 and fp16 storage, strided views. A second sweep, bf16 and fp16 only,
// with cuda::tensor_cores set (the default), takes the tensor-core kernel (d_k = d_v in {64, 128}, rows on 16 bytes): every 64-tile edge
// (N = 1, 2, 63, 64, 65, 127, 128, 129, 200, 300), dense and padded strides, and one padded layout
// off the 16-byte rule, which must fall back to the scalar kernel. Each case checks which kernel
// attention_uses_mma picks. Exits 77 (ctest: skipped) without a usable GPU.
//
// Tolerances (derived; for the scalar kernel measured on an H200 on 2026-12-04: the largest error
// 0.11, 0.99 and 0.96 of its bound in float, bf16 and fp16; the tensor-core kernel's 0.98 in bf16
// and 0.89 in fp16). The reference takes the inputs as the kernel
// reads them (rounded to the storage type), so what is compared is the kernel's float arithmetic
// and the rounding of its outputs:
//   lse: |lse - ref| <= k eps_f (1 + max_s |l_ts|)       the logits carry d_k-long dot products
//   O:   |O_t - ref| <= k eps_f max|V| (1 + max|l_ts|) + u_T |ref|   u_T: the storage's unit roundoff
// with k = 8 + d_k / 8 (a float dot product of length d_k errs by up to d_k eps relative to
// sum |q_c k_c|, and by about sqrt(d_k) eps typically).
// The tensor-core kernel also rounds the weights p_ts = exp(l_ts - m) in [0, 1] to T before
// P V (the sum l_t = sum_s p_ts stays in float): p^_ts = p_ts (1 + d_s) + e_s, |d_s| <= u_T, and
// |e_s| <= 2^-25 for fp16, whose subnormals below 2^-14 carry an absolute error (0 for bf16, which
// has float's exponent range). So sum_s p^_ts V_s / l_t errs from O_t by at most
//   u_T sum_s p_ts |V_s| / l_t + |P(t)| 2^-25 max|V| / l_t <= (u_T + |P(t)| 2^-25) max|V|
// (l_t >= 1: its largest term is exp(0)), added to the O bound: 2^15 eps_f max|V| in bf16 and
// (2^12 + |P(t)| / 4) eps_f max|V| in fp16. With N(0, 1) entries max|V| is about 4, so the bound
// is about 0.02 (bf16) and 0.003 (fp16) plus u_T |ref|, while a wrong mask, row or fragment puts
// a wrong V_s with weight of order 1 / |P(t)| into the first rows: errors of order 0.1 to 1.
#include <suptok/cuda.hpp>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "device_memory.hpp"
#include "gpu_available.hpp"
#include "storage_types.hpp"

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <random>
#include <type_traits>
#include <vector>

namespace {

using suptok::index;
using suptok::test::device_buffer;
using suptok::test::download;
using suptok::test::upload;
using suptok::test::eps_f;
using suptok::test::load;
using suptok::test::store;
using suptok::test::type_name;
using suptok::test::unit_roundoff;


// Absolute error of rounding a p in [0, 1] to T below its normal range (fp16's subnormals).
template <class T>
constexpr double subnormal_error = std::is_same_v<T, __half> ? 1.0 / (1 << 25) : 0.0;

// pad: the row stride is cols + pad and the batch stride N (cols + pad) + pad, so that the strides
// are exercised. mma: whether attention_uses_mma must pick the tensor-core kernel.
struct shape {
  index bh, N, d_k, d_v, pad = 3;
  bool mma = false;
};

// One case: inputs of N(0, 1) entries in storage T, laid out as the shape says; returns whether it
// took the expected kernel and is within tolerance.
template <class T>
bool check_case(const shape& s, bool tensor_cores, suptok::mask m, std::uint64_t seed, double& worst_ratio) {
  const index ks = s.d_k + s.pad, vs = s.d_v + s.pad, kb = s.N * ks + s.pad, vb = s.N * vs + s.pad;
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  const auto draw = [&](index n) {
    std::vector<T> x(n);
    for (T& e : x) e = store<T>(normal(gen));
    return x;
  };
  const std::vector<T> q = draw(s.bh * kb), k = draw(s.bh * kb), v = draw(s.bh * vb);
  device_buffer<T> dq(q.size()), dk(k.size()), dv(v.size()), dout(s.bh * vb);
  device_buffer<float> dlse(s.bh * s.N);
  upload(dq, q);
  upload(dk, k);
  upload(dv, v);
  const suptok::batched_view<const T> Q{dq.data, s.bh, s.N, s.d_k, kb, ks};
  const suptok::batched_view<const T> K{dk.data, s.bh, s.N, s.d_k, kb, ks};
  const suptok::batched_view<const T> V{dv.data, s.bh, s.N, s.d_v, vb, vs};
  const suptok::batched_view<T> O{dout.data, s.bh, s.N, s.d_v, vb, vs};
  const suptok::batched_view<float> lse{dlse.data, s.bh, s.N, 1, s.N, 1};
  const bool mma = (std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>) && tensor_cores &&
                   suptok::detail::attention_uses_mma(O, Q, K, V);
  suptok::attention_forward(suptok::cuda{nullptr, nullptr, tensor_cores}, O, lse, Q, K, V, {m, 0});
  suptok::detail::cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  const std::vector<T> out = download(dout, s.bh * vb);
  const std::vector<float> lse_out = download(dlse, s.bh * s.N);

  const double inv_tau = 1.0 / std::sqrt(double(s.d_k));
  const double k_eps = (8.0 + double(s.d_k) / 8) * eps_f;
  double max_v = 0;
  for (const T& e : v) max_v = std::max(max_v, std::abs(load(e)));
  bool ok = mma == s.mma;
  for (index b = 0; b < s.bh; ++b)
    for (index t = 0; t < s.N; ++t) {
      const index past = suptok::past_end(t, m);
      std::vector<double> l(past);
      double l_max = -INFINITY, abs_max = 0;
      for (index j = 0; j < past; ++j) {
        double dot = 0;
        for (index c = 0; c < s.d_k; ++c) dot += load(q[b * kb + t * ks + c]) * load(k[b * kb + j * ks + c]);
        l[j] = dot * inv_tau;
        l_max = std::max(l_max, l[j]);
        abs_max = std::max(abs_max, std::abs(l[j]));
      }
      double sum = 0;
      for (index j = 0; j < past; ++j) sum += std::exp(l[j] - l_max);
      const double got_lse = lse_out[b * s.N + t];
      if (past == 0) {
        ok &= std::isinf(got_lse) && got_lse < 0;
      } else {
        const double ref_lse = l_max + std::log(sum);
        const double bound = k_eps * (1 + abs_max);
        worst_ratio = std::max(worst_ratio, std::abs(got_lse - ref_lse) / bound);
        ok &= std::abs(got_lse - ref_lse) <= bound;
      }
      for (index c = 0; c < s.d_v; ++c) {
        double ref = 0;
        for (index j = 0; j < past; ++j) ref += std::exp(l[j] - l_max) / sum * load(v[b * vb + j * vs + c]);
        const double got = load(out[b * vb + t * vs + c]);
        const double rounded_p = mma ? (unit_roundoff<T> + double(past) * subnormal_error<T>) * max_v : 0;
        const double bound = k_eps * max_v * (1 + abs_max) + unit_roundoff<T> * std::abs(ref) + rounded_p;
        worst_ratio = std::max(worst_ratio, std::abs(got - ref) / bound);
        ok &= std::abs(got - ref) <= bound;  // false for NaN
      }
    }
  return ok;
}

template <class T, std::size_t Count>
int sweep(const char* kernel, bool tensor_cores, const shape (&shapes)[Count]) {
  int failures = 0, cases = 0;
  double worst = 0;
  std::uint64_t seed = 100;
  for (suptok::mask m : {suptok::mask::strict, suptok::mask::inclusive})
    for (const shape& s : shapes) {
      ++cases;
      if (!check_case<T>(s, tensor_cores, m, seed += 10, worst)) {
        ++failures;
        std::printf("FAIL %s %s %s bh=%ld N=%ld d_k=%ld d_v=%ld pad=%ld\n", kernel, type_name<T>, suptok::to_string(m),
                    long(s.bh), long(s.N), long(s.d_k), long(s.d_v), long(s.pad));
      }
    }
  std::printf("%s %s: %d of %d cases within tolerance; largest error / bound %.3f\n", kernel, type_name<T>,
              cases - failures, cases, worst);
  return failures;
}

const shape scalar_shapes[] = {{1, 1, 1, 1},     {1, 2, 3, 5},    {3, 31, 8, 8},      {1, 32, 17, 33},
                               {3, 33, 64, 64},  {1, 63, 32, 31}, {1, 64, 64, 65},    {2, 65, 128, 128},
                               {1, 100, 16, 200}, {1, 129, 80, 256}};
// d = 64 and 128 at every 64-tile edge, dense (pad 0) and padded by 8 (rows still on 16 bytes);
// the last, padded by 3, is off the 16-byte rule and takes the scalar kernel.
const shape mma_shapes[] = {{1, 1, 64, 64, 0, true},     {2, 2, 128, 128, 0, true},  {1, 63, 64, 64, 0, true},
                            {3, 64, 128, 128, 0, true},  {1, 65, 64, 64, 8, true},   {2, 127, 128, 128, 0, true},
                            {1, 128, 64, 64, 0, true},   {1, 129, 128, 128, 8, true}, {3, 200, 64, 64, 0, true},
                            {1, 300, 128, 128, 0, true}, {2, 300, 64, 64, 8, true},   {2, 65, 128, 128, 3, false}};

}  // namespace

int main() {
  if (!suptok::test::gpu_available()) return suptok::test::skip_code;
  const int failures = sweep<float>("scalar", false, scalar_shapes) +
                       sweep<__nv_bfloat16>("scalar", false, scalar_shapes) +
                       sweep<__half>("scalar", false, scalar_shapes) + sweep<__nv_bfloat16>("mma", true, mma_shapes) +
                       sweep<__half>("mma", true, mma_shapes);
  std::printf("%s\n", failures ? "FAIL" : "PASS");
  return failures ? 1 : 0;
}
