// suptok/attention/params.hpp: the parameters of causal attention and their validation.
//
// docs/math.md section 1. One head h holds
//   W_Q, W_K  (d_k, p)     W_V  (d_v, p)     W_O  (p, d_v)
// and a stack of H heads is a std::vector<head<S>> (all heads share p; d_k and d_v may differ
// between heads). The same struct holds gradients with respect to the weights.
//
//   A_h = W_K^T W_Q / tau   (p, p)      V_h = W_O W_V   (p, p)
//
// attention_params: the mask (strict: P(t) = {s < t}; inclusive: P(t) = {s <= t}) and the
// temperature tau (0 selects the default sqrt(d_k) of each head, computed in Scalar precision).
#pragma once

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/scalar_traits.hpp"
#include "../core/view.hpp"
#include "mask.hpp"

namespace suptok {

template <class S>
struct head {
  matrix<S> W_Q;  // (d_k, p)
  matrix<S> W_K;  // (d_k, p)
  matrix<S> W_V;  // (d_v, p)
  matrix<S> W_O;  // (p, d_v)

  index p() const { return W_Q.cols(); }
  index d_k() const { return W_Q.rows(); }
  index d_v() const { return W_V.rows(); }
};

template <class S>
using heads = std::vector<head<S>>;

struct attention_params {
  mask causal_mask = mask::strict;
  double temperature = 0;  // tau; 0 means sqrt(d_k) per head
};

// tau of head h (docs/math.md section 1): params.temperature, or sqrt(d_k) when it is 0.
template <class S>
S temperature_of(const head<S>& h, const attention_params& params) {
  using std::sqrt;
  return params.temperature == 0 ? sqrt(S(h.d_k())) : S(params.temperature);
}

namespace detail {

template <class Derived>
void require_finite(const Eigen::MatrixBase<Derived>& m, const std::string& argument) {
  for (index r = 0; r < m.rows(); ++r)
    for (index c = 0; c < m.cols(); ++c)
      require(is_finite(m(r, c)), argument, "non-finite value at (", r, ", ", c, ")");
}

template <class Derived>
void require_shape(const Eigen::MatrixBase<Derived>& m, index rows, index cols, const std::string& argument) {
  require(m.rows() == rows && m.cols() == cols, argument, "expected ", rows, " x ", cols, ", got ", m.rows(),
          " x ", m.cols());
}

inline std::string head_arg(std::size_t h, const char* field) {
  return "heads[" + std::to_string(h) + "]." + field;
}

// Validates a head stack for embeddings of dimension p: shapes, finiteness, at least one head.
template <class S>
void validate_heads(const heads<S>& heads, index p) {
  require(!heads.empty(), "heads", "at least one head is required");
  for (std::size_t h = 0; h < heads.size(); ++h) {
    const head<S>& w = heads[h];
    require(w.W_Q.rows() > 0, head_arg(h, "W_Q"), "d_k must be positive, got ", w.W_Q.rows(), " rows");
    require(w.W_V.rows() > 0, head_arg(h, "W_V"), "d_v must be positive, got ", w.W_V.rows(), " rows");
    require_shape(w.W_Q, w.W_Q.rows(), p, head_arg(h, "W_Q"));
    require_shape(w.W_K, w.W_Q.rows(), p, head_arg(h, "W_K"));
    require_shape(w.W_V, w.W_V.rows(), p, head_arg(h, "W_V"));
    require_shape(w.W_O, p, w.W_V.rows(), head_arg(h, "W_O"));
    require_finite(w.W_Q, head_arg(h, "W_Q"));
    require_finite(w.W_K, head_arg(h, "W_K"));
    require_finite(w.W_V, head_arg(h, "W_V"));
    require_finite(w.W_O, head_arg(h, "W_O"));
  }
}

// `name`: the argument's name in messages ("params"; "attention" where barrier parameters come too).
inline void validate_params(const attention_params& params, const std::string& name = "params") {
  require(params.causal_mask == mask::strict || params.causal_mask == mask::inclusive, name + ".causal_mask",
          "unknown mask value");
  require(std::isfinite(params.temperature) && params.temperature >= 0, name + ".temperature",
          "must be finite and positive (or 0 for sqrt(d_k)), got ", params.temperature);
}

// Validates one sequence U (N, p) against a head stack: non-empty, finite, matching p.
template <class S>
void validate_sequence(const Eigen::Ref<const matrix<S>>& U, const std::string& argument) {
  require(U.rows() > 0, argument, "empty sequence (N = 0)");
  require(U.cols() > 0, argument, "embedding dimension p must be positive");
  require_finite(U, argument);
}

template <class S>
void validate_attention(const Eigen::Ref<const matrix<S>>& U, const heads<S>& heads, const attention_params& params,
                        const std::string& u_name = "U", const std::string& params_name = "params") {
  validate_params(params, params_name);
  validate_sequence<S>(U, u_name);
  validate_heads(heads, U.cols());
}

// Validates a batch of sequences: non-empty, each one as validate_attention with name "Us[b]".
// The sequences are checked before the heads, so that an invalid Us[0] (e.g. p = 0) is reported
// as such rather than as a head shape mismatch.
template <class S>
void validate_batch(std::span<const matrix<S>> Us, const heads<S>& heads, const attention_params& params,
                    const std::string& params_name = "params") {
  require(!Us.empty(), "Us", "empty batch");
  validate_params(params, params_name);
  for (std::size_t b = 0; b < Us.size(); ++b) {
    const std::string name = "Us[" + std::to_string(b) + "]";
    validate_sequence<S>(Us[b], name);
    require(Us[b].cols() == Us[0].cols(), name, "embedding dimension ", Us[b].cols(), " differs from Us[0]'s ",
            Us[0].cols());
  }
  validate_heads(heads, Us[0].cols());
}

}  // namespace detail
}  // namespace suptok
