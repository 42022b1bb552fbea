// suptok/cuda/barrier_layout.hpp: the workspaces of the CUDA barrier, packed form (docs/math.md
// sections 2.1 and 2.2) and projected form (section 2.3), as byte offsets; plain C++.
//
// Packed form.
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
// For B = 8, N = 2048, p = 64, one head: about 1.2 GB in float. The backward
// (barrier_backward(cuda, ...), cuda/barrier_backward.cuh) adds, in the order listed:
//   Z         (B N, p, p)   J_t^{-1}, then per-token products summed over the tokens
//   Z_ptr     (B N)         pointers to the Z_t for the batched inverse
//   dP        (B, N, N)     one head's da_ts, then dl_ts
//   R         (B, N, w)     per token R_t = [w_ij (i <= j), dm1]: the gradient of its moments
//   e, ones   (B N)         the inclusive mask's da_tt;  ones (to sum over tokens)
//   DG        (B, N, p)     dg_t, the gradient of g_t = A_h u_t (inclusive mask only)
//   dQ, dK    (B, N, d_k)   one head's gradients of Q and K
//   Un        (B, N, p)     U, contiguous
//   SV, SA    (p, p)        -dV_h^T and dA_h^T
// For the same problem about 1.8 GB in float.
//
// Projected form (barrier_per_token(cuda, ..., jacobian_form::projected)), n = H d_v:
//   PQ        (H, d_k, n)   PQ_h = W_Q^h [W_O^0 ... W_O^{H-1}] / tau
//   KO        (H, d_k, n)   KO_h = W_K^h [W_O^0 ... W_O^{H-1}] / tau  (inclusive mask only)
//   VO        (H, d_v, n)   VO_h = W_V^h [W_O^0 ... W_O^{H-1}]        (inclusive mask only)
//   mean, Uc                as in the packed form
//   Q, K      (B, N, d_k)   one head's projections of U;  P (B, N, N) its attention weights a_ts
//   Z         (B, N, w)     per token [vec(v_s k_s^T), v_s, k_s] of the centred tokens,
//                           w = d_v d_k + d_v + d_k
//   M         (B, N, w)     one head's moments sum_s a_ts Z_s, then X_t = Cov_a(v, k) in place
//   Cq        (B, N, n)     q_t^T KO_h (inclusive mask only)
//   J         (B N, n, n)   J'_t = I - K_t and then its LU;  J_ptr, pivots (B N, n), info as above
// The backward (barrier_backward(cuda, ..., jacobian_form::projected)) adds, in the order listed:
//   Inv       (B N, n, n)   J'_t^{-1};  Inv_ptr (B N) pointers for the batched inverse
//   W, dW     (p, n)        [W_O^0 ... W_O^{H-1}] and its gradient
//   dP        (B, N, N)     one head's da_ts, then dl_ts
//   R         (B, N, w)     per token the gradient of its moments M_t
//   e, ones   (B N)         the inclusive mask's da_tt;  ones (to sum over tokens)
//   att       (B N)         a_tt (inclusive mask only)
//   ddv       (B, N, d_v)   the gradient of v_t through v_t - vbar_t (inclusive mask only)
//   dCq       (B, N, n)     the gradient of q_t^T KO_h (inclusive mask only)
//   Y         (B N, d_k, n) per token X_t^T dK_t[h], summed into dPQ (d_k, n)
//   dKO       (d_k, n), dVOt (n, d_v)   the gradients of KO_h and VO_h^T (inclusive mask only)
//   dQ, dK    (B, N, d_k)   one head's gradients of Q and K;  dVs, dKs (B, N, d_v), (B, N, d_k)
//                           those of the centred values and keys
//   Un        (B, N, p)     U, contiguous
// The margins (token_margins(cuda, ..., jacobian_form::projected)) add instead, in the order listed:
//   W         (p, n)        [W_O^0 ... W_O^{H-1}] (the backward's buffer, at its place)
//   Yt        (B N, n, p)   Y_t, so that K_t = Y_t W and J_t = I_p - W Y_t
//   Cp        (B, N, p)     q_t^T W_K^h / tau (inclusive mask only)
//   x, y, t   (B N, p)      per token the iterated vector, its image and the transposed product
//   v         (B N, n)      per token Y_t x or W^T y, solved in place by the LU of J'_t
//   v_ptr     (B N)         pointers to the v of every token for the batched solve
//   state     (B N)         per token the iteration's estimates (power_state)
// For the GPT-2-small layer (B = 1, N = 1024, p = 768, H = 12, d_k = d_v = 64): about 2.5 GB in
// float, J'_t's 2.4 GB of it; the backward adds about 2.7 GB (J'_t^{-1} and Y), the margins about
// 2.4 GB (Y_t).
#pragma once

#include <cstddef>

#include "../attention/mask.hpp"
#include "../core/error.hpp"
#include "../core/view.hpp"

namespace suptok::detail {

inline constexpr std::size_t cuda_buffer_alignment = 256;
// Rows of one moment product M[r0, r1) = P[r0, r1) X: the keys past the block's last query are
// left out, so a causal sequence costs about half of the full product (one block triangle more).
inline constexpr index cuda_moment_row_block = 256;

// The widest embeddings of the packed form on the GPU (w = p (p + 3) / 2 moments per token).
inline constexpr index cuda_max_packed_p = 1024;

SUPTOK_HD inline index barrier_packed_width(index p) { return p * (p + 1) / 2 + p; }

// Lays a workspace out: buffers one after another, each aligned to cuda_buffer_alignment bytes.
// The sizes are added in double as well: a workspace of 2^62 bytes or more is refused (named `U`)
// before any size_t could wrap.
class workspace_builder {
 public:
  workspace_builder(index B, index N, index p) : B_(B), N_(N), p_(p) {}

  // The offset of a buffer of `count` elements of element_bytes bytes (count 0: an empty buffer).
  std::size_t take(double count, std::size_t element_bytes) {
    total_ += count * double(element_bytes) + double(cuda_buffer_alignment);
    require(total_ < 0x1p62, "U", "the workspace for B = ", B_, ", N = ", N_, ", p = ", p_,
            " overflows a 64-bit size");
    const std::size_t offset = at_;
    at_ += (std::size_t(count) * element_bytes + cuda_buffer_alignment - 1) / cuda_buffer_alignment *
           cuda_buffer_alignment;
    return offset;
  }
  std::size_t bytes() const { return at_; }

 private:
  index B_, N_, p_;
  std::size_t at_ = 0;
  double total_ = 0;
};

// Byte offsets of the workspace buffers (see the file comment), each aligned to 256 bytes.
struct cuda_barrier_layout {
  std::size_t A = 0, V = 0, mean = 0, Uc = 0, X = 0, Q = 0, K = 0, P = 0, M = 0, G = 0, C = 0, T = 0, J = 0;
  std::size_t J_ptr = 0, pivots = 0, info = 0;
  std::size_t Z = 0, Z_ptr = 0, dP = 0, R = 0, e = 0, ones = 0, DG = 0, dQ = 0, dK = 0, Un = 0, SV = 0, SA = 0;
  std::size_t bytes = 0;  // the whole workspace
};

// Which call a workspace serves: the forward's buffers, or those and the backward's or the
// margins' (the projected form's; the packed margins need the forward's alone).
enum class barrier_pass { forward, backward, margins };

// One token's power iteration (barrier/singular_values.hpp): the last two estimates and their
// last two changes, and whether it still iterates.
template <class S>
struct power_state {
  S estimate, previous, change, previous_change;
  int going;
};

// The packed form's layout for B sequences of N tokens, H heads of p and d_k, scalar of
// scalar_bytes bytes; G and DG are empty under the strict mask, the backward's buffers for the
// forward and margins passes (the packed margins need the forward's buffers alone).
inline cuda_barrier_layout barrier_layout(index B, index N, index p, index H, index d_k, mask m,
                                          std::size_t scalar_bytes, barrier_pass pass = barrier_pass::forward) {
  const double tokens = double(B) * double(N), w = double(barrier_packed_width(p));
  cuda_barrier_layout l;
  workspace_builder ws(B, N, p);
  const std::size_t s = scalar_bytes;
  l.A = ws.take(double(H) * p * p, s);
  l.V = ws.take(double(H) * p * p, s);
  l.mean = ws.take(double(B) * p, s);
  l.Uc = ws.take(tokens * p, s);
  l.X = ws.take(tokens * w, s);
  l.Q = ws.take(tokens * d_k, s);
  l.K = ws.take(tokens * d_k, s);
  l.P = ws.take(tokens * N, s);
  l.M = ws.take(tokens * w, s);
  l.G = ws.take(m == mask::inclusive ? tokens * p : 0, s);
  l.C = ws.take(tokens * p * p, s);
  l.T = ws.take(tokens * p * p, s);
  l.J = ws.take(tokens * p * p, s);
  l.J_ptr = ws.take(tokens, sizeof(void*));
  l.pivots = ws.take(tokens * p, sizeof(int));
  l.info = ws.take(tokens, sizeof(int));
  const double back = pass == barrier_pass::backward ? 1 : 0, inclusive = m == mask::inclusive ? 1 : 0;
  l.Z = ws.take(back * tokens * p * p, s);
  l.Z_ptr = ws.take(back * tokens, sizeof(void*));
  l.dP = ws.take(back * tokens * N, s);
  l.R = ws.take(back * tokens * w, s);
  l.e = ws.take(back * tokens, s);
  l.ones = ws.take(back * tokens, s);
  l.DG = ws.take(back * inclusive * tokens * p, s);
  l.dQ = ws.take(back * tokens * d_k, s);
  l.dK = ws.take(back * tokens * d_k, s);
  l.Un = ws.take(back * tokens * p, s);
  l.SV = ws.take(back * p * p, s);
  l.SA = ws.take(back * p * p, s);
  l.bytes = ws.bytes();
  return l;
}


// Elements per token of the projected form's moments: vec(v k^T), v and k.
SUPTOK_HD inline index projected_moment_width(index d_v, index d_k) { return d_v * d_k + d_v + d_k; }

// Byte offsets of the projected form's workspace buffers (see the file comment).
struct cuda_projected_layout {
  std::size_t PQ = 0, KO = 0, VO = 0, mean = 0, Uc = 0, Q = 0, K = 0, P = 0, Z = 0, M = 0, Cq = 0, J = 0;
  std::size_t J_ptr = 0, pivots = 0, info = 0;
  std::size_t Inv = 0, Inv_ptr = 0, W = 0, dW = 0, dP = 0, R = 0, e = 0, ones = 0, att = 0, ddv = 0, dCq = 0;
  std::size_t Y = 0, dPQ = 0, dKO = 0, dVOt = 0, dQ = 0, dK = 0, dVs = 0, dKs = 0, Un = 0;
  std::size_t Yt = 0, Cp = 0, x = 0, y = 0, t = 0, v = 0, v_ptr = 0, state = 0;
  std::size_t bytes = 0;  // the whole workspace
};

// The projected form's layout for B sequences of N tokens, H heads of p, d_k and d_v, scalar of
// scalar_bytes bytes; the inclusive mask's buffers are empty under the strict mask, the backward's
// and the margins' for the passes that do not use them.
inline cuda_projected_layout projected_layout(index B, index N, index p, index H, index d_k, index d_v, mask m,
                                              std::size_t scalar_bytes, barrier_pass pass = barrier_pass::forward) {
  const double tokens = double(B) * double(N), n = double(H) * double(d_v);
  const double w = double(d_v) * double(d_k) + double(d_v) + double(d_k);
  const double inclusive = m == mask::inclusive ? 1 : 0;
  const std::size_t s = scalar_bytes;
  workspace_builder ws(B, N, p);
  cuda_projected_layout l;
  l.PQ = ws.take(double(H) * d_k * n, s);
  l.KO = ws.take(inclusive * H * d_k * n, s);
  l.VO = ws.take(inclusive * H * d_v * n, s);
  l.mean = ws.take(double(B) * p, s);
  l.Uc = ws.take(tokens * p, s);
  l.Q = ws.take(tokens * d_k, s);
  l.K = ws.take(tokens * d_k, s);
  l.P = ws.take(tokens * N, s);
  l.Z = ws.take(tokens * w, s);
  l.M = ws.take(tokens * w, s);
  l.Cq = ws.take(inclusive * tokens * n, s);
  l.J = ws.take(tokens * n * n, s);
  l.J_ptr = ws.take(tokens, sizeof(void*));
  l.pivots = ws.take(tokens * n, sizeof(int));
  l.info = ws.take(tokens, sizeof(int));
  const double back = pass == barrier_pass::backward ? 1 : 0, back_inclusive = back * inclusive;
  const double margins = pass == barrier_pass::margins ? 1 : 0;
  l.Inv = ws.take(back * tokens * n * n, s);
  l.Inv_ptr = ws.take(back * tokens, sizeof(void*));
  l.W = ws.take((back + margins) * p * n, s);
  l.dW = ws.take(back * p * n, s);
  l.dP = ws.take(back * tokens * N, s);
  l.R = ws.take(back * tokens * w, s);
  l.e = ws.take(back * tokens, s);
  l.ones = ws.take(back * tokens, s);
  l.att = ws.take(back_inclusive * tokens, s);
  l.ddv = ws.take(back_inclusive * tokens * d_v, s);
  l.dCq = ws.take(back_inclusive * tokens * n, s);
  l.Y = ws.take(back * tokens * d_k * n, s);
  l.dPQ = ws.take(back * d_k * n, s);
  l.dKO = ws.take(back_inclusive * d_k * n, s);
  l.dVOt = ws.take(back_inclusive * n * d_v, s);
  l.dQ = ws.take(back * tokens * d_k, s);
  l.dK = ws.take(back * tokens * d_k, s);
  l.dVs = ws.take(back * tokens * d_v, s);
  l.dKs = ws.take(back * tokens * d_k, s);
  l.Un = ws.take(back * tokens * p, s);
  l.Yt = ws.take(margins * tokens * n * p, s);
  l.Cp = ws.take(margins * inclusive * tokens * p, s);
  l.x = ws.take(margins * tokens * p, s);
  l.y = ws.take(margins * tokens * p, s);
  l.t = ws.take(margins * tokens * p, s);
  l.v = ws.take(margins * tokens * n, s);
  l.v_ptr = ws.take(margins * tokens, sizeof(void*));
  l.state = ws.take(margins * tokens, scalar_bytes == sizeof(float) ? sizeof(power_state<float>)
                                                                    : sizeof(power_state<double>));
  l.bytes = ws.bytes();
  return l;
}

}  // namespace suptok::detail
