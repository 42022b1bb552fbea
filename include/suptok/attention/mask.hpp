// suptok/attention/mask.hpp: the causal masks of docs/math.md section 1.
//
//   mask::strict     P(t) = {s < t}    (token 0 has an empty past; its output is 0)
//   mask::inclusive  P(t) = {s <= t}   (the usual decoder mask)
// Positions are 0-based in code (t = 0..N-1); docs/math.md counts from 1.
#pragma once

#include "../core/config.hpp"
#include "../core/view.hpp"

namespace suptok {

enum class mask { strict, inclusive };

// One past the last position in P(t): the past of t is [0, past_end(t, m)).
SUPTOK_HD inline index past_end(index t, mask m) { return m == mask::strict ? t : t + 1; }

// The first position with a non-trivial Jacobian block J_t (docs/math.md sections 2.1 and 2.2): 2
// under the strict mask (tokens 0 and 1 have C_t = 0), 0 under the inclusive one.
SUPTOK_HD inline index first_nontrivial(mask m) { return m == mask::strict ? 2 : 0; }

inline const char* to_string(mask m) { return m == mask::strict ? "strict" : "inclusive"; }

}  // namespace suptok
