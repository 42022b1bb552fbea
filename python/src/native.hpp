// python/src/native.hpp: what the translation units of the extension suptok._native share.
//
// module.cpp (pybind11 and torch) turns tensors into the plain Eigen types below and results back
// into tensors; barrier_reference.cpp, barrier_simd.cpp and analysis.cpp run the library on them.
// Torch's headers stay out of the library's translation units and the library's templates out of
// module.cpp, so that the four compile in parallel.
//
// Shapes (docs/math.md sections 1 and 2.4), h < H query heads, g < H_kv key/value heads:
//   U       (N, p) per sequence
//   W_Q[h]  (d_k, p)   W_K[g]  (d_k, p)   W_V[g]  (d_v, p)   W_O[h]  (p, d_v)
//   b_Q[h]  (d_k)      b_K[g]  (d_k)      b_V[g]  (d_v)      b_O     (p)      (each list empty or one per head)
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <vector>

namespace suptok_python {

template <class S>
using matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

// One attention layer: a plain head stack when H_kv = H and there are no biases and no rotation.
template <class S>
struct weights {
  std::vector<matrix<S>> W_Q, W_K, W_V, W_O;
  std::vector<vector<S>> b_Q, b_K, b_V;
  vector<S> b_O;
  double rope_theta = 0;  // 0: no rotary embedding
};

// The settings as Python passes them; the library validates every one.
struct settings {
  std::string mask = "strict";      // strict | inclusive
  std::string policy = "extended";  // exact | clamp | extended
  double eps = 1e-8, z0 = 1e-2;     // thresholds of clamp and extended
  double temperature = 0;           // 0: sqrt(d_k)
};

// The penalty (mean b_t over the non-trivial tokens, pooled over a batch) and, when asked for,
// its gradients: dU one (N, p) per sequence, dW.W_Q ... dW.W_O shaped as the heads.
template <class S>
struct barrier_result {
  S penalty;
  std::vector<matrix<S>> dU;
  weights<S> dW;
};

// The barrier of one sequence (batch = false: Us holds U alone; barrier_penalty and
// barrier_penalty_backward) or of a batch (barrier_penalty_batch, ..._batch_backward), on a plain
// head stack. barrier_reference: barrier_reference.cpp; barrier_simd: barrier_simd.cpp.
template <class S>
barrier_result<S> barrier_reference(const std::vector<matrix<S>>& Us, bool batch, const weights<S>& w,
                                    const settings& s, bool gradients);
template <class S>
barrier_result<S> barrier_simd(const std::vector<matrix<S>>& Us, bool batch, const weights<S>& w, const settings& s,
                               bool gradients);

struct analysis_settings : settings {
  std::string support = "within";  // smallest (k = support_value) | within (delta) | mass (q)
  double support_value = 0.1;
  std::string margins = "estimate";  // estimate | exact
  std::string form = "automatic";    // automatic | general | projected
  bool include_trivial = false;
};

// analyse() of every sequence, its per-token columns concatenated (B N rows, sequence-major) and
// the totals over the batch: the penalty pooled over all non-trivial tokens, as the batch barrier.
template <class S>
struct analysis_table {
  std::vector<std::int64_t> position, sign;
  std::vector<S> log_det, b, signed_margin, sigma_min, kappa;
  std::vector<char> support;  // 0 or 1
  S penalty = S(0);
  std::int64_t support_count = 0, infeasible_count = 0, counted_tokens = 0;
  std::string form;  // general | projected (that of the last sequence; the choice depends on N only)
};

// Defined in analysis.cpp.
template <class S>
analysis_table<S> analyse(const std::vector<matrix<S>>& Us, const weights<S>& w, const analysis_settings& s);

}  // namespace suptok_python
