// suptok/cuda/barrier_plan.hpp: the arguments, their checks and the workspace of the CUDA barrier
// (packed form, docs/math.md sections 2.1, 2.2 and 3), in plain C++ so that they are tested where
// no GPU or nvcc is.
//
// Inputs, in device memory (any row and batch strides, unit column stride):
//   U    (B, N, p)      B sequences of N tokens
//   heads.W_Q (H, d_k, p)   heads.W_K (H, d_k, p)   heads.W_V (H, d_v, p)   heads.W_O (H, p, d_v)
// Outputs, per token: out.b (B, N, 1) b_t = f(det J_t), out.log_abs (B, N, 1) log|det J_t|,
// out.sign (B, N, 1) the sign of det J_t (-1, 0 or +1).
//
// The workspace (caller-provided, barrier_workspace_bytes(cuda, ...) bytes, 256-byte aligned
// buffers) holds, in the scalar S:
//   A, V      (H, p, p)     A_h = W_K^T W_Q / tau,  V_h = W_O W_V
//   mean      (B, p)        the sequence's mean embedding; Uc = U - mean  (B, N, p)
//   X         (B, N, w)     per token the packed [uc_i uc_j (i <= j), uc_i],  w = p (p + 1) / 2 + p
//   Q, K      (B, N, d_k)   one head's projections;  P (B, N, N) its attention weights a_ts
//   M         (B, N, w)     one head's moments sum_s a_ts X_s
//   G         (B, N, p)     g_t = A_h u_t (inclusive mask only)
//   C, T, J   (B N, p, p)   C_t, C_t A_h (+ the inclusive terms), J_t and then its LU
//   J_ptr     (B N)         pointers to the J_t for the batched LU;  pivots (B N, p), info (B N)
// For B = 8, N = 2048, p = 64, one head: about 1.2 GB in float.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../attention/mask.hpp"
#include "../barrier/policy.hpp"
#include "attention_plan.hpp"

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

namespace detail {

inline constexpr std::size_t cuda_buffer_alignment = 256;
// Rows of one moment product M[r0, r1) = P[r0, r1) X: the keys past the block's last query are
// left out, so a causal sequence costs about half of the full product (one block triangle more).
inline constexpr index cuda_moment_row_block = 256;

// The widest embeddings of the packed form on the GPU (w = p (p + 3) / 2 moments per token).
inline constexpr index cuda_max_packed_p = 1024;

SUPTOK_HD inline index barrier_packed_width(index p) { return p * (p + 1) / 2 + p; }

// Byte offsets of the workspace buffers (see the file comment), each aligned to 256 bytes.
struct cuda_barrier_layout {
  std::size_t A = 0, V = 0, mean = 0, Uc = 0, X = 0, Q = 0, K = 0, P = 0, M = 0, G = 0, C = 0, T = 0, J = 0;
  std::size_t J_ptr = 0, pivots = 0, info = 0;
  std::size_t bytes = 0;  // the whole workspace
};

// The layout for B sequences of N tokens, H heads of p and d_k, scalar of scalar_bytes bytes;
// G is empty under the strict mask. The sizes are added in double as well: a workspace of 2^62
// bytes or more is refused (named `U`) before any size_t could wrap.
inline cuda_barrier_layout barrier_layout(index B, index N, index p, index H, index d_k, mask m,
                                          std::size_t scalar_bytes) {
  const double tokens = double(B) * double(N), w = double(barrier_packed_width(p));
  cuda_barrier_layout l;
  std::size_t at = 0;
  double total = 0;
  const auto take = [&](std::size_t& offset, double count, std::size_t element_bytes) {
    total += count * double(element_bytes) + double(cuda_buffer_alignment);
    require(total < 0x1p62, "U", "the workspace for B = ", B, ", N = ", N, ", p = ", p, " overflows a 64-bit size");
    offset = at;
    at += (std::size_t(count) * element_bytes + cuda_buffer_alignment - 1) / cuda_buffer_alignment *
          cuda_buffer_alignment;
  };
  const std::size_t s = scalar_bytes;
  take(l.A, double(H) * p * p, s);
  take(l.V, double(H) * p * p, s);
  take(l.mean, double(B) * p, s);
  take(l.Uc, tokens * p, s);
  take(l.X, tokens * w, s);
  take(l.Q, tokens * d_k, s);
  take(l.K, tokens * d_k, s);
  take(l.P, tokens * N, s);
  take(l.M, tokens * w, s);
  take(l.G, m == mask::inclusive ? tokens * p : 0, s);
  take(l.C, tokens * p * p, s);
  take(l.T, tokens * p * p, s);
  take(l.J, tokens * p * p, s);
  take(l.J_ptr, tokens, sizeof(void*));
  take(l.pivots, tokens * p, sizeof(int));
  take(l.info, tokens, sizeof(int));
  l.bytes = at;
  return l;
}

template <class A, class B>
void require_apart(const batched_view<A>& output, const char* output_name, const batched_view<B>& other,
                   const char* other_name) {
  require(!overlap(output, other), output_name, "overlaps ", other_name);
}

// The checks of barrier_per_token(cuda, ...), before anything is enqueued, in the order: attention
// and barrier parameters, U, the heads, the outputs (extents, then address ranges apart from the
// inputs and each other), the workspace. Device data is not read (docs/cuda.md).
template <class S>
void validate_cuda_barrier(const cuda_token_barrier<S>& out, const batched_view<const S>& U,
                           const cuda_heads<S>& heads, const attention_core_params& attention,
                           const barrier_params& barrier, const void* workspace, std::size_t workspace_bytes) {
  require(attention.causal_mask == mask::strict || attention.causal_mask == mask::inclusive, "attention.causal_mask",
          "unknown mask value");
  require(std::isfinite(attention.temperature) && attention.temperature >= 0, "attention.temperature",
          "must be finite and positive (or 0 for sqrt(d_k)), got ", attention.temperature);
  validate_barrier(barrier);
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
  require(p <= cuda_max_packed_p, "U", "the packed form keeps p (p + 3) / 2 moments per token, for p <= ",
          cuda_max_packed_p, ", got p = ", p);
  require(double(B) * double(N) <= 2147483647.0, "U", "at most 2^31 - 1 tokens in all (cuBLAS's batch count), got ",
          double(B) * double(N));
  validate_batched(out.b, B, N, 1, "out.b");
  validate_batched(out.log_abs, B, N, 1, "out.log_abs");
  validate_batched(out.sign, B, N, 1, "out.sign");
  const auto require_apart_from_inputs = [&](const auto& output, const char* name) {
    require_apart(output, name, U, "the input U");
    require_apart(output, name, heads.W_Q, "the input heads.W_Q");
    require_apart(output, name, heads.W_K, "the input heads.W_K");
    require_apart(output, name, heads.W_V, "the input heads.W_V");
    require_apart(output, name, heads.W_O, "the input heads.W_O");
  };
  require_apart_from_inputs(out.b, "out.b");
  require_apart_from_inputs(out.log_abs, "out.log_abs");
  require_apart_from_inputs(out.sign, "out.sign");
  require_apart(out.log_abs, "out.log_abs", out.b, "the output out.b");
  require_apart(out.sign, "out.sign", out.b, "the output out.b");
  require_apart(out.sign, "out.sign", out.log_abs, "the output out.log_abs");
  const std::size_t needed = barrier_layout(B, N, p, H, d_k, attention.causal_mask, sizeof(S)).bytes;
  require(workspace != nullptr, "workspace", "null pointer (barrier_workspace_bytes gives the size: ", needed,
          " bytes)");
  require(reinterpret_cast<std::uintptr_t>(workspace) % cuda_buffer_alignment == 0, "workspace",
          "must be aligned to ", cuda_buffer_alignment, " bytes (cudaMalloc's pointers are)");
  require(workspace_bytes >= needed, "workspace", "holds ", workspace_bytes, " bytes, the call needs ", needed);
  const batched_view<const char> ws{static_cast<const char*>(workspace), 1, 1, index(workspace_bytes),
                                    index(workspace_bytes), index(workspace_bytes)};
  require_apart_from_inputs(ws, "workspace");
  require_apart(ws, "workspace", out.b, "the output out.b");
  require_apart(ws, "workspace", out.log_abs, "the output out.log_abs");
  require_apart(ws, "workspace", out.sign, "the output out.sign");
}

}  // namespace detail
}  // namespace suptok
