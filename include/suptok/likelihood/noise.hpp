// suptok/likelihood/noise.hpp: the noise covariance Psi of the latent-noise model (docs/math.md 2).
//
//   eps_t ~ N(0, Psi),   Psi = sigma^2 I (isotropic: one variance)
//                        Psi = diag(psi_1..psi_p) (diagonal: p variances)
// The struct stores variances (not standard deviations, not log-variances), and gradients with
// respect to Psi are taken with respect to these same numbers. Every variance must be finite
// and strictly positive.
#pragma once

#include <string>

#include "../attention/params.hpp"

namespace suptok {

enum class noise_kind { isotropic, diagonal };

template <class S>
struct noise_covariance {
  noise_kind kind = noise_kind::isotropic;
  vector<S> variance = vector<S>::Ones(1);  // (1): sigma^2, or (p): psi_1..psi_p

  static noise_covariance isotropic(const S& sigma2) { return {noise_kind::isotropic, vector<S>::Constant(1, sigma2)}; }
  static noise_covariance diagonal(const vector<S>& psi) { return {noise_kind::diagonal, psi}; }

  // The variance of coordinate i.
  const S& operator()(index i) const { return variance(kind == noise_kind::isotropic ? 0 : i); }
};

namespace detail {

// Validates Psi for embeddings of dimension p: kind, size (1 or p), finite and positive entries.
template <class S>
void validate_noise(const noise_covariance<S>& Psi, index p, const std::string& argument = "Psi") {
  require(Psi.kind == noise_kind::isotropic || Psi.kind == noise_kind::diagonal, argument + ".kind",
          "unknown noise kind");
  const index expected = Psi.kind == noise_kind::isotropic ? 1 : p;
  require(Psi.variance.size() == expected, argument + ".variance", "expected ", expected, " variance(s) for ",
          Psi.kind == noise_kind::isotropic ? "isotropic" : "diagonal", " noise with p = ", p, ", got ",
          Psi.variance.size());
  for (index i = 0; i < Psi.variance.size(); ++i)
    require(is_finite(Psi.variance(i)) && Psi.variance(i) > S(0), argument + ".variance",
            "entry ", i, " must be finite and positive, got ", to_double(Psi.variance(i)));
}

}  // namespace detail
}  // namespace suptok
