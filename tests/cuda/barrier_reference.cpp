// The host reference of the CUDA barrier test (barrier_reference.hpp).
#include "barrier_reference.hpp"

#include <suptok/barrier/penalty.hpp>
#include <suptok/likelihood/jacobian.hpp>
#include <suptok/likelihood/logdet.hpp>
#include <suptok/likelihood/projected.hpp>

#include <Eigen/LU>
#include <Eigen/SVD>

#include <algorithm>

namespace suptok::test {

namespace {

matrix<double> slice(const std::vector<double>& x, index i, index rows, index cols) {
  return Eigen::Map<const matrix<double>>(x.data() + i * rows * cols, rows, cols);
}

heads<double> problem_heads(const barrier_problem& pb) {
  heads<double> hs;
  for (index h = 0; h < pb.H; ++h)
    hs.push_back({slice(pb.W_Q, h, pb.d_k, pb.p), slice(pb.W_K, h, pb.d_k, pb.p), slice(pb.W_V, h, pb.d_v, pb.p),
                  slice(pb.W_O, h, pb.p, pb.d_v)});
  return hs;
}

void append(std::vector<double>& to, const matrix<double>& x) {  // row-major, as the problem's inputs
  to.insert(to.end(), x.data(), x.data() + x.size());
}

}  // namespace

gradient_values reference_gradients(const barrier_problem& pb, mask m, double temperature,
                                    const barrier_params& barrier) {
  std::vector<matrix<double>> Us;
  for (index b = 0; b < pb.B; ++b) Us.push_back(slice(pb.U, b, pb.N, pb.p));
  const auto r = barrier_penalty_batch_backward<double>(Us, problem_heads(pb), barrier, {m, temperature});
  gradient_values g;
  for (const matrix<double>& dU : r.grad.dU) append(g.U, dU);
  for (const head<double>& dW : r.grad.dW) {
    append(g.W_Q, dW.W_Q);
    append(g.W_K, dW.W_K);
    append(g.W_V, dW.W_V);
    append(g.W_O, dW.W_O);
  }
  return g;
}

token_values reference_barrier(const barrier_problem& pb, mask m, double temperature, const barrier_params& barrier) {
  const heads<double> hs = problem_heads(pb);
  const attention_params attention{m, temperature};
  token_values out;
  for (index b = 0; b < pb.B; ++b) {
    const matrix<double> U = slice(pb.U, b, pb.N, pb.p);
    for (const matrix<double>& J : jacobian_blocks<double>(U, hs, attention)) {
      const signed_log_det<double> ld = log_det<double>(J);
      out.sign.push_back(ld.sign);
      out.log_abs.push_back(ld.log_abs);
      out.b.push_back(barrier_from_log_det(ld, barrier));
      const auto sigma = Eigen::JacobiSVD<matrix<double>>(J).singularValues();
      const double term = Eigen::JacobiSVD<matrix<double>>(J - matrix<double>::Identity(pb.p, pb.p)).singularValues()(0);
      out.condition.push_back(std::max(1.0, term / sigma(pb.p - 1)));
      out.sigma_min.push_back(sigma(pb.p - 1));
      out.sigma_max.push_back(sigma(0));
      out.spread.push_back(term);
    }
  }
  return out;
}

iterated_values reference_iterations(const barrier_problem& pb, mask m, double temperature,
                                     const iteration_params& iteration) {
  const heads<double> hs = problem_heads(pb);
  iterated_values out;
  for (index b = 0; b < pb.B; ++b) {
    for (const matrix<double>& J : jacobian_blocks<double>(slice(pb.U, b, pb.N, pb.p), hs, {m, temperature})) {
      const Eigen::PartialPivLU<matrix<double>> lu(J);
      out.sigma_max.push_back(largest_singular_value<double>(
          pb.p, [&](const vector<double>& x) -> vector<double> { return J * x; },
          [&](const vector<double>& x) -> vector<double> { return J.transpose() * x; }, iteration));
      out.sigma_min.push_back(log_det<double>(J).sign == 0
                                  ? 0.0
                                  : smallest_singular_value<double>(
                                        pb.p, [&](const vector<double>& x) -> vector<double> { return lu.solve(x); },
                                        [&](const vector<double>& x) -> vector<double> {
                                          return lu.transpose().solve(x);
                                        },
                                        iteration));
    }
  }
  return out;
}

std::vector<double> projected_conditions(const barrier_problem& pb, mask m, double temperature) {
  const layer<double> layer = as_layer(problem_heads(pb));
  std::vector<double> out;
  for (index b = 0; b < pb.B; ++b) {
    for (const matrix<double>& K : projected_blocks<double>(slice(pb.U, b, pb.N, pb.p), layer, {m, temperature})) {
      const matrix<double> I_K = matrix<double>::Identity(K.rows(), K.cols()) - K;
      const double sigma_min = Eigen::JacobiSVD<matrix<double>>(I_K).singularValues()(K.rows() - 1);
      out.push_back(std::max(1.0, Eigen::JacobiSVD<matrix<double>>(K).singularValues()(0) / sigma_min));
    }
  }
  return out;
}

}  // namespace suptok::test
