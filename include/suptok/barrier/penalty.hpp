// suptok/barrier/penalty.hpp: the log-barrier penalty of a sequence, a batch and a layer stack,
// and its gradients (docs/math.md sections 3 and 4), reference path.
//
//   b_t      = f(det J_t)                     per token, t = 0..N-1 (0-based), f: policy.hpp
//   penalty  = mean of b_t over the tokens with a non-trivial J_t:
//                strict mask     t >= 2   (docs/math.md's t >= 3; J_0 = J_1 = I exactly, b = f(1))
//                inclusive mask  every t  (J_0 = I - sum_h V_h is not trivial)
//   batch    = mean over all non-trivial tokens of all sequences (pooled, so a sequence weighs
//              by its number of non-trivial tokens; heads shared by the batch)
//   layers   = mean over all non-trivial tokens of all layers (pooled, = mean_{layers, t} b_t of
//              docs/math.md section 4); layer l has its own (U_l, heads_l); no propagation between
//              layers: the user composes them.
// With no non-trivial token (strict, N <= 2) the mean is empty: the penalty is 0, gradients 0.
//
// Gradients: dpenalty/dJ_t = (1/n) db_t/dJ_t (block.hpp) for the counted tokens, then
// jacobian_blocks_backward (likelihood/jacobian_backward.hpp) to U, W_Q, W_K, W_V, W_O. A layer in
// the projected form differentiates b_t = f(det(I - K_t)) the same way: dK_t = -(1/n) db_t/dB_t at
// B_t = I - K_t, then projected_blocks_backward (likelihood/projected_backward.hpp).
// Under the exact policy b_t = +inf at an infeasible token (det J_t <= 0) makes the penalty +inf;
// asking for its gradient throws suptok::error naming the sequence and the token.
// Shapes: U (N, p), heads as attention/params.hpp, J_t (p, p). Cost O(N^2 p^2 H + N p^3).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "../likelihood/jacobian.hpp"
#include "../likelihood/jacobian_backward.hpp"
#include "../likelihood/layer_jacobian_backward.hpp"
#include "../likelihood/projected_backward.hpp"
#include "block.hpp"

namespace suptok {

// One layer of a stack: its input sequence and its heads (references: the caller owns them).
template <class S>
struct barrier_layer {
  const matrix<S>& U;   // (N_l, p_l)
  const suptok::heads<S>& heads;
};

// A penalty value with its gradients G (attention_gradients, attention_batch_gradients, or one
// attention_gradients per layer).
template <class S, class G = attention_gradients<S>>
struct barrier_gradients {
  S penalty;
  G grad;
};

namespace detail {

// Per-token barrier values of one validated sequence: the blocks whose determinant is det J_t
// (J_t (p, p) in the general form, I - K_t (n, n) in the projected form), their log-determinants
// and b_t.
template <class S>
struct sequence_barrier {
  std::vector<matrix<S>> J;             // N blocks
  std::vector<signed_log_det<S>> ld;    // N
  std::vector<S> b;                     // N
  jacobian_form form = jacobian_form::general;
};

// The N blocks of `form` (resolved: general or projected); a head stack has the general form only.
template <class S>
std::vector<matrix<S>> determinant_blocks(const Eigen::Ref<const matrix<S>>& U, const heads<S>& heads,
                                          const attention_params& attention, jacobian_form) {
  return jacobian_blocks<S>(U, heads, attention);
}
template <class S>
std::vector<matrix<S>> determinant_blocks(const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                                          const attention_params& attention, jacobian_form form) {
  if (form == jacobian_form::general) return jacobian_blocks<S>(U, layer, attention);
  std::vector<matrix<S>> B = projected_blocks<S>(U, layer, attention);
  for (matrix<S>& K : B) K = matrix<S>::Identity(K.rows(), K.cols()) - K;  // I - K_t
  return B;
}

// The gradient of sum_t <dB[t], B_t> for the blocks B_t of determinant_blocks.
template <class S>
attention_gradients<S> determinant_blocks_backward(std::vector<matrix<S>>& dB, const Eigen::Ref<const matrix<S>>& U,
                                                   const heads<S>& heads, const attention_params& attention,
                                                   jacobian_form) {
  return jacobian_blocks_backward_unchecked<S>(dB, U, heads, attention);
}
template <class S>
layer_gradients<S> determinant_blocks_backward(std::vector<matrix<S>>& dB, const Eigen::Ref<const matrix<S>>& U,
                                               const layer<S>& layer, const attention_params& attention,
                                               jacobian_form form) {
  if (form == jacobian_form::general) return jacobian_blocks_backward_unchecked<S>(dB, U, layer, attention);
  for (matrix<S>& d : dB) d = -d;  // B_t = I - K_t: dK_t = -dB_t
  return projected_blocks_backward_unchecked<S>(dB, U, layer, attention);
}

// W: a head stack (heads<S>) or a layer (layer<S>); `argument` names U in errors.
template <class S, class W>
sequence_barrier<S> sequence_barrier_forward(const Eigen::Ref<const matrix<S>>& U, const W& heads,
                                             const barrier_params& barrier, const attention_params& attention,
                                             const std::string& argument,
                                             jacobian_form form = jacobian_form::general) {
  sequence_barrier<S> r{determinant_blocks<S>(U, heads, attention, form), {}, {}, form};
  r.ld.reserve(r.J.size());
  r.b.reserve(r.J.size());
  for (std::size_t t = 0; t < r.J.size(); ++t) {
    r.ld.push_back(log_det<S>(r.J[t]));
    r.b.push_back(token_barrier(r.ld.back(), barrier, argument, index(t)));
  }
  return r;
}

// Number of counted tokens and the sum of their b_t.
inline index counted_tokens(index N, mask m) {
  return N > first_nontrivial(m) ? N - first_nontrivial(m) : 0;
}
template <class S>
S counted_sum(const std::vector<S>& b, mask m) {
  S sum = S(0);
  for (std::size_t t = static_cast<std::size_t>(first_nontrivial(m)); t < b.size(); ++t) sum += b[t];
  return sum;
}

// The gradients with respect to U and the weights W: attention_gradients for a head stack,
// layer_gradients for a layer.
template <class W>
struct gradients_for;
template <class S>
struct gradients_for<heads<S>> {
  using type = attention_gradients<S>;
};
template <class S>
struct gradients_for<layer<S>> {
  using type = layer_gradients<S>;
};

// The gradient of weight * sum_{counted t} b_t with respect to U and the weights W of one sequence.
template <class S, class W>
typename gradients_for<W>::type sequence_barrier_backward(const sequence_barrier<S>& fw, const S& weight,
                                                          const Eigen::Ref<const matrix<S>>& U, const W& heads,
                                                          const barrier_params& barrier,
                                                          const attention_params& attention,
                                                          const std::string& argument) {
  std::vector<matrix<S>> dJ;
  dJ.reserve(fw.J.size());
  for (index t = 0; t < U.rows(); ++t) {
    const auto k = static_cast<std::size_t>(t);
    if (t < first_nontrivial(attention.causal_mask))
      dJ.push_back(matrix<S>::Zero(fw.J[k].rows(), fw.J[k].cols()));
    else
      dJ.push_back(weight * barrier_block_backward_unchecked<S>(fw.J[k], fw.ld[k], barrier, argument, token_name{t}));
  }
  return determinant_blocks_backward<S>(dJ, U, heads, attention, fw.form);
}

// The gradient of weight * sum_{counted t} b_t of one validated sequence under a head stack: dU
// (N, p) is set, the heads' gradients are added to dW; returns the sequence's sum of counted b_t.
template <class S>
S sequence_barrier_accumulate(matrix<S>& dU, heads<S>& dW, const Eigen::Ref<const matrix<S>>& U,
                              const heads<S>& heads, const S& weight, const barrier_params& barrier,
                              const attention_params& attention, const std::string& argument) {
  const auto fw = sequence_barrier_forward<S>(U, heads, barrier, attention, argument);
  attention_gradients<S> g = sequence_barrier_backward<S>(fw, weight, U, heads, barrier, attention, argument);
  dU = std::move(g.dU);
  for (std::size_t h = 0; h < heads.size(); ++h) {
    dW[h].W_Q += g.dW[h].W_Q;
    dW[h].W_K += g.dW[h].W_K;
    dW[h].W_V += g.dW[h].W_V;
    dW[h].W_O += g.dW[h].W_O;
  }
  return counted_sum<S>(fw.b, attention.causal_mask);
}

// The penalty of one validated sequence U and its gradients with respect to U and the weights W
// (a head stack or a layer).
template <class S, class W>
barrier_gradients<S, typename gradients_for<W>::type> sequence_penalty_backward(
    const Eigen::Ref<const matrix<S>>& U, const W& weights, const barrier_params& barrier,
    const attention_params& attention, jacobian_form form = jacobian_form::general) {
  const index n = counted_tokens(U.rows(), attention.causal_mask);
  if (n == 0) return {S(0), {matrix<S>::Zero(U.rows(), U.cols()), zero_like(weights)}};
  const auto fw = sequence_barrier_forward<S>(U, weights, barrier, attention, "U", form);
  return {counted_sum<S>(fw.b, attention.causal_mask) / S(n),
          sequence_barrier_backward<S>(fw, S(1) / S(n), U, weights, barrier, attention, "U")};
}

// Re-throws a validation error of layer l with the argument prefixed by "layers[l].".
template <class F>
void validate_layer(std::size_t l, F&& validate) {
  try {
    validate();
  } catch (const error& e) {
    const std::string prefix = "layers[" + std::to_string(l) + "].";
    const std::string what = e.what();
    const std::string head = "suptok: " + e.argument() + ": ";
    throw error(prefix + e.argument(), what.compare(0, head.size(), head) == 0 ? what.substr(head.size()) : what);
  }
}

template <class S>
void validate_layers(const std::vector<barrier_layer<S>>& layers, const attention_params& attention) {
  require(!layers.empty(), "layers", "at least one layer is required");
  validate_params(attention, "attention");
  for (std::size_t l = 0; l < layers.size(); ++l)
    validate_layer(l, [&] {
      validate_sequence<S>(layers[l].U, "U");
      validate_heads(layers[l].heads, layers[l].U.cols());
    });
}

}  // namespace detail

// b_t for every token t = 0..N-1 of U (N, p) (trivial tokens included: b = f(1) there).
template <class S>
std::vector<S> barrier_per_token(const_ref<S> U, const heads<S>& heads, const barrier_params& barrier,
                            const attention_params& attention = {}) {
  detail::validate_barrier(barrier);
  detail::validate_attention<S>(U, heads, attention, "U", "attention");
  return detail::sequence_barrier_forward<S>(U, heads, barrier, attention, "U").b;
}

// The penalty of one sequence: mean of b_t over its non-trivial tokens.
template <class S>
S barrier_penalty(const_ref<S> U, const heads<S>& heads, const barrier_params& barrier,
                  const attention_params& attention = {}) {
  detail::validate_barrier(barrier);
  detail::validate_attention<S>(U, heads, attention, "U", "attention");
  const index n = detail::counted_tokens(U.rows(), attention.causal_mask);
  if (n == 0) return S(0);
  return detail::counted_sum<S>(detail::sequence_barrier_forward<S>(U, heads, barrier, attention, "U").b,
                                attention.causal_mask) /
         S(n);
}

// The penalty of one sequence and its gradients with respect to U and the heads.
template <class S>
barrier_gradients<S> barrier_penalty_backward(const_ref<S> U, const heads<S>& heads, const barrier_params& barrier,
                                              const attention_params& attention = {}) {
  detail::validate_barrier(barrier);
  detail::validate_attention<S>(U, heads, attention, "U", "attention");
  return detail::sequence_penalty_backward<S>(U, heads, barrier, attention);
}

// The same three for a layer (grouped-query heads, biases, rotary embeddings; attention/layer.hpp),
// in the general form (J_t) or the projected form (I - K_t, likelihood/projected.hpp); automatic
// takes the cheaper by choose_form. Both forms give the same values and gradients up to rounding.
// Gradients reach U and every weight and bias (those of b_V and b_O are zero).
template <class S>
std::vector<S> barrier_per_token(const_ref<S> U, const layer<S>& layer, const barrier_params& barrier,
                                 const attention_params& attention = {},
                                 jacobian_form form = jacobian_form::automatic) {
  detail::validate_barrier(barrier);
  detail::validate_layer_attention<S>(U, layer, attention, "U", "attention");
  detail::validate_form(form, "form");
  return detail::sequence_barrier_forward<S>(U, layer, barrier, attention, "U", resolve_form(form, U.rows(), layer)).b;
}

template <class S>
S barrier_penalty(const_ref<S> U, const layer<S>& layer, const barrier_params& barrier,
                  const attention_params& attention = {}, jacobian_form form = jacobian_form::automatic) {
  const index n = detail::counted_tokens(U.rows(), attention.causal_mask);
  const std::vector<S> b = barrier_per_token<S>(U, layer, barrier, attention, form);
  return n == 0 ? S(0) : detail::counted_sum<S>(b, attention.causal_mask) / S(n);
}

template <class S>
barrier_gradients<S, layer_gradients<S>> barrier_penalty_backward(const_ref<S> U, const layer<S>& layer,
                                                                  const barrier_params& barrier,
                                                                  const attention_params& attention = {},
                                                                  jacobian_form form = jacobian_form::automatic) {
  detail::validate_barrier(barrier);
  detail::validate_layer_attention<S>(U, layer, attention, "U", "attention");
  detail::validate_form(form, "form");
  return detail::sequence_penalty_backward<S>(U, layer, barrier, attention, resolve_form(form, U.rows(), layer));
}

// The penalty of a batch (heads shared): mean over all non-trivial tokens of all sequences.
template <class S>
S barrier_penalty_batch(std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads,
                        const barrier_params& barrier, const attention_params& attention = {}) {
  detail::validate_barrier(barrier);
  detail::validate_batch<S>(Us, heads, attention, "attention");
  index n = 0;
  S sum = S(0);
  for (std::size_t b = 0; b < Us.size(); ++b) {
    n += detail::counted_tokens(Us[b].rows(), attention.causal_mask);
    sum += detail::counted_sum<S>(
        detail::sequence_barrier_forward<S>(Us[b], heads, barrier, attention, "Us[" + std::to_string(b) + "]").b,
        attention.causal_mask);
  }
  return n == 0 ? S(0) : sum / S(n);
}

// The batch penalty and its gradients: dU per sequence, dW summed over the batch.
template <class S>
barrier_gradients<S, attention_batch_gradients<S>> barrier_penalty_batch_backward(
    std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads, const barrier_params& barrier,
    const attention_params& attention = {}) {
  detail::validate_barrier(barrier);
  detail::validate_batch<S>(Us, heads, attention, "attention");
  index n = 0;
  for (const matrix<S>& U : Us) n += detail::counted_tokens(U.rows(), attention.causal_mask);
  barrier_gradients<S, attention_batch_gradients<S>> r{S(0), {{}, detail::zero_like(heads)}};
  r.grad.dU.reserve(Us.size());
  const S weight = n == 0 ? S(0) : S(1) / S(n);
  S sum = S(0);
  for (std::size_t b = 0; b < Us.size(); ++b) {
    r.grad.dU.emplace_back();
    sum += detail::sequence_barrier_accumulate<S>(r.grad.dU.back(), r.grad.dW, Us[b], heads, weight, barrier,
                                                  attention, "Us[" + std::to_string(b) + "]");
  }
  if (n > 0) r.penalty = sum / S(n);
  return r;
}

// The penalty of a layer stack: mean of b_t over all non-trivial tokens of all layers.
template <class S>
S barrier_penalty_layers(const std::vector<barrier_layer<S>>& layers, const barrier_params& barrier,
                         const attention_params& attention = {}) {
  detail::validate_barrier(barrier);
  detail::validate_layers<S>(layers, attention);
  index n = 0;
  S sum = S(0);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::string argument = "layers[" + std::to_string(l) + "].U";
    n += detail::counted_tokens(layers[l].U.rows(), attention.causal_mask);
    sum += detail::counted_sum<S>(
        detail::sequence_barrier_forward<S>(layers[l].U, layers[l].heads, barrier, attention, argument).b,
        attention.causal_mask);
  }
  return n == 0 ? S(0) : sum / S(n);
}

// The layer-stack penalty and, for each layer l, its gradients with respect to U_l and heads_l.
template <class S>
barrier_gradients<S, std::vector<attention_gradients<S>>> barrier_penalty_layers_backward(
    const std::vector<barrier_layer<S>>& layers, const barrier_params& barrier,
    const attention_params& attention = {}) {
  detail::validate_barrier(barrier);
  detail::validate_layers<S>(layers, attention);
  index n = 0;
  for (const barrier_layer<S>& layer : layers) n += detail::counted_tokens(layer.U.rows(), attention.causal_mask);
  barrier_gradients<S, std::vector<attention_gradients<S>>> r{S(0), {}};
  r.grad.reserve(layers.size());
  const S weight = n == 0 ? S(0) : S(1) / S(n);
  S sum = S(0);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::string argument = "layers[" + std::to_string(l) + "].U";
    const auto fw = detail::sequence_barrier_forward<S>(layers[l].U, layers[l].heads, barrier, attention, argument);
    sum += detail::counted_sum<S>(fw.b, attention.causal_mask);
    r.grad.push_back(
        detail::sequence_barrier_backward<S>(fw, weight, layers[l].U, layers[l].heads, barrier, attention, argument));
  }
  if (n > 0) r.penalty = sum / S(n);
  return r;
}

}  // namespace suptok
