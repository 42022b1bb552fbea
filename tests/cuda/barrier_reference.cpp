// The host reference of the CUDA barrier test (barrier_reference.hpp).
#include "barrier_reference.hpp"

#include <suptok/barrier/penalty.hpp>
#include <suptok/likelihood/jacobian.hpp>
#include <suptok/likelihood/logdet.hpp>

#include <Eigen/SVD>

#include <algorithm>

namespace suptok::test {

namespace {

matrix<double> slice(const std::vector<double>& x, index i, index rows, index cols) {
  return Eigen::Map<const matrix<double>>(x.data() + i * rows * cols, rows, cols);
}

}  // namespace

token_values reference_barrier(const barrier_problem& pb, mask m, double temperature, const barrier_params& barrier) {
  heads<double> hs;
  for (index h = 0; h < pb.H; ++h)
    hs.push_back({slice(pb.W_Q, h, pb.d_k, pb.p), slice(pb.W_K, h, pb.d_k, pb.p), slice(pb.W_V, h, pb.d_v, pb.p),
                  slice(pb.W_O, h, pb.p, pb.d_v)});
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
    }
  }
  return out;
}

}  // namespace suptok::test
