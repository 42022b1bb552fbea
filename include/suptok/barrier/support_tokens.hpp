// suptok/barrier/support_tokens.hpp: support tokens, the tokens closest to the degeneracy
// boundary, as support vectors are the points on the margin (docs/math.md section 3).
//
// Inputs are per-position lists (position t = 0..N-1, 0-based): margins[t], either m_t =
// sigma_min(J_t) (margins.hpp) or the signed margin sign(det J_t) m_t (analysis.hpp), which is
// negative at infeasible tokens so that they rank first; and, for rule (c), b[t] (penalty.hpp). Positions before `first` are trivial and
// never selected: pass first = first_nontrivial(mask) (2 under the strict mask, where J_0 = J_1 = I,
// m = 1, b = f(1); 0 under the inclusive mask), or 0 to consider every position.
//   (a) support_smallest(margins, k):           the k smallest margins
//   (b) support_within(margins, delta):         every token with margin <= delta
//   (c) support_barrier_fraction(margins, b, q): the smallest set of tokens whose b_t sum to at
//       least q * B, B = sum of b_t over the eligible tokens, taken largest b_t first.
//       b_t may be negative (det J_t > 1); taking the largest first makes every prefix the
//       largest sum of its size, so the first prefix reaching q * B is a smallest such set. B is
//       summed in that same order, so q = 1 reaches B exactly. If B <= 0 the empty set already
//       carries q * B and the result is empty. If B = +inf (exact policy, infeasible tokens) the
//       result is every token with b_t = +inf, by position.
// Ties are broken by position (lower position first). Results list positions (0-based) and their
// margins in order of selection: increasing margin for (a) and (b), decreasing b_t for (c).
#pragma once

#include <algorithm>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../core/scalar_traits.hpp"
#include "../core/view.hpp"
#include "margins.hpp"

namespace suptok {

template <class S>
struct support_set {
  std::vector<index> positions;  // 0-based token positions, in order of selection
  std::vector<S> margins;        // margins[i] is the margin of positions[i]
};

// The signed-margin column of token_margins, as the list the rules take: infeasible tokens rank first.
template <class S>
std::vector<S> margins_of(const std::vector<token_margin<S>>& ms) {
  std::vector<S> r;
  r.reserve(ms.size());
  for (const token_margin<S>& m : ms) r.push_back(m.signed_margin);
  return r;
}

namespace detail {

template <class S>
void validate_margins(const std::vector<S>& margins, index first) {
  for (std::size_t t = 0; t < margins.size(); ++t)
    require(is_finite(margins[t]), element{"margins", t}, "a margin must be finite, got ",
            to_double(margins[t]));
  require(first >= 0 && first <= static_cast<index>(margins.size()), "first", "must lie in [0, ", margins.size(),
          "], got ", first);
}

// Eligible positions [first, N) sorted by `before` (a strict order on positions), ties by position.
template <class Before>
std::vector<index> ordered_positions(index first, index N, Before before) {
  std::vector<index> pos(static_cast<std::size_t>(N - first));
  std::iota(pos.begin(), pos.end(), first);
  std::stable_sort(pos.begin(), pos.end(), before);  // stable: equal keys keep position order
  return pos;
}

template <class S>
support_set<S> support_of(std::vector<index> positions, const std::vector<S>& margins) {
  support_set<S> r{std::move(positions), {}};
  for (index t : r.positions) r.margins.push_back(margins[static_cast<std::size_t>(t)]);
  return r;
}

template <class S>
std::vector<index> by_margin(const std::vector<S>& margins, index first) {
  return ordered_positions(first, static_cast<index>(margins.size()), [&](index s, index t) {
    return margins[static_cast<std::size_t>(s)] < margins[static_cast<std::size_t>(t)];
  });
}

}  // namespace detail

// (a) The k smallest margins among positions [first, N); 0 <= k <= N - first.
template <class S>
support_set<S> support_smallest(const std::vector<S>& margins, index k, index first = 0) {
  detail::validate_margins(margins, first);
  const index eligible = static_cast<index>(margins.size()) - first;
  detail::require(k >= 0 && k <= eligible, "k", "must lie in [0, ", eligible, "] (eligible tokens), got ", k);
  std::vector<index> pos = detail::by_margin(margins, first);
  pos.resize(static_cast<std::size_t>(k));
  return detail::support_of(std::move(pos), margins);
}

// (b) Every position in [first, N) with margin <= delta (delta finite, >= 0).
template <class S>
support_set<S> support_within(const std::vector<S>& margins, const std::type_identity_t<S>& delta, index first = 0) {
  detail::validate_margins(margins, first);
  detail::require(is_finite(delta) && !(delta < S(0)), "delta", "must be finite and >= 0, got ", to_double(delta));
  std::vector<index> pos = detail::by_margin(margins, first);
  pos.erase(std::find_if(pos.begin(), pos.end(), [&](index t) { return delta < margins[static_cast<std::size_t>(t)]; }),
            pos.end());
  return detail::support_of(std::move(pos), margins);
}

// (c) The smallest set of positions in [first, N) carrying a fraction q (0 < q <= 1) of the total
// barrier B = sum_t b_t, largest b_t first. b has one entry per position (finite or +inf).
template <class S>
support_set<S> support_barrier_fraction(const std::vector<S>& margins, const std::vector<S>& b, double q,
                                        index first = 0) {
  detail::validate_margins(margins, first);
  detail::require(b.size() == margins.size(), "b", "expected ", margins.size(), " values (one per position), got ",
                  b.size());
  for (std::size_t t = 0; t < b.size(); ++t)
    detail::require(is_finite(b[t]) || S(0) < b[t], detail::element{"b", t},
                    "must be finite or +inf, got ", to_double(b[t]));
  detail::require(std::isfinite(q) && q > 0 && q <= 1, "q", "must lie in (0, 1], got ", q);
  const auto at = [&](index t) { return b[static_cast<std::size_t>(t)]; };
  std::vector<index> pos = detail::ordered_positions(first, static_cast<index>(b.size()),
                                                     [&](index s, index t) { return at(t) < at(s); });
  std::vector<index> chosen;
  if (!pos.empty() && !is_finite(at(pos.front()))) {  // B = +inf: every infinite b_t, by position
    for (index t = first; t < static_cast<index>(b.size()); ++t)
      if (!is_finite(at(t))) chosen.push_back(t);
    return detail::support_of(std::move(chosen), margins);
  }
  S total = S(0);
  for (index t : pos) total += at(t);
  const S target = S(q) * total;
  S carried = S(0);
  for (std::size_t i = 0; i < pos.size() && carried < target; ++i) {
    carried += at(pos[i]);
    chosen.push_back(pos[i]);
  }
  return detail::support_of(std::move(chosen), margins);
}

}  // namespace suptok
