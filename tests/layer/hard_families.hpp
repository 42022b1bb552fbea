// The hard-input families of the layer tests (tests/layer/hard_inputs.cpp, tests/simd/
// projected_forward.cpp) and the conditioning measures their bounds are stated in: tokens clustered
// tightly far from the origin, a few massive coordinates, an attention sink, a drifting mean, nearly
// one-hot attention.
#pragma once

#include "layer_checks.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace suptok::test {

struct hard_family {
  const char* name;
  matrix<double> U;
  double weight_scale;  // larger: sharper attention
};

// max_t max |I - J_t| / max_t max |J_t| of reference blocks (float50 or long double).
template <class R>
double moment_share(const std::vector<matrix<R>>& J) {
  double num = 0, den = 0;
  for (const auto& J_t : J) {
    const matrix<R> M = matrix<R>::Identity(J_t.rows(), J_t.cols()) - J_t;
    num = std::max(num, static_cast<double>(M.cwiseAbs().maxCoeff()));
    den = std::max(den, static_cast<double>(J_t.cwiseAbs().maxCoeff()));
  }
  return num / den;
}

// The largest finite |lse_t| over the heads: the logit scale.
inline double logit_scale(const attention_output<double>& out) {
  double L = 0;
  for (const auto& lse : out.lse)
    for (index t = 0; t < lse.size(); ++t)
      if (std::isfinite(lse(t))) L = std::max(L, std::abs(lse(t)));
  return L;
}

// max |u| over the RMS distance of the tokens to their mean.
inline double kappa_data(const matrix<double>& U) {
  const Eigen::RowVectorXd mean = U.colwise().mean();
  const double spread = std::sqrt((U.rowwise() - mean).squaredNorm() / double(U.rows()));
  return U.cwiseAbs().maxCoeff() / spread;
}

inline std::vector<hard_family> hard_families(index N, index p) {
  std::vector<hard_family> f;
  matrix<double> cluster = random_matrix<double>(N, p, 201, 1e-2);
  cluster.rowwise() += Eigen::RowVectorXd::Constant(p, 10.0 / std::sqrt(double(p)));
  f.push_back({"cluster at distance 10, spread 1e-2", cluster, 0.5});
  matrix<double> massive = random_matrix<double>(N, p, 202);
  massive.col(1).array() += 300.0;
  massive.col(3).array() -= 700.0;
  f.push_back({"massive coordinates 300 and -700", massive, 0.02});
  matrix<double> sink = random_matrix<double>(N, p, 203);
  sink.row(0) *= 100.0;
  f.push_back({"attention sink of norm 100", sink, 0.5});
  matrix<double> drift = random_matrix<double>(N, p, 204);
  for (index t = 0; t < N; ++t) drift.row(t).array() += 0.5 * double(t);
  f.push_back({"mean drifting by 0.5 per token", drift, 0.3});
  f.push_back({"nearly one-hot attention", random_matrix<double>(N, p, 205), 3.0});
  return f;
}

}  // namespace suptok::test
