// attention_backward(cuda, ...) against an independent host evaluation in double, on seeded inputs
// over a sweep of shapes: every 32-tile edge of keys and queries, d_k and d_v below, at and above a
// warp's 32 columns up to the largest (128), one and three sequence-heads, both masks, float, bf16
// and fp16 storage, strided views. O and lse come from attention_forward(cuda, ...) (the scalar
// kernel: tensor_cores off); the reference forms softmax, D_t and the three gradients from Q, K, V
// and dO alone, as the kernels read them (rounded to the storage type). The outputs are filled with
// NaN first, so that an element left unwritten fails. Exits 77 (ctest: skipped) without a GPU.
//
// Tolerance (derived, not yet measured on a GPU). With L = 1 + max_s |l_ts| over the sequence and
// kappa = (8 + (d_k + d_v) / 8 + N / 8) eps_f L (the float dot products of length d_k and d_v, the
// exponential's argument of size L, sums over up to N terms): p_ts carries a relative error of
// about kappa, dp_ts an absolute one of kappa A_ts (A_ts = sum_c |dO_tc V_sc|), and D_t one of
// kappa B_t + u_T C_t (B_t = sum_c |dO_tc| (|O_tc| + max|V|): O carries the forward's error;
// C_t = sum_c |dO_tc O_tc|: the forward stores O in T, of unit roundoff u_T). So ds_ts errs by at
// most p_ts (kappa (|dp_ts - D_t| + A_ts + B_t) + u_T C_t) = kappa e_ts + u_T e_o,ts, and each
// gradient element must be within 4 times the sum of its terms' error bounds:
//   dV_sj: 4 kappa sum_t p_ts |dO_tj|,   dK_sj: 4 sum_t (kappa e_ts + u_T e_o,ts) |Q_tj| / tau,
//   dQ_tj: 4 sum_s (kappa e_ts + u_T e_o,ts) |K_sj| / tau.
// A wrong mask, row or tile puts a term of the size of the whole sum into the error: in float
// about 1 / kappa (10^4 or more) times the bound, in bf16 about 1 / u_T = 256 times.
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
#include <limits>
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

// Row stride cols + pad, batch stride N (cols + pad) + pad.
struct shape {
  index bh, N, d_k, d_v, pad = 3;
};

// A (bh, N, cols) stack in host memory with the shape's strides, and its view on a device copy.
struct layout {
  index rows, cols, row_stride, batch_stride;
  index at(index b, index r, index c) const { return b * batch_stride + r * row_stride + c; }
};

template <class T>
bool check_case(const shape& s, suptok::mask m, std::uint64_t seed, double& worst_ratio) {
  const layout lk{s.N, s.d_k, s.d_k + s.pad, s.N * (s.d_k + s.pad) + s.pad};
  const layout lv{s.N, s.d_v, s.d_v + s.pad, s.N * (s.d_v + s.pad) + s.pad};
  const std::size_t nk = std::size_t(s.bh * lk.batch_stride), nv = std::size_t(s.bh * lv.batch_stride);
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  const auto draw = [&](std::size_t n) {
    std::vector<T> x(n);
    for (T& e : x) e = store<T>(normal(gen));
    return x;
  };
  const std::vector<T> q = draw(nk), k = draw(nk), v = draw(nv), g = draw(nv);
  device_buffer<T> dq(nk), dk(nk), dv(nv), dg(nv), dout(nv);
  device_buffer<float> dlse(std::size_t(s.bh * s.N)), gq(nk), gk(nk), gv(nv);
  upload(dq, q);
  upload(dk, k);
  upload(dv, v);
  upload(dg, g);
  const std::vector<float> nan_k(nk, std::numeric_limits<float>::quiet_NaN());
  const std::vector<float> nan_v(nv, std::numeric_limits<float>::quiet_NaN());
  upload(gq, nan_k);
  upload(gk, nan_k);
  upload(gv, nan_v);
  const auto view = [&](auto* data, const layout& l) {
    return suptok::batched_view<std::remove_pointer_t<decltype(data)>>{data, s.bh, l.rows, l.cols, l.batch_stride,
                                                                       l.row_stride};
  };
  const suptok::batched_view<const T> Q = view(static_cast<const T*>(dq.data), lk);
  const suptok::batched_view<const T> K = view(static_cast<const T*>(dk.data), lk);
  const suptok::batched_view<const T> V = view(static_cast<const T*>(dv.data), lv);
  const suptok::batched_view<const T> dO = view(static_cast<const T*>(dg.data), lv);
  const suptok::batched_view<T> O = view(dout.data, lv);
  const suptok::batched_view<float> lse{dlse.data, s.bh, s.N, 1, s.N, 1};
  const suptok::cuda backend{nullptr, nullptr, false};
  suptok::attention_forward(backend, O, lse, Q, K, V, {m, 0});
  suptok::attention_backward(backend, view(gq.data, lk), view(gk.data, lk), view(gv.data, lv), dO,
                             suptok::batched_view<const T>{dout.data, s.bh, s.N, s.d_v, lv.batch_stride, lv.row_stride},
                             suptok::batched_view<const float>{dlse.data, s.bh, s.N, 1, s.N, 1}, Q, K, V, {m, 0});
  suptok::detail::cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  const std::vector<float> got_q = download(gq, nk), got_k = download(gk, nk), got_v = download(gv, nv);

  const double inv_tau = 1.0 / std::sqrt(double(s.d_k));
  bool ok = true;
  const auto check = [&](double got, double ref, double bound) {
    if (bound > 0) worst_ratio = std::max(worst_ratio, std::abs(got - ref) / bound);
    ok &= std::abs(got - ref) <= bound;  // false for NaN; exact where every term is 0
  };
  for (index b = 0; b < s.bh; ++b) {
    const auto Qv = [&](index t, index c) { return load(q[std::size_t(lk.at(b, t, c))]); };
    const auto Kv = [&](index t, index c) { return load(k[std::size_t(lk.at(b, t, c))]); };
    const auto Vv = [&](index t, index c) { return load(v[std::size_t(lv.at(b, t, c))]); };
    const auto Gv = [&](index t, index c) { return load(g[std::size_t(lv.at(b, t, c))]); };
    double max_v = 0, max_l = 0;
    for (index t = 0; t < s.N; ++t)
      for (index c = 0; c < s.d_v; ++c) max_v = std::max(max_v, std::abs(Vv(t, c)));
    // p, ds and e of every (t, s) pair, (N, N) row-major; 0 off the causal past
    // and e split as kappa e + u_T e_o
    std::vector<double> p(std::size_t(s.N * s.N), 0.0), ds(p.size(), 0.0), e(p.size(), 0.0), e_o(p.size(), 0.0);
    for (index t = 0; t < s.N; ++t) {
      const index past = suptok::past_end(t, m);
      if (past == 0) continue;
      std::vector<double> l(static_cast<std::size_t>(past));
      double l_max = -INFINITY, sum = 0;
      for (index j = 0; j < past; ++j) {
        double dot = 0;
        for (index c = 0; c < s.d_k; ++c) dot += Qv(t, c) * Kv(j, c);
        l[std::size_t(j)] = dot * inv_tau;
        l_max = std::max(l_max, l[std::size_t(j)]);
        max_l = std::max(max_l, std::abs(l[std::size_t(j)]));
      }
      for (index j = 0; j < past; ++j) sum += std::exp(l[std::size_t(j)] - l_max);
      std::vector<double> o(std::size_t(s.d_v), 0.0);
      for (index j = 0; j < past; ++j) {
        p[std::size_t(t * s.N + j)] = std::exp(l[std::size_t(j)] - l_max) / sum;
        for (index c = 0; c < s.d_v; ++c) o[std::size_t(c)] += p[std::size_t(t * s.N + j)] * Vv(j, c);
      }
      double D = 0, B = 0, C = 0;
      for (index c = 0; c < s.d_v; ++c) {
        D += Gv(t, c) * o[std::size_t(c)];
        B += std::abs(Gv(t, c)) * (std::abs(o[std::size_t(c)]) + max_v);
        C += std::abs(Gv(t, c) * o[std::size_t(c)]);
      }
      for (index j = 0; j < past; ++j) {
        double dp = 0, A = 0;
        for (index c = 0; c < s.d_v; ++c) {
          dp += Gv(t, c) * Vv(j, c);
          A += std::abs(Gv(t, c) * Vv(j, c));
        }
        const std::size_t tj = std::size_t(t * s.N + j);
        ds[tj] = p[tj] * (dp - D);
        e[tj] = p[tj] * (std::abs(dp - D) + A + B);
        e_o[tj] = p[tj] * C;
      }
    }
    const double kappa = (8.0 + double(s.d_k + s.d_v) / 8 + double(s.N) / 8) * eps_f * (1 + max_l);
    for (index j = 0; j < s.N; ++j) {  // dK_j, dV_j
      for (index c = 0; c < s.d_v; ++c) {
        double ref = 0, mag = 0;
        for (index t = 0; t < s.N; ++t) {
          ref += p[std::size_t(t * s.N + j)] * Gv(t, c);
          mag += p[std::size_t(t * s.N + j)] * std::abs(Gv(t, c));
        }
        check(got_v[std::size_t(lv.at(b, j, c))], ref, 4 * kappa * mag);
      }
      for (index c = 0; c < s.d_k; ++c) {
        double ref = 0, mag = 0;
        for (index t = 0; t < s.N; ++t) {
          ref += ds[std::size_t(t * s.N + j)] * Qv(t, c) * inv_tau;
          const std::size_t tj = std::size_t(t * s.N + j);
          mag += (kappa * e[tj] + unit_roundoff<T> * e_o[tj]) * std::abs(Qv(t, c)) * inv_tau;
        }
        check(got_k[std::size_t(lk.at(b, j, c))], ref, 4 * mag);
      }
    }
    for (index t = 0; t < s.N; ++t)  // dQ_t
      for (index c = 0; c < s.d_k; ++c) {
        double ref = 0, mag = 0;
        for (index j = 0; j < s.N; ++j) {
          ref += ds[std::size_t(t * s.N + j)] * Kv(j, c) * inv_tau;
          const std::size_t tj = std::size_t(t * s.N + j);
          mag += (kappa * e[tj] + unit_roundoff<T> * e_o[tj]) * std::abs(Kv(j, c)) * inv_tau;
        }
        check(got_q[std::size_t(lk.at(b, t, c))], ref, 4 * mag);
      }
  }
  return ok;
}

template <class T, std::size_t Count>
int sweep(const shape (&shapes)[Count]) {
  int failures = 0, cases = 0;
  double worst = 0;
  std::uint64_t seed = 500;
  for (suptok::mask m : {suptok::mask::strict, suptok::mask::inclusive})
    for (const shape& s : shapes) {
      ++cases;
      if (!check_case<T>(s, m, seed += 10, worst)) {
        ++failures;
        std::printf("FAIL backward %s %s bh=%ld N=%ld d_k=%ld d_v=%ld pad=%ld\n", type_name<T>, suptok::to_string(m),
                    long(s.bh), long(s.N), long(s.d_k), long(s.d_v), long(s.pad));
      }
    }
  std::printf("backward %s: %d of %d cases within tolerance; largest error / bound %.3f\n", type_name<T>,
              cases - failures, cases, worst);
  return failures;
}

const shape shapes[] = {{1, 1, 1, 1},    {1, 2, 3, 5},     {3, 31, 8, 8},    {1, 32, 17, 33}, {3, 33, 64, 64},
                        {1, 63, 32, 31}, {1, 64, 64, 65},  {2, 65, 128, 128}, {1, 100, 16, 96}, {1, 129, 80, 40}};

}  // namespace

int main() {
  if (!suptok::test::gpu_available()) return suptok::test::skip_code;
  const int failures = sweep<float>(shapes) + sweep<__nv_bfloat16>(shapes) + sweep<__half>(shapes);
  std::printf("%s\n", failures ? "FAIL" : "PASS");
  return failures ? 1 : 0;
}
