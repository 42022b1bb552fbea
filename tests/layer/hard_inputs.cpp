// Accuracy on inputs like those of trained models, in double against 50-digit references: tokens
// clustered tightly far from the origin, a few massive coordinates, an attention sink (a first
// token of huge norm), a mean drifting along the sequence, nearly one-hot attention. Checked: the
// Jacobian blocks of the head-stack path and of the layer path (general form), and log|det J_t| of
// the projected form.
//
// Conditioning. J_t = I - sum_h V_h M^h_t. Both factors of each covariance M are centred, so the
// rounding of the inputs (eps |u|) meets centred differences of size `spread`: M carries a
// relative error of about eps * kappa_data, kappa_data = max |u_s| / spread (spread: the RMS
// distance of the tokens to their mean). The weights a_ts = exp(l_ts - lse_t) carry a relative
// error of about eps * |lse_t|, and M inherits it. Relative to max |J_t| the error is then about
//   eps * cond,   cond = 1 + r (kappa_data + L),   r = max_t |I - J_t| / max_t |J_t|,  L = max |lse_t|
// (r: how much of J_t the moment term is; L: the logit scale). The bounds below are k eps cond,
// with k a small multiple of the measured ratio.
#include "hard_families.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using namespace suptok;

TEST_CASE("hard inputs: Jacobian blocks and log-determinants in double against float50", "[layer][precision]") {
  const suptok::index N = 10, p = 6;
  for (const test::hard_family& fam : test::hard_families(N, p))
    for (const mask m : {mask::strict, mask::inclusive}) {
      DYNAMIC_SECTION(fam.name << ", " << to_string(m)) {
        const attention_params ap{m, 0};
        const auto hs = test::random_heads<double>(2, p, 3, 3, 206, fam.weight_scale);
        const auto l = test::random_layer<double>(p, test::layer_cases[4] /* rotary, grouped, biases */, 207,
                                                  fam.weight_scale);
        const double kappa = test::kappa_data(fam.U);
        const auto U50 = test::cast<float50>(fam.U);
        const auto J_heads = jacobian_blocks<double>(fam.U, hs, ap);
        const auto J_heads50 = jacobian_blocks<float50>(U50, test::cast<float50>(hs), ap);
        const auto J_layer = jacobian_blocks<double>(fam.U, l, ap);
        const auto J_layer50 = jacobian_blocks<float50>(U50, test::cast<float50>(l), ap);
        const auto K = projected_blocks<double>(fam.U, l, ap);
        const double cond_heads = 1 + test::moment_share(J_heads50) * (kappa + test::logit_scale(attention_forward<double>(fam.U, hs, ap)));
        const double cond_layer = 1 + test::moment_share(J_layer50) * (kappa + test::logit_scale(attention_forward<double>(fam.U, l, ap)));
        double worst_heads = 0, worst_layer = 0, worst_logdet = 0;
        for (std::size_t t = 0; t < J_heads.size(); ++t) {
          worst_heads = std::max(worst_heads, test::max_rel_error(J_heads[t], J_heads50[t]));
          worst_layer = std::max(worst_layer, test::max_rel_error(J_layer[t], J_layer50[t]));
          const matrix<double> I_K = matrix<double>::Identity(K[t].rows(), K[t].cols()) - K[t];
          const auto ld = log_det<double>(I_K);
          const auto ld50 = log_det<float50>(J_layer50[t]);
          if (ld50.sign != 0) worst_logdet = std::max(worst_logdet, std::abs(ld.log_abs - to_double(ld50.log_abs)));
        }
        INFO("kappa_data " << kappa << ", cond (heads) " << cond_heads << ", cond (layer) " << cond_layer);
        // Relative errors of J_t in units of eps * cond: bound 4, measured up to 0.80.
        CHECK(test::within_eps<double>(worst_heads / cond_heads, 0.0, 4, 1.0));
        CHECK(test::within_eps<double>(worst_layer / cond_layer, 0.0, 4, 1.0));
        // log|det| absolute, in units of eps * cond: bound 8, measured up to 1.4.
        CHECK(test::within_eps<double>(worst_logdet / cond_layer, 0.0, 8, 1.0));
      }
    }
}
