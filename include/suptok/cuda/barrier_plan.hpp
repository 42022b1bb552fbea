// suptok/cuda/barrier_plan.hpp: the arguments and their checks of the CUDA barrier (packed and
// projected forms, docs/math.md sections 2.1 to 2.3 and 3), in plain C++ so that they are tested
// where no GPU or nvcc is.
//
// Inputs, in device memory (any row and batch strides, unit column stride):
//   U    (B, N, p)      B sequences of N tokens
//   heads.W_Q (H, d_k, p)   heads.W_K (H, d_k, p)   heads.W_V (H, d_v, p)   heads.W_O (H, p, d_v)
// Outputs, per token: out.b (B, N, 1) b_t = f(det J_t), out.log_abs (B, N, 1) log|det J_t|,
// out.sign (B, N, 1) the sign of det J_t (-1, 0 or +1).
// The workspace: cuda/barrier_layout.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "../attention/mask.hpp"
#include "../barrier/policy.hpp"
#include "../barrier/singular_values.hpp"
#include "../likelihood/form.hpp"
#include "attention_plan.hpp"
#include "barrier_layout.hpp"

namespace suptok {

// A stack of H heads in device memory, every head of the same d_k and d_v.
template <class S>
struct cuda_heads {
  batched_view<const S> W_Q;  // (H, d_k, p)
  batched_view<const S> W_K;  // (H, d_k, p)
  batched_view<const S> W_V;  // (H, d_v, p)
  batched_view<const S> W_O;  // (H, p, d_v)
};

// The per-token results of the CUDA barrier, in device memory.
template <class S>
struct cuda_token_barrier {
  batched_view<S> b;        // (B, N, 1) b_t
  batched_view<S> log_abs;  // (B, N, 1) log |det J_t|
  batched_view<int> sign;   // (B, N, 1) sign of det J_t
};

// The per-token margins of token_margins(cuda, ...) (cuda/margins.cuh), in device memory, each
// (B, N, 1): docs/math.md section 3's m_t = sigma_min(J_t) and its companions.
template <class S>
struct cuda_token_margins {
  batched_view<int> sign;         // sign of det J_t (-1, 0, +1)
  batched_view<S> log_abs;        // log |det J_t|
  batched_view<S> sigma_min;      // m_t, the spectral-norm distance to the nearest singular matrix
  batched_view<S> signed_margin;  // sign(det J_t) m_t: negative on the infeasible side
  batched_view<S> sigma_max;      // sigma_max(J_t)
  batched_view<S> kappa;          // sigma_max / sigma_min (+inf where sigma_min = 0)
};

// The gradients written by barrier_backward(cuda, ...) (cuda/barrier_backward.cuh), in device
// memory; every element is overwritten.
template <class S>
struct cuda_barrier_gradients {
  batched_view<S> dU;    // (B, N, p)
  batched_view<S> dW_Q;  // (H, d_k, p)
  batched_view<S> dW_K;  // (H, d_k, p)
  batched_view<S> dW_V;  // (H, d_v, p)
  batched_view<S> dW_O;  // (H, p, d_v)
};

namespace detail {

// The margins' one-sided Jacobi SVD keeps a token's J_t in shared memory: p_even = p rounded up to
// even rows (a zero row pads an odd p) of p_even + 1 elements, up to 227 KiB: p <= 128 in double.
inline constexpr index cuda_max_margin_p = 128;
inline std::size_t margin_shared_bytes(index p, std::size_t scalar_bytes) {
  const std::size_t p_even = std::size_t(p + p % 2);
  return p_even * (p_even + 1) * scalar_bytes;
}

// The rows (i, j) that pair q (0 <= q < n / 2) of round `round` (0 <= round < n - 1) of a Jacobi
// sweep rotates: the circle method for n (even) rows, row n - 1 fixed and the others turning; the
// pairs of a round are disjoint and every pair of rows meets once in the n - 1 rounds.
SUPTOK_HD inline void round_robin_pair(index n, index round, index q, index& i, index& j) {
  const index turning = n - 1;
  if (q == 0) {
    i = round, j = turning;
  } else {
    i = (round + q) % turning, j = (round - q + turning) % turning;
  }
}

// A view's name and the byte range it spans, for the checks that outputs overlap nothing.
struct named_span {
  const char* name;
  std::pair<std::uintptr_t, std::uintptr_t> span;
};

template <class T>
named_span span_of(const batched_view<T>& v, const char* name) {
  return {name, byte_span(v)};
}

// Requires that each of `outputs` overlaps none of `inputs` and none of the outputs before it; the
// error names the output ("overlaps the input U", "overlaps the output out.b").
inline void require_disjoint(std::initializer_list<named_span> inputs, std::initializer_list<named_span> outputs) {
  const auto meet = [](const named_span& a, const named_span& b) {
    return a.span.first < b.span.second && b.span.first < a.span.second;
  };
  for (auto out = outputs.begin(); out != outputs.end(); ++out) {
    for (const named_span& in : inputs) require(!meet(*out, in), out->name, "overlaps the input ", in.name);
    for (auto before = outputs.begin(); before != out; ++before)
      require(!meet(*out, *before), out->name, "overlaps the output ", before->name);
  }
}

// The workspace as a view of bytes, for the overlap checks.
inline batched_view<const char> workspace_view(const void* workspace, std::size_t bytes) {
  return {static_cast<const char*>(workspace), 1, 1, index(bytes), index(bytes), index(bytes)};
}

// The checks every CUDA barrier call starts with: the attention parameters.
inline void validate_cuda_attention_params(const attention_core_params& attention) {
  require(attention.causal_mask == mask::strict || attention.causal_mask == mask::inclusive, "attention.causal_mask",
          "unknown mask value");
  require(std::isfinite(attention.temperature) && attention.temperature >= 0, "attention.temperature",
          "must be finite and positive (or 0 for sqrt(d_k)), got ", attention.temperature);
}

// U (non-empty, extents, pointer, strides), the heads, then at most 2^31 - 1 tokens (named `U`).
template <class S>
void validate_cuda_barrier_operands(const batched_view<const S>& U, const cuda_heads<S>& heads) {
  require(U.batch > 0 && U.rows > 0 && U.cols > 0, "U", "empty: ", U.batch, " x ", U.rows, " x ", U.cols);
  const index B = U.batch, N = U.rows, p = U.cols;
  validate_batched(U, B, N, p, "U");
  require(heads.W_Q.batch > 0 && heads.W_Q.rows > 0, "heads.W_Q", "expected at least one head of d_k >= 1, got ",
          heads.W_Q.batch, " x ", heads.W_Q.rows, " x ", heads.W_Q.cols);
  require(heads.W_V.rows > 0, "heads.W_V", "d_v must be positive, got ", heads.W_V.rows);
  const index H = heads.W_Q.batch, d_k = heads.W_Q.rows, d_v = heads.W_V.rows;
  validate_batched(heads.W_Q, H, d_k, p, "heads.W_Q");
  validate_batched(heads.W_K, H, d_k, p, "heads.W_K");
  validate_batched(heads.W_V, H, d_v, p, "heads.W_V");
  validate_batched(heads.W_O, H, p, d_v, "heads.W_O");
  require(double(B) * double(N) <= 2147483647.0, "U", "at most 2^31 - 1 tokens in all (cuBLAS's batch count), got ",
          double(B) * double(N));
}

// p <= max_p for a call whose memory grows with p (named `U`); `why` says what bounds it.
template <class S>
void require_cuda_width(const batched_view<const S>& U, index max_p, const char* why) {
  require(U.cols <= max_p, "U", why, ", for p <= ", max_p, ", got p = ", U.cols);
}

// A workspace of at least `needed` bytes, non-null and aligned (its overlaps are checked with the
// outputs').
inline void validate_cuda_workspace(const void* workspace, std::size_t workspace_bytes, std::size_t needed) {
  require(workspace != nullptr, "workspace", "null pointer (the call needs ", needed, " bytes)");
  require(reinterpret_cast<std::uintptr_t>(workspace) % cuda_buffer_alignment == 0, "workspace",
          "must be aligned to ", cuda_buffer_alignment, " bytes (cudaMalloc's pointers are)");
  require(workspace_bytes >= needed, "workspace", "holds ", workspace_bytes, " bytes, the call needs ", needed);
}

inline constexpr const char* packed_form_limit = "the packed form keeps p (p + 3) / 2 moments per token";

// The operations of a call on the GPU in `form` (general: the packed form), for N tokens of width
// p under H heads of d_k and d_v, leaving out Q, K and the logits that both forms compute. Per head
// and pair (t, s): 2 w with w the form's moments per token (p (p + 3) / 2 packed, d_v d_k + d_v +
// d_k projected); per head and token: 4 p^3 packed (C_t A_h and V_h T_t), 2 d_v d_k n projected
// (X_t PQ_h); per token the LU, 2/3 p^3 or 2/3 n^3, n = H d_v.
inline double cuda_form_operations(jacobian_form form, index N, index p, index H, index d_k, index d_v) {
  const double tokens = double(N), pairs = 0.5 * tokens * tokens, heads = double(H), width = double(p);
  if (form == jacobian_form::projected) {
    const double n = heads * double(d_v), w = double(d_v) * double(d_k) + double(d_v) + double(d_k);
    return heads * (pairs * 2 * w + tokens * 2 * double(d_v) * double(d_k) * n) + tokens * 2.0 / 3.0 * n * n * n;
  }
  const double w = double(barrier_packed_width(p));
  return heads * (pairs * 2 * w + tokens * 4 * width * width * width) + tokens * 2.0 / 3.0 * width * width * width;
}

// `form` with automatic resolved to the form of fewer operations on the GPU (cuda_form_operations),
// the projected form where p > cuda_max_packed_p.
template <class S>
jacobian_form resolve_cuda_form(jacobian_form form, index N, index p, const cuda_heads<S>& heads) {
  if (form != jacobian_form::automatic) return form;
  if (p > cuda_max_packed_p) return jacobian_form::projected;
  const index H = heads.W_Q.batch, d_k = heads.W_Q.rows, d_v = heads.W_V.rows;
  return cuda_form_operations(jacobian_form::projected, N, p, H, d_k, d_v) <
                 cuda_form_operations(jacobian_form::general, N, p, H, d_k, d_v)
             ? jacobian_form::projected
             : jacobian_form::general;
}

// The workspace of a call in `form` (general: the packed form; not automatic) for `pass`, for B
// sequences of N tokens under the heads (p = heads.W_Q.cols).
template <class S>
std::size_t cuda_barrier_bytes(index B, index N, const cuda_heads<S>& heads, mask m, barrier_pass pass,
                               jacobian_form form = jacobian_form::general) {
  const index p = heads.W_Q.cols, H = heads.W_Q.batch, d_k = heads.W_Q.rows;
  if (form == jacobian_form::projected)
    return projected_layout(B, N, p, H, d_k, heads.W_V.rows, m, sizeof(S), pass).bytes;
  return barrier_layout(B, N, p, H, d_k, m, sizeof(S), pass).bytes;
}

// The checks of the workspace queries (barrier_workspace_bytes, margins_workspace_bytes): B, N
// positive, a head of p >= 1, a known form.
template <class S>
void validate_workspace_query(index B, index N, const cuda_heads<S>& heads, jacobian_form form) {
  require(B > 0, "B", "must be positive, got ", B);
  require(N > 0, "N", "must be positive, got ", N);
  require(heads.W_Q.batch > 0 && heads.W_Q.cols > 0, "heads.W_Q", "expected at least one head of p >= 1");
  validate_form(form, "form");
}

// The form (named `form`), then U and the heads (validate_cuda_barrier_operands) and, in the packed
// form, p <= cuda_max_packed_p; returns the form, automatic resolved.
template <class S>
jacobian_form validate_cuda_form_operands(const batched_view<const S>& U, const cuda_heads<S>& heads,
                                          jacobian_form form) {
  validate_form(form, "form");
  const jacobian_form resolved = resolve_cuda_form(form, U.rows, U.cols, heads);
  validate_cuda_barrier_operands(U, heads);
  if (resolved == jacobian_form::general) require_cuda_width(U, cuda_max_packed_p, packed_form_limit);
  return resolved;
}

// The checks of barrier_per_token(cuda, ...), before anything is enqueued, in the order: attention
// and barrier parameters, the form, U, the heads (p <= cuda_max_packed_p for the general form),
// the outputs' extents, the workspace (sized for the form), then the address ranges: each output
// and the workspace apart from the inputs and each other. Device data is not read (docs/cuda.md).
// Returns the form, automatic resolved.
template <class S>
jacobian_form validate_cuda_barrier(const cuda_token_barrier<S>& out, const batched_view<const S>& U,
                                    const cuda_heads<S>& heads, const attention_core_params& attention,
                                    const barrier_params& barrier, const void* workspace,
                                    std::size_t workspace_bytes, jacobian_form form = jacobian_form::general) {
  validate_cuda_attention_params(attention);
  validate_barrier(barrier);
  const jacobian_form resolved = validate_cuda_form_operands(U, heads, form);
  validate_batched(out.b, U.batch, U.rows, 1, "out.b");
  validate_batched(out.log_abs, U.batch, U.rows, 1, "out.log_abs");
  validate_batched(out.sign, U.batch, U.rows, 1, "out.sign");
  validate_cuda_workspace(
      workspace, workspace_bytes,
      cuda_barrier_bytes(U.batch, U.rows, heads, attention.causal_mask, barrier_pass::forward, resolved));
  require_disjoint({span_of(U, "U"), span_of(heads.W_Q, "heads.W_Q"), span_of(heads.W_K, "heads.W_K"),
                    span_of(heads.W_V, "heads.W_V"), span_of(heads.W_O, "heads.W_O")},
                   {span_of(out.b, "out.b"), span_of(out.log_abs, "out.log_abs"), span_of(out.sign, "out.sign"),
                    span_of(workspace_view(workspace, workspace_bytes), "workspace")});
  return resolved;
}

// The checks of barrier_backward(cuda, ...): attention and barrier parameters, the form, U, the
// heads, the extents of out.b, out.log_abs, out.sign, db (B, N, 1), then grad.dU (B, N, p), grad.dW_Q,
// grad.dW_K (H, d_k, p), grad.dW_V (H, d_v, p), grad.dW_O (H, p, d_v), the workspace (the
// backward's size), then the address ranges: out.*, the workspace and the gradients, in that
// order, each apart from the inputs (db among them) and from those before it. Returns the form,
// automatic resolved.
template <class S>
jacobian_form validate_cuda_barrier_backward(const cuda_barrier_gradients<S>& grad, const cuda_token_barrier<S>& out,
                                             const batched_view<const S>& db, const batched_view<const S>& U,
                                             const cuda_heads<S>& heads, const attention_core_params& attention,
                                             const barrier_params& barrier, const void* workspace,
                                             std::size_t workspace_bytes, jacobian_form form = jacobian_form::general) {
  validate_cuda_attention_params(attention);
  validate_barrier(barrier);
  const jacobian_form resolved = validate_cuda_form_operands(U, heads, form);
  const index B = U.batch, N = U.rows, p = U.cols, H = heads.W_Q.batch, d_k = heads.W_Q.rows, d_v = heads.W_V.rows;
  validate_batched(out.b, B, N, 1, "out.b");
  validate_batched(out.log_abs, B, N, 1, "out.log_abs");
  validate_batched(out.sign, B, N, 1, "out.sign");
  validate_batched(db, B, N, 1, "db");
  validate_batched(grad.dU, B, N, p, "grad.dU");
  validate_batched(grad.dW_Q, H, d_k, p, "grad.dW_Q");
  validate_batched(grad.dW_K, H, d_k, p, "grad.dW_K");
  validate_batched(grad.dW_V, H, d_v, p, "grad.dW_V");
  validate_batched(grad.dW_O, H, p, d_v, "grad.dW_O");
  validate_cuda_workspace(
      workspace, workspace_bytes,
      cuda_barrier_bytes(U.batch, U.rows, heads, attention.causal_mask, barrier_pass::backward, resolved));
  require_disjoint({span_of(U, "U"), span_of(heads.W_Q, "heads.W_Q"), span_of(heads.W_K, "heads.W_K"),
                    span_of(heads.W_V, "heads.W_V"), span_of(heads.W_O, "heads.W_O"), span_of(db, "db")},
                   {span_of(out.b, "out.b"), span_of(out.log_abs, "out.log_abs"), span_of(out.sign, "out.sign"),
                    span_of(workspace_view(workspace, workspace_bytes), "workspace"), span_of(grad.dU, "grad.dU"),
                    span_of(grad.dW_Q, "grad.dW_Q"), span_of(grad.dW_K, "grad.dW_K"), span_of(grad.dW_V, "grad.dW_V"),
                    span_of(grad.dW_O, "grad.dW_O")});
  return resolved;
}

// The form of the margins: general (the packed form, exact singular values of J_t held in shared
// memory, p <= cuda_max_margin_p), projected (the iterations of cuda/projected_margins.cuh), or
// automatic: the packed form where p <= cuda_max_margin_p, else the projected one.
inline jacobian_form resolve_cuda_margin_form(jacobian_form form, index p) {
  if (form != jacobian_form::automatic) return form;
  return p <= cuda_max_margin_p ? jacobian_form::general : jacobian_form::projected;
}

// The workspace of token_margins(cuda, ...) in `form` (resolved): the packed forward's (the packed
// layout has no margins' buffers), or the projected form's with the margins' buffers.
template <class S>
std::size_t cuda_margin_bytes(index B, index N, const cuda_heads<S>& heads, mask m, jacobian_form form) {
  return cuda_barrier_bytes(B, N, heads, m, barrier_pass::margins, form);
}

// The checks of token_margins(cuda, ...): the attention parameters, the form, the iteration's
// parameters (the projected form's), U, the heads, p <= cuda_max_margin_p in the packed form (named
// `U`), the six outputs' extents (B, N, 1), the workspace (the form's size), then the address
// ranges: each output and the workspace apart from the inputs and each other. Returns the form,
// automatic resolved.
template <class S>
jacobian_form validate_cuda_margins(const cuda_token_margins<S>& out, const batched_view<const S>& U,
                                    const cuda_heads<S>& heads, const attention_core_params& attention,
                                    const void* workspace, std::size_t workspace_bytes,
                                    jacobian_form form = jacobian_form::general,
                                    const iteration_params& iteration = {}) {
  validate_cuda_attention_params(attention);
  validate_form(form, "form");
  const jacobian_form resolved = resolve_cuda_margin_form(form, U.cols);
  if (resolved == jacobian_form::projected) validate_iteration(iteration, "iteration");
  validate_cuda_barrier_operands(U, heads);
  if (resolved == jacobian_form::general)
    require_cuda_width(U, cuda_max_margin_p, "the packed form's margins keep J_t (p, p) in shared memory");
  const index B = U.batch, N = U.rows;
  validate_batched(out.sign, B, N, 1, "out.sign");
  validate_batched(out.log_abs, B, N, 1, "out.log_abs");
  validate_batched(out.sigma_min, B, N, 1, "out.sigma_min");
  validate_batched(out.signed_margin, B, N, 1, "out.signed_margin");
  validate_batched(out.sigma_max, B, N, 1, "out.sigma_max");
  validate_batched(out.kappa, B, N, 1, "out.kappa");
  validate_cuda_workspace(workspace, workspace_bytes,
                          cuda_margin_bytes(U.batch, U.rows, heads, attention.causal_mask, resolved));
  require_disjoint({span_of(U, "U"), span_of(heads.W_Q, "heads.W_Q"), span_of(heads.W_K, "heads.W_K"),
                    span_of(heads.W_V, "heads.W_V"), span_of(heads.W_O, "heads.W_O")},
                   {span_of(out.sign, "out.sign"), span_of(out.log_abs, "out.log_abs"),
                    span_of(out.sigma_min, "out.sigma_min"), span_of(out.signed_margin, "out.signed_margin"),
                    span_of(out.sigma_max, "out.sigma_max"), span_of(out.kappa, "out.kappa"),
                    span_of(workspace_view(workspace, workspace_bytes), "workspace")});
  return resolved;
}

}  // namespace detail
}  // namespace suptok
