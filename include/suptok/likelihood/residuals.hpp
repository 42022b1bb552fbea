// suptok/likelihood/residuals.hpp: the residual map of the latent-noise model (docs/math.md section 2).
//
//   e_t = u_t - mu_t(u_1..u_t)      E = U - mu   (N, p)
// mu is the causal multi-head attention output (attention/forward.hpp), so e_t depends on
// positions <= t only. Under the strict mask e_0 = u_0 (token 0 has an empty past).
#pragma once

#include <span>
#include <vector>

#include "../attention/forward.hpp"

namespace suptok {

namespace detail {

template <class S>
matrix<S> residuals_unchecked(const Eigen::Ref<const matrix<S>>& U, const heads<S>& heads,
                              const attention_params& params) {
  attention_output<S> out;
  attention_forward_unchecked<S>(out, U, heads, params, false);
  return U - out.mu;  // (N, p)
}

}  // namespace detail

// E = U - mu (N, p) of one sequence U (N, p).
template <class S>
matrix<S> residuals(const_ref<S> U, const heads<S>& heads, const attention_params& params = {}) {
  detail::validate_attention<S>(U, heads, params);
  return detail::residuals_unchecked<S>(U, heads, params);
}

// One E_b = U_b - mu_b (N_b, p) per sequence of a batch; all sequences are validated first.
template <class S>
std::vector<matrix<S>> residuals_batch(std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads,
                                       const attention_params& params = {}) {
  detail::validate_batch<S>(Us, heads, params);
  std::vector<matrix<S>> E(Us.size());
  for (std::size_t b = 0; b < Us.size(); ++b) E[b] = detail::residuals_unchecked<S>(Us[b], heads, params);
  return E;
}

}  // namespace suptok
