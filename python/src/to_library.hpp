// python/src/to_library.hpp: from the extension's plain types (native.hpp) to the library's, and
// the one function that calls the library's barrier on either backend.
//
// Strings are parsed here with the library's validation path, so that a bad one raises
// suptok::error naming the Python argument ("mask", "policy", ...). The library validates the
// rest (shapes, finiteness, thresholds) and names what it checks ("heads[1].W_K", "params.eps").
#pragma once

#include <suptok/barrier/penalty.hpp>

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "native.hpp"

namespace suptok_python {

inline suptok::mask mask_of(const std::string& name) {
  suptok::detail::require(name == "strict" || name == "inclusive", "mask", "expected 'strict' or 'inclusive', got '",
                          name, "'");
  return name == "strict" ? suptok::mask::strict : suptok::mask::inclusive;
}

inline suptok::extension policy_of(const std::string& name) {
  suptok::detail::require(name == "exact" || name == "clamp" || name == "extended", "policy",
                          "expected 'exact', 'clamp' or 'extended', got '", name, "'");
  return name == "exact" ? suptok::extension::exact
                         : name == "clamp" ? suptok::extension::clamp : suptok::extension::extended;
}

inline suptok::attention_params attention_params_of(const settings& s) { return {mask_of(s.mask), s.temperature}; }

inline suptok::barrier_params barrier_params_of(const settings& s) { return {policy_of(s.policy), s.eps, s.z0}; }

// A plain head stack: H key/value heads for H query heads, no biases, no rotation (the barrier
// operator's inputs never carry them; the check guards the shared W_K count).
template <class S>
suptok::heads<S> heads_of(const weights<S>& w) {
  suptok::detail::require(w.W_K.size() == w.W_Q.size() && w.W_V.size() == w.W_Q.size() && w.W_O.size() == w.W_Q.size(),
                          "W_K", "the barrier takes one key, value and output matrix per query head (H = ",
                          w.W_Q.size(), "), got ", w.W_K.size(), ", ", w.W_V.size(), " and ", w.W_O.size());
  suptok::heads<S> hs;
  for (std::size_t h = 0; h < w.W_Q.size(); ++h) hs.push_back({w.W_Q[h], w.W_K[h], w.W_V[h], w.W_O[h]});
  return hs;
}

template <class S>
weights<S> weights_of(suptok::heads<S>&& hs) {
  weights<S> w;
  for (suptok::head<S>& h : hs) {
    w.W_Q.push_back(std::move(h.W_Q));
    w.W_K.push_back(std::move(h.W_K));
    w.W_V.push_back(std::move(h.W_V));
    w.W_O.push_back(std::move(h.W_O));
  }
  return w;
}

// The library's barrier on the backend of `tag...`: none for the reference, suptok::simd{} for the
// fast path (same four entry points, the tag first). The calls are qualified, so their overloads are
// those declared before this header: barrier_simd.cpp includes the simd headers first.
template <class S, class... Tag>
barrier_result<S> barrier_on(const std::vector<matrix<S>>& Us, bool batch, const weights<S>& w, const settings& s,
                             bool gradients, Tag... tag) {
  const suptok::barrier_params bp = barrier_params_of(s);
  const suptok::attention_params ap = attention_params_of(s);
  const suptok::heads<S> hs = heads_of(w);
  if (!batch) {
    if (!gradients) return {suptok::barrier_penalty<S>(tag..., Us.front(), hs, bp, ap), {}, {}};
    auto g = suptok::barrier_penalty_backward<S>(tag..., Us.front(), hs, bp, ap);
    std::vector<matrix<S>> dU;
    dU.push_back(std::move(g.grad.dU));
    return {g.penalty, std::move(dU), weights_of(std::move(g.grad.dW))};
  }
  const std::span<const matrix<S>> batch_of(Us);
  if (!gradients) return {suptok::barrier_penalty_batch<S>(tag..., batch_of, hs, bp, ap), {}, {}};
  auto g = suptok::barrier_penalty_batch_backward<S>(tag..., batch_of, hs, bp, ap);
  return {g.penalty, std::move(g.grad.dU), weights_of(std::move(g.grad.dW))};
}

}  // namespace suptok_python
