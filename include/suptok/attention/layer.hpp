// suptok/attention/layer.hpp: one attention layer as data: query heads, shared key/value heads,
// optional biases and rotary position embeddings (docs/math.md sections 1 and 2.4).
//
// A layer has H_q query heads and H_kv key/value heads (H_kv divides H_q); query head h reads the
// key/value head g(h) = h / (H_q / H_kv) (grouped-query attention; H_kv = H_q is plain multi-head
// attention, H_kv = 1 multi-query attention). The shared weights are stored once.
//   W_Q[h]  (d_k, p)   b_Q[h]  (d_k)      h = 0..H_q-1
//   W_K[g]  (d_k, p)   b_K[g]  (d_k)      g = 0..H_kv-1
//   W_V[g]  (d_v, p)   b_V[g]  (d_v)
//   W_O[h]  (p, d_v)   b_O     (p)        one output bias for the layer
// A bias vector list is either empty (no bias) or has one entry per head. d_k and d_v may differ
// between key/value heads; the query heads of a group share its d_k and d_v.
//
// Per query head h (group g), token t (0-based position):
//   q'_t = W_Q[h] u_t + b_Q[h]        q_t  = R_t q'_t                         (d_k)
//   k'_s = W_K[g] u_s + b_K[g]        k~_s = R_s k'_s                         (d_k)
//   v_s  = W_V[g] u_s + b_V[g]                                                (d_v)
//   l_ts = q_t . k~_s / tau,  a_ts = softmax over s in P(t),  o_t = sum_s a_ts v_s
//   mu_t = sum_h W_O[h] o^h_t + b_O                                           (p)
// R_t is the identity without rotary embeddings (rope_theta = 0). With them (rope_theta > 0,
// d_k even), R_t rotates the coordinate pairs (i, i + d_k/2), i < d_k/2, by the angle
// t * rope_theta^(-2i/d_k): the rotate-half pairing of Llama and GPT-NeoX, applied to every
// coordinate of the head. R_t is orthogonal and R_t^T R_s = R_{s-t}.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "params.hpp"

namespace suptok {

template <class S>
struct layer {
  std::vector<matrix<S>> W_Q;  // H_q  x (d_k, p)
  std::vector<matrix<S>> W_K;  // H_kv x (d_k, p)
  std::vector<matrix<S>> W_V;  // H_kv x (d_v, p)
  std::vector<matrix<S>> W_O;  // H_q  x (p, d_v)
  std::vector<vector<S>> b_Q;  // empty, or H_q  x (d_k)
  std::vector<vector<S>> b_K;  // empty, or H_kv x (d_k)
  std::vector<vector<S>> b_V;  // empty, or H_kv x (d_v)
  vector<S> b_O;               // empty, or (p)
  double rope_theta = 0;       // rotary base frequency; 0: no rotary embedding

  index query_heads() const { return static_cast<index>(W_Q.size()); }
  index kv_heads() const { return static_cast<index>(W_K.size()); }
  index p() const { return W_Q.empty() ? 0 : W_Q.front().cols(); }
  // The key/value head read by query head h.
  std::size_t group_of(std::size_t h) const { return h / (W_Q.size() / W_K.size()); }
};

// The layer of a plain head stack: one key/value head per query head, no biases, no rotation.
template <class S>
layer<S> as_layer(const heads<S>& heads) {
  layer<S> out;
  for (const head<S>& w : heads) {
    out.W_Q.push_back(w.W_Q);
    out.W_K.push_back(w.W_K);
    out.W_V.push_back(w.W_V);
    out.W_O.push_back(w.W_O);
  }
  return out;
}

namespace detail {

// A layer of the same shapes with every weight and bias set to zero (gradients accumulate into it).
template <class S>
layer<S> zero_like(const layer<S>& layer) {
  const auto zeros = [](auto list) {
    for (auto& m : list) m.setZero();
    return list;
  };
  suptok::layer<S> z{zeros(layer.W_Q), zeros(layer.W_K), zeros(layer.W_V), zeros(layer.W_O),
             zeros(layer.b_Q), zeros(layer.b_K), zeros(layer.b_V), layer.b_O, layer.rope_theta};
  z.b_O.setZero();
  return z;
}

}  // namespace detail

// The rotation angles t * theta^(-2i/d), i < d/2, of position t; empty without rotary embeddings.
template <class S>
vector<S> rope_angles(index t, index d, double theta) {
  using std::pow;
  if (theta == 0) return vector<S>();
  vector<S> angle(d / 2);
  for (index i = 0; i < d / 2; ++i) angle(i) = S(t) * pow(S(theta), -S(2 * i) / S(d));
  return angle;
}

// x <- R x (sign = +1) or R^T x (sign = -1) for the angles of one position (in place, (d)).
template <class S, class Vec>
void rotate(Vec&& x, const vector<S>& angle, int sign = 1) {
  using std::cos;
  using std::sin;
  const index half = angle.size();
  for (index i = 0; i < half; ++i) {
    const S c = cos(angle(i)), s = S(sign) * sin(angle(i));
    const S x1 = x(i), x2 = x(i + half);
    x(i) = c * x1 - s * x2;
    x(i + half) = s * x1 + c * x2;
  }
}

// Rows t of X (N, d) <- R_t x_t (sign +1) or R_t^T x_t (sign -1), in place.
template <class S>
void rotate_rows(matrix<S>& X, double theta, int sign = 1) {
  if (theta == 0) return;
  for (index t = 0; t < X.rows(); ++t) rotate<S>(X.row(t).transpose(), rope_angles<S>(t, X.cols(), theta), sign);
}

namespace detail {

inline std::string layer_arg(const char* field, std::size_t h) {
  return std::string("layer.") + field + "[" + std::to_string(h) + "]";
}

template <class S>
void validate_bias_list(const std::vector<vector<S>>& b, const std::vector<matrix<S>>& W, const char* field) {
  require(b.empty() || b.size() == W.size(), std::string("layer.") + field, "expected no biases or ", W.size(),
          " (one per head), got ", b.size());
  for (std::size_t h = 0; h < b.size(); ++h) {
    require(b[h].size() == W[h].rows(), layer_arg(field, h), "expected ", W[h].rows(), " entries, got ", b[h].size());
    require_finite(b[h], layer_arg(field, h));
  }
}

// Validates a layer for embeddings of dimension p: head counts, shapes, biases, finiteness and the
// rotary base.
template <class S>
void validate_layer_weights(const layer<S>& layer, index p) {
  require(!layer.W_Q.empty(), "layer.W_Q", "at least one query head is required");
  require(!layer.W_K.empty() && layer.W_Q.size() % layer.W_K.size() == 0, "layer.W_K",
          "the number of key/value heads must divide the number of query heads (", layer.W_Q.size(), "), got ",
          layer.W_K.size());
  require(layer.W_V.size() == layer.W_K.size(), "layer.W_V", "expected ", layer.W_K.size(),
          " value heads (one per key head), got ", layer.W_V.size());
  require(layer.W_O.size() == layer.W_Q.size(), "layer.W_O", "expected ", layer.W_Q.size(),
          " output blocks (one per query head), got ", layer.W_O.size());
  require(std::isfinite(layer.rope_theta) && layer.rope_theta >= 0, "layer.rope_theta",
          "must be finite and >= 0 (0: no rotary embedding), got ", layer.rope_theta);
  for (std::size_t g = 0; g < layer.W_K.size(); ++g) {
    const index d_k = layer.W_K[g].rows(), d_v = layer.W_V[g].rows();
    require(d_k > 0, layer_arg("W_K", g), "d_k must be positive");
    require(d_v > 0, layer_arg("W_V", g), "d_v must be positive");
    require(layer.rope_theta == 0 || d_k % 2 == 0, layer_arg("W_K", g), "rotary embeddings need an even d_k, got ",
            d_k);
    require_shape(layer.W_K[g], d_k, p, layer_arg("W_K", g));
    require_shape(layer.W_V[g], d_v, p, layer_arg("W_V", g));
    require_finite(layer.W_K[g], layer_arg("W_K", g));
    require_finite(layer.W_V[g], layer_arg("W_V", g));
  }
  for (std::size_t h = 0; h < layer.W_Q.size(); ++h) {
    const std::size_t g = layer.group_of(h);
    require_shape(layer.W_Q[h], layer.W_K[g].rows(), p, layer_arg("W_Q", h));
    require_shape(layer.W_O[h], p, layer.W_V[g].rows(), layer_arg("W_O", h));
    require_finite(layer.W_Q[h], layer_arg("W_Q", h));
    require_finite(layer.W_O[h], layer_arg("W_O", h));
  }
  validate_bias_list(layer.b_Q, layer.W_Q, "b_Q");
  validate_bias_list(layer.b_K, layer.W_K, "b_K");
  validate_bias_list(layer.b_V, layer.W_V, "b_V");
  require(layer.b_O.size() == 0 || layer.b_O.size() == p, "layer.b_O", "expected no bias or ", p, " entries, got ",
          layer.b_O.size());
  require_finite(layer.b_O, "layer.b_O");
}

template <class S>
void validate_layer_attention(const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                              const attention_params& params, const std::string& u_name = "U",
                              const std::string& params_name = "params") {
  validate_params(params, params_name);
  validate_sequence<S>(U, u_name);
  validate_layer_weights(layer, U.cols());
}

}  // namespace detail
}  // namespace suptok
