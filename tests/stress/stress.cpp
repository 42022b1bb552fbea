// Stress: the simd attention and barrier at N = 16384, p = 128 in float32, on random inputs.
//  - memory: the process's peak RSS grows by at most the workspace the library announces
//    (barrier_workspace_bytes) plus the outputs and 64 MiB of slack (allocator, OpenMP stacks,
//    Eigen temporaries); printed with the figures it is compared with;
//  - accuracy: float32 against float64. The attention in float64 is the same simd code in double
//    (a 2^29 times more precise evaluation of the same sums). The barrier's float64 values come
//    from an independent direct evaluation of J_t (docs/math.md section 2.1, both factors of C_t
//    centred) for a set of tokens spread over the sequence, the last ones included, where the
//    float sums are longest.
// The barrier case runs first (declaration order): the peak RSS is a high-water mark, so the
// increase it sees is that of the barrier's own buffers.
#include <suptok/simd.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <vector>

#include "simd_checks.hpp"
#include "test_support.hpp"

namespace suptok {
namespace {

constexpr index stress_N = 16384, stress_p = 128;
constexpr double MiB = 1024.0 * 1024.0;

// Peak resident set size of the process so far, in bytes.
double peak_rss() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return double(r.ru_maxrss) * 1024.0;  // ru_maxrss is in KiB on Linux
}

// Current resident set size, in bytes (/proc/self/statm: pages, second field resident).
double current_rss() {
  std::ifstream statm("/proc/self/statm");
  double total = 0, resident = 0;
  statm >> total >> resident;
  return resident * double(sysconf(_SC_PAGESIZE));
}

// J_t of one head under the strict mask, in double, straight from docs/math.md 2.1:
//   a_ts = softmax_s(q_t . k_s / tau) over s < t,  q_t = W_Q u_t, k_s = W_K u_s,  tau = sqrt(d_k)
//   ubar = sum_s a_ts u_s,  C_t = sum_s a_ts (u_s - ubar)(u_s - ubar)^T
//   J_t = I - W_O W_V C_t W_K^T W_Q / tau                                             (p, p)
matrix<double> direct_jacobian(const matrix<double>& U, const head<double>& h, index t) {
  const index p = U.cols();
  const double tau = std::sqrt(double(h.d_k()));
  const Eigen::VectorXd q = h.W_Q * U.row(t).transpose();
  const Eigen::VectorXd logits = (U.topRows(t) * h.W_K.transpose()) * q / tau;  // (t)
  const Eigen::VectorXd a = (logits.array() - logits.maxCoeff()).exp().matrix();
  const Eigen::VectorXd w = a / a.sum();
  const Eigen::RowVectorXd ubar = w.transpose() * U.topRows(t);
  const matrix<double> Y = U.topRows(t).rowwise() - ubar;       // (t, p)
  const matrix<double> C = Y.transpose() * w.asDiagonal() * Y;  // (p, p)
  return matrix<double>::Identity(p, p) - (h.W_O * h.W_V) * C * (h.W_K.transpose() * h.W_Q) / tau;
}

}  // namespace

TEST_CASE("simd barrier at N = 16384, p = 128: bounded memory, float32 against float64", "[stress][barrier]") {
  const heads<float> hs_raw = test::random_heads<float>(1, stress_p, 64, 64, 7, 1.0 / std::sqrt(double(stress_p)));
  const matrix<float> U = test::random_matrix<float>(stress_N, stress_p, 8);
  const matrix<double> Ud = U.cast<double>();
  const std::vector<index> tokens = {2, 3, 17, 100, 1000, 4096, 8191, 12000, 16000, 16381, 16382, 16383};

  // Scale W_O so that max ||I - J_t||_2 over the sampled tokens is 0.5 (J_t - I is linear in W_O):
  // det J_t stays well inside the feasible side, where b_t = -log det J_t.
  heads<double> hd = test::cast<double>(hs_raw);
  double dev = 0;
  for (index t : tokens) {
    const matrix<double> D = matrix<double>::Identity(stress_p, stress_p) - direct_jacobian(Ud, hd[0], t);
    dev = std::max(dev, Eigen::JacobiSVD<matrix<double>>(D).singularValues()(0));
  }
  heads<float> hs = hs_raw;
  hs[0].W_O *= float(0.5 / dev);
  hd = test::cast<double>(hs);

  const barrier_params barrier{extension::extended, 1e-8, 1e-2};
  const double before = current_rss();
  const std::vector<float> b = barrier_per_token(simd{}, U, hs, barrier);
  const double forward_peak = peak_rss() - before;
  const double forward_bytes = double(barrier_workspace_bytes(simd{}, stress_N, hs, false));
  std::printf("stress barrier forward: peak RSS +%.0f MiB, workspace %.0f MiB\n", forward_peak / MiB,
              forward_bytes / MiB);
  CHECK(forward_peak <= forward_bytes + 64 * MiB);

  double worst = 0;
  for (index t : tokens) {
    const double det = direct_jacobian(Ud, hd[0], t).determinant();
    REQUIRE(det > barrier.z0);
    const double b_ref = -std::log(det);
    worst = std::max(worst, std::abs(double(b[static_cast<std::size_t>(t)]) - b_ref) /
                                ((1 + std::abs(b_ref)) * test::epsilon_of<float>()));
  }
  // Measured 2026-12-02 (AVX-512): 26.7 float eps on (1 + |b_t|); bound 64.
  std::printf("stress barrier forward: worst |b_t - b_t(float64)| = %.1f float eps (1 + |b_t|)\n", worst);
  CHECK(worst <= 64);

  const double before_backward = current_rss();
  const barrier_gradients<float> g = barrier_penalty_backward(simd{}, U, hs, barrier);
  const double backward_peak = peak_rss() - before_backward;
  const double backward_bytes = double(barrier_workspace_bytes(simd{}, stress_N, hs, true)) +
                                double(sizeof(float)) * double(stress_N * stress_p);  // + dU
  std::printf("stress barrier backward: peak RSS +%.0f MiB, workspace + dU %.0f MiB\n", backward_peak / MiB,
              backward_bytes / MiB);
  CHECK(backward_peak <= backward_bytes + 64 * MiB);
  CHECK(std::isfinite(g.penalty));
  CHECK(g.grad.dU.allFinite());
  // The backward's penalty is the mean of the forward's b_t over t >= 2, summed in float by the
  // library and here in double: bound 64 float eps on (1 + |mean|).
  double mean = 0;
  for (index t = 2; t < stress_N; ++t) mean += double(b[static_cast<std::size_t>(t)]);
  mean /= double(stress_N - 2);
  const double mean_err = std::abs(double(g.penalty) - mean) / (test::epsilon_of<float>() * (1 + std::abs(mean)));
  std::printf("stress barrier backward: penalty vs mean of the forward's b_t %.1f float eps\n", mean_err);
  CHECK(mean_err <= 64);
}

TEST_CASE("simd attention at N = 16384, p = 128: float32 against float64", "[stress][attention]") {
  const index H = 2, d = 64;
  const heads<float> hs = test::random_heads<float>(H, stress_p, d, d, 11, 1.0 / std::sqrt(double(stress_p)));
  const matrix<float> U = test::random_matrix<float>(stress_N, stress_p, 12);
  const matrix<float> dMu = test::random_matrix<float>(stress_N, stress_p, 13);
  const heads<double> hd = test::cast<double>(hs);
  const matrix<double> Ud = U.cast<double>(), dMud = dMu.cast<double>();
  for (mask m : test::sweep_masks) {
    INFO(to_string(m) << " mask");
    const attention_params params{m, 0};
    attention_output<float> out;
    attention_output<double> out_d;
    attention_forward(simd{}, out, U, hs, params);
    attention_forward(simd{}, out_d, Ud, hd, params);
    const double mu_err = test::err_eps(out.mu, out_d.mu, test::epsilon_of<float>(), test::mu_term_scale(U, hs));
    attention_gradients<float> g;
    attention_gradients<double> g_d;
    attention_backward(simd{}, g, dMu, U, hs, params);
    attention_backward(simd{}, g_d, dMud, Ud, hd, params);
    const double grad_err = test::err_eps_gradients(g.dU, g.dW, g_d.dU, g_d.dW, test::epsilon_of<float>());
    std::printf("stress attention (%s): mu %.1f float eps, gradients %.1f float eps; peak RSS %.0f MiB\n",
                to_string(m), mu_err, grad_err, peak_rss() / MiB);
    // Measured 2026-12-02 (AVX-512, both masks): mu 0.7, gradients 9.8-10.9 float eps.
    CHECK(mu_err <= 4);
    CHECK(grad_err <= 32);
  }
}

}  // namespace suptok
