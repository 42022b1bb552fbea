// Helpers of the layer tests: seeded layers with every variant (grouped-query heads, biases,
// rotary embeddings), casts between scalar types, a visitor over every parameter block, and an
// independent naive forward written from the definitions (explicit rotation matrices, explicit
// loops), against which the library's forward and Jacobian blocks are checked.
#pragma once

#include "test_support.hpp"

#include <suptok/attention/layer_attention.hpp>
#include <suptok/likelihood/layer_jacobian.hpp>
#include <suptok/likelihood/projected.hpp>

#include <string>
#include <vector>

namespace suptok::test {

struct layer_case {
  const char* name;
  index H_q, H_kv, d_k, d_v;
  bool biases;
  double rope_theta;
};

// The variants every layer test runs: plain, biases, grouped-query, multi-query, rotary.
inline const std::vector<layer_case> layer_cases{
    {"plain H=2", 2, 2, 3, 2, false, 0},
    {"biases", 2, 2, 3, 2, true, 0},
    {"grouped-query 4/2 + biases", 4, 2, 2, 2, true, 0},
    {"multi-query 3/1", 3, 1, 2, 3, false, 0},
    {"rotary theta=100 + grouped 2/1 + biases", 2, 1, 4, 2, true, 100},
};

// A wider layer for the fast path's tiles and recursions (n = 64).
inline const layer_case wide_grouped_rotary{"4 query heads on 2 key/value heads of width 16, biases, rotary", 4, 2,
                                            16, 16, true, 500};

template <class S>
layer<S> random_layer(index p, const layer_case& c, std::uint64_t seed, double scale = 0.5) {
  layer<S> l;
  for (index h = 0; h < c.H_q; ++h) {
    l.W_Q.push_back(random_matrix<S>(c.d_k, p, seed++, scale));
    l.W_O.push_back(random_matrix<S>(p, c.d_v, seed++, scale));
    if (c.biases) l.b_Q.push_back(random_matrix<S>(c.d_k, 1, seed++, scale));
  }
  for (index g = 0; g < c.H_kv; ++g) {
    l.W_K.push_back(random_matrix<S>(c.d_k, p, seed++, scale));
    l.W_V.push_back(random_matrix<S>(c.d_v, p, seed++, scale));
    if (c.biases) {
      l.b_K.push_back(random_matrix<S>(c.d_k, 1, seed++, scale));
      l.b_V.push_back(random_matrix<S>(c.d_v, 1, seed++, scale));
    }
  }
  if (c.biases) l.b_O = random_matrix<S>(p, 1, seed++, scale);
  l.rope_theta = c.rope_theta;
  return l;
}

// f(block) for every parameter block of the layer, in a fixed order: W_Q, W_K, W_V, W_O, b_Q, b_K,
// b_V, b_O (matrices and vectors alike).
template <class L, class F>
void for_each_block(L& l, F&& f) {
  for (auto* list : {&l.W_Q, &l.W_K, &l.W_V, &l.W_O})
    for (auto& m : *list) f(m);
  for (auto* list : {&l.b_Q, &l.b_K, &l.b_V})
    for (auto& v : *list) f(v);
  if (l.b_O.size() > 0) f(l.b_O);
}

template <class To, class From>
layer<To> cast(const layer<From>& l) {
  layer<To> r;
  const auto cast_list = [](const auto& list, auto& out) {
    for (const auto& m : list) {
      out.emplace_back(m.rows(), m.cols());
      for (index i = 0; i < m.rows(); ++i)
        for (index j = 0; j < m.cols(); ++j) out.back()(i, j) = To(m(i, j));
    }
  };
  cast_list(l.W_Q, r.W_Q);
  cast_list(l.W_K, r.W_K);
  cast_list(l.W_V, r.W_V);
  cast_list(l.W_O, r.W_O);
  cast_list(l.b_Q, r.b_Q);
  cast_list(l.b_K, r.b_K);
  cast_list(l.b_V, r.b_V);
  r.b_O.resize(l.b_O.size());
  for (index i = 0; i < l.b_O.size(); ++i) r.b_O(i) = To(l.b_O(i));
  r.rope_theta = l.rope_theta;
  return r;
}

// The largest entrywise difference between two gradients of a layer (U and every block), relative
// to the largest entry of the whole reference gradient `ref` (per-block relative errors would divide
// rounding by rounding where a block's true gradient is zero, e.g. b_K without rotation).
template <class A, class R>
double max_gradient_difference(const layer_gradients<A>& a, const layer_gradients<R>& ref) {
  std::vector<matrix<A>> blocks_a{a.dU};
  std::vector<matrix<R>> blocks_r{ref.dU};
  layer<A> wa = a.dW;
  layer<R> wr = ref.dW;
  for_each_block(wa, [&](auto& b) { blocks_a.push_back(b); });
  for_each_block(wr, [&](auto& b) { blocks_r.push_back(b); });
  double diff = 0, scale = 0;
  for (std::size_t k = 0; k < blocks_r.size(); ++k) {
    const double block_scale = std::abs(to_double(blocks_r[k].cwiseAbs().maxCoeff()));
    diff = std::max(diff, max_rel_error(blocks_a[k], blocks_r[k]) * block_scale);
    scale = std::max(scale, block_scale);
  }
  return diff / scale;
}

// A seeded random direction over U and every block of a layer, and dual copies of (U, l) whose
// slopes are that direction: the derivative of any function of them along the direction is
// compared with <analytic gradient, direction> (dot).
template <class R>
struct random_direction_of_layer {
  matrix<R> dU;
  std::vector<matrix<R>> dW;  // for_each_block order
  matrix<dual<R>> U;
  layer<dual<R>> l;

  // <g, direction>, or with magnitudes sum |g| |direction| (the scale of that sum's rounding).
  R dot(const matrix<R>& gU, layer<R> gW, bool magnitudes = false) const {
    const auto term = [&](const auto& g, const auto& d) {
      return magnitudes ? R((g.array().abs() * d.array().abs()).sum()) : R((g.array() * d.array()).sum());
    };
    R sum = term(gU, dU);
    std::size_t k = 0;
    for_each_block(gW, [&](auto& b) { sum += term(b, dW[k++]); });
    return sum;
  }
};

template <class R>
random_direction_of_layer<R> random_direction(const matrix<R>& U, layer<R> l, std::uint64_t seed) {
  random_direction_of_layer<R> d;
  d.dU = random_matrix<R>(U.rows(), U.cols(), seed++);
  for_each_block(l, [&](auto& b) { d.dW.push_back(random_matrix<R>(b.rows(), b.cols(), seed++)); });
  d.U = cast<dual<R>>(U);
  for (index i = 0; i < U.rows(); ++i)
    for (index j = 0; j < U.cols(); ++j) d.U(i, j) = make_dual<R>(U(i, j), d.dU(i, j));
  d.l = cast<dual<R>>(l);
  std::size_t k = 0;
  for_each_block(d.l, [&](auto& b) {
    for (index i = 0; i < b.rows(); ++i)
      for (index j = 0; j < b.cols(); ++j) b(i, j) = make_dual<R>(static_cast<R>(b(i, j)), d.dW[k](i, j));
    ++k;
  });
  return d;
}

// The rotation matrix R_t (d, d) of position t, written out: pairs (i, i + d/2) rotated by
// t * theta^(-2i/d). The identity when theta = 0.
template <class S>
matrix<S> rotation_matrix(index t, index d, double theta) {
  using std::cos;
  using std::pow;
  using std::sin;
  matrix<S> R = matrix<S>::Identity(d, d);
  if (theta == 0) return R;
  for (index i = 0; i < d / 2; ++i) {
    const S angle = S(t) * pow(S(theta), S(-2 * i) / S(d));
    R(i, i) = cos(angle);
    R(i, i + d / 2) = -sin(angle);
    R(i + d / 2, i) = sin(angle);
    R(i + d / 2, i + d / 2) = cos(angle);
  }
  return R;
}

// mu (N, p) from the definitions, one token and one head at a time; tau = sqrt(d_k). When
// head_outputs is given, it receives O^h (N, d_v) of every query head.
template <class S>
matrix<S> naive_layer_mu(const matrix<S>& U, const layer<S>& l, mask m, std::vector<matrix<S>>* head_outputs = nullptr) {
  using std::exp;
  using std::sqrt;
  const index N = U.rows(), p = U.cols(), H = static_cast<index>(l.W_Q.size());
  matrix<S> mu = matrix<S>::Zero(N, p);
  if (head_outputs) head_outputs->assign(static_cast<std::size_t>(H), matrix<S>());
  for (index h = 0; h < H; ++h) {
    const std::size_t g = static_cast<std::size_t>(h / (H / static_cast<index>(l.W_K.size())));
    if (head_outputs) (*head_outputs)[static_cast<std::size_t>(h)].setZero(N, l.W_V[g].rows());
    const auto& Wq = l.W_Q[static_cast<std::size_t>(h)];
    const index d_k = Wq.rows();
    const S tau = sqrt(S(d_k));
    const auto bias = [&](const std::vector<vector<S>>& b, std::size_t k, index n) {
      return b.empty() ? vector<S>(vector<S>::Zero(n)) : b[k];
    };
    for (index t = 0; t < N; ++t) {
      const index end = m == mask::strict ? t : t + 1;
      if (end == 0) continue;
      const vector<S> q = rotation_matrix<S>(t, d_k, l.rope_theta) *
                          (Wq * U.row(t).transpose() + bias(l.b_Q, static_cast<std::size_t>(h), d_k));
      std::vector<S> w(static_cast<std::size_t>(end));
      S z = S(0);
      for (index s = 0; s < end; ++s) {
        const vector<S> k = rotation_matrix<S>(s, d_k, l.rope_theta) *
                            (l.W_K[g] * U.row(s).transpose() + bias(l.b_K, g, d_k));
        w[static_cast<std::size_t>(s)] = exp(q.dot(k) / tau);
        z += w[static_cast<std::size_t>(s)];
      }
      vector<S> o = vector<S>::Zero(l.W_V[g].rows());
      for (index s = 0; s < end; ++s)
        o += (w[static_cast<std::size_t>(s)] / z) * (l.W_V[g] * U.row(s).transpose() + bias(l.b_V, g, l.W_V[g].rows()));
      mu.row(t) += (l.W_O[static_cast<std::size_t>(h)] * o).transpose();
      if (head_outputs) (*head_outputs)[static_cast<std::size_t>(h)].row(t) = o.transpose();
    }
  }
  if (l.b_O.size() > 0) mu.rowwise() += l.b_O.transpose();
  return mu;
}

// analyse's options with the mask, form and margin method set, the rest at their defaults.
inline analysis_options options_with(mask m, jacobian_form f, margin_method mm) {
  analysis_options o;
  o.attention = {m, 0};
  o.form = f;
  o.margins = mm;
  return o;
}

}  // namespace suptok::test
