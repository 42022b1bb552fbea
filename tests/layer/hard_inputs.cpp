// Accuracy on inputs like those of trained models, in double against 50-digit references: tokens
// clustered tightly far from the origin, a few massive coordinates, an attention sink (a first
// token of huge norm), a mean drifting along the sequence, nearly one-hot attention. Checked: the
// Jacobian blocks of the head-stack path and of the layer path (general form), and log|det J_t| of
// the projected form.
//
// Conditioning. Both factors of each covariance are centred, so the rounding of the inputs
// (eps |u|) meets centred differences of size `spread`: J_t carries a relative error of about
// eps * kappa_data, kappa_data = max |u_s| / spread, with spread the RMS distance of the tokens to
// their mean. The bounds below are k eps kappa_data with k a small multiple of the measured ratio.
#include "layer_checks.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using namespace suptok;

namespace {

struct family {
  const char* name;
  matrix<double> U;
  double weight_scale;  // larger: sharper attention
};

double kappa_data(const matrix<double>& U) {
  const Eigen::RowVectorXd mean = U.colwise().mean();
  const double spread = std::sqrt((U.rowwise() - mean).squaredNorm() / double(U.rows()));
  return U.cwiseAbs().maxCoeff() / spread;
}

std::vector<family> families(suptok::index N, suptok::index p) {
  std::vector<family> f;
  matrix<double> cluster = test::random_matrix<double>(N, p, 201, 1e-2);
  cluster.rowwise() += Eigen::RowVectorXd::Constant(p, 10.0 / std::sqrt(double(p)));
  f.push_back({"cluster at distance 10, spread 1e-2", cluster, 0.5});
  matrix<double> massive = test::random_matrix<double>(N, p, 202);
  massive.col(1).array() += 300.0;
  massive.col(3).array() -= 700.0;
  f.push_back({"massive coordinates 300 and -700", massive, 0.02});
  matrix<double> sink = test::random_matrix<double>(N, p, 203);
  sink.row(0) *= 100.0;
  f.push_back({"attention sink of norm 100", sink, 0.5});
  matrix<double> drift = test::random_matrix<double>(N, p, 204);
  for (suptok::index t = 0; t < N; ++t) drift.row(t).array() += 0.5 * double(t);
  f.push_back({"mean drifting by 0.5 per token", drift, 0.3});
  f.push_back({"nearly one-hot attention", test::random_matrix<double>(N, p, 205), 3.0});
  return f;
}

}  // namespace

TEST_CASE("hard inputs: Jacobian blocks and log-determinants in double against float50", "[layer][precision]") {
  const suptok::index N = 10, p = 6;
  for (const family& fam : families(N, p))
    for (const mask m : {mask::strict, mask::inclusive}) {
      DYNAMIC_SECTION(fam.name << ", " << to_string(m)) {
        const attention_params ap{m, 0};
        const auto hs = test::random_heads<double>(2, p, 3, 3, 206, fam.weight_scale);
        const auto l = test::random_layer<double>(p, test::layer_cases[4] /* rotary, grouped, biases */, 207,
                                                  fam.weight_scale);
        const double kappa = kappa_data(fam.U);
        const auto U50 = test::cast<float50>(fam.U);
        const auto J_heads = jacobian_blocks<double>(fam.U, hs, ap);
        const auto J_heads50 = jacobian_blocks<float50>(U50, test::cast<float50>(hs), ap);
        const auto J_layer = jacobian_blocks<double>(fam.U, l, ap);
        const auto J_layer50 = jacobian_blocks<float50>(U50, test::cast<float50>(l), ap);
        const auto K = projected_blocks<double>(fam.U, l, ap);
        double worst_heads = 0, worst_layer = 0, worst_logdet = 0;
        for (std::size_t t = 0; t < J_heads.size(); ++t) {
          worst_heads = std::max(worst_heads, test::max_rel_error(J_heads[t], J_heads50[t]));
          worst_layer = std::max(worst_layer, test::max_rel_error(J_layer[t], J_layer50[t]));
          const matrix<double> I_K = matrix<double>::Identity(K[t].rows(), K[t].cols()) - K[t];
          const auto ld = log_det<double>(I_K);
          const auto ld50 = log_det<float50>(J_layer50[t]);
          if (ld50.sign != 0) worst_logdet = std::max(worst_logdet, std::abs(ld.log_abs - to_double(ld50.log_abs)));
        }
        const double eps = test::epsilon_of<double>();
        // Relative errors of J_t in units of eps * kappa_data: bound 16, measured up to 1.
        CHECK(test::within_eps<double>(worst_heads / kappa, 0.0, 16, 1.0));
        CHECK(test::within_eps<double>(worst_layer / kappa, 0.0, 16, 1.0));
        // log|det| absolute, in units of eps * kappa_data (J_t is well conditioned here, kappa(J_t)
        // < 1e3): bound 64, measured up to 3.
        CHECK(test::within_eps<double>(worst_logdet / kappa, 0.0, 64, 1.0));
        INFO("kappa_data " << kappa << ", eps " << eps);
      }
    }
}
