// suptok/likelihood/form.hpp: which form computes det J_t (docs/math.md sections 2.1 to 2.3) and
// the operation counts that choose between them; plain C++ (no Eigen), shared by the CPU paths and
// the CUDA backend.
#pragma once

#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/view.hpp"

namespace suptok {

// Which form computes det J_t: the general (p, p) blocks, the projected (n, n) blocks I - K_t, or
// the cheaper of the two for the call (choose_form).
enum class jacobian_form { automatic, general, projected };

inline const char* to_string(jacobian_form f) {
  return f == jacobian_form::automatic ? "automatic" : f == jacobian_form::general ? "general" : "projected";
}

// A query head's widths: d_k of its queries and keys, d_v of its values.
struct head_widths {
  index d_k, d_v;
};

// The form with fewer operations for N tokens of width p under the query heads `heads`. Per query
// head and pair (t, s): the general form costs 2 p (d_k + p) (g_ts and the (p, p) covariance), the
// projected form 2 d_v d_k; per token the general form adds 2 p^2 d_v per head and an LU of size p,
// the projected form 2 d_k d_v n per head and an LU of size n = sum_h d_v.
inline jacobian_form choose_form(index N, index p, const std::vector<head_widths>& heads) {
  const double tokens = static_cast<double>(N), pairs = 0.5 * tokens * tokens, width = static_cast<double>(p);
  double n = 0;
  for (const head_widths& h : heads) n += static_cast<double>(h.d_v);
  double general = 2.0 / 3.0 * width * width * width * tokens, projected = 2.0 / 3.0 * n * n * n * tokens;
  for (const head_widths& h : heads) {
    const double d_k = static_cast<double>(h.d_k), d_v = static_cast<double>(h.d_v);
    general += pairs * 2 * width * (d_k + width) + tokens * 2 * width * width * d_v;
    projected += pairs * 2 * d_v * d_k + tokens * 2 * d_k * d_v * n;
  }
  return projected < general ? jacobian_form::projected : jacobian_form::general;
}

namespace detail {

// A form must be one of the three.
inline void validate_form(jacobian_form form, const std::string& argument) {
  require(form == jacobian_form::automatic || form == jacobian_form::general || form == jacobian_form::projected,
          argument, "unknown form ", static_cast<int>(form));
}

}  // namespace detail
}  // namespace suptok
