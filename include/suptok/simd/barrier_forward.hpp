// suptok/simd/barrier_forward.hpp: the log-barrier penalty, xsimd fast path (float, double).
//
// Same values as barrier/penalty.hpp (docs/math.md sections 2.1, 2.1b, 2.2, 3). Per head h and query t:
//   x_s   = u_s - c                    keys centred by the sequence mean c (leaves C_t unchanged)
//   X_s   = [x_i x_j (i <= j), x, 1]   packed outer product, the key and a one (width >= p(p+1)/2 + p + 1)
//   [m2_t, m1_t, z_t] = sum_{s in P(t)} a_ts X_s  the two-pass packed GEMM of
//                                                 simd/barrier_moments.hpp, then divided by z_t:
//                                                 z_t = 1 up to the rounding of lse_t (about
//                                                 |lse_t| eps), which C_t's cancellation would
//                                                 amplify were m2 and m1 not normalised together
//   C_t   = m2_t - m1_t m1_t^T                                           (p, p) symmetric
//   M_t   = C_t A_h  [+ a_tt I + a_tt (x_t - m1_t)(A_h u_t)^T, inclusive]  (p, p)
//   J_t   = I - sum_h V_h M^h_t,   b_t = f(det J_t) from the pivoted LU (kernels.hpp lu_log_det,
//           the extension policy of barrier/policy.hpp)
//   one head: det(I - V M_t) = det(I - M_t V) (Sylvester), so the blocks kept are
//   J'_t  = I - M_t V = I - C_t B - a_tt (V + d g^T),  B = A V,  g = V^T A u_t (inclusive terms):
//           one (p, p) product per token instead of two; b_t and the gradients are unchanged
//           (the backward differentiates J'_t, simd/barrier_backward.hpp).
// The per-token products C_t A (or C_t B) and V M_t are register-blocked calls on (p, p_pad) rows
// (p_pad = p rounded up to the register block, zero columns), L1-resident for p <= 64; the symmetric
// C_t is read through its upper triangle (symmetric_gemm_tile), which the forward alone writes.
// Cancellation: entry (i, j) of C_t = m2 - m1 m1^T loses about log2 of rho_ti = m2_ii / C_ii bits
// (rounding eps m2_ii against C_ii) when the keys token t attends to sit far from the sequence mean
// relative to their spread along coordinate i (a sharp head on a cluster, a drifting mean). Tokens
// with some rho_ti >= moment_refine_ratio (or C_ii <= 0) get a second, centred pass
// (simd_refine_moments): C_t = sum_s a_ts y_s y_s^T - e e^T, y_s = x_s - m1_t, e = sum_s a_ts y_s
// (O(t p^2) per such token, outside the GEMM), whose rounding is that of the reference's C_t.
// Workspace per sequence (barrier_workspace_bytes): X (n_pad, W), the moments (N, W) and the
// projections of one head (the forward keeps one head at a time; the backward keeps all H), the
// stacked blocks J (N p, p) for several heads or the backward, the moment GEMM's panels;
// O(N p^2), never O(N^2).
// Threads: OpenMP inside the moments (simd/barrier_moments.hpp) and over tokens.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "../barrier/penalty.hpp"
#include "barrier_moments.hpp"

namespace suptok {
namespace detail {

// Column of the one in a packed row [x_i x_j (i <= j), x, 1] (its weight sum z_t in the moments).
inline index barrier_sum_column(index p) { return p * (p + 1) / 2 + p; }

// Width of a packed row, padded to the register block.
template <class S>
index barrier_width(index p) {
  return simd_kernels::round_up(barrier_sum_column(p) + 1, simd_kernels::block_width<S>);
}

// One sequence's forward state.
template <class S>
struct simd_barrier_pass {
  index N = 0, p = 0, W = 0, p_pad = 0;
  matrix<S> Xc;                        // (N, p)      centred keys x_s
  matrix<S> X;                         // (n_pad, W)  packed rows X_s, zero padding
  simd_moment_buffers<S> moments;      // panels of the moment GEMM
  std::vector<simd_head<S>> ws;        // one head at a time (forward) or all H (backward); O = moments
  std::vector<std::vector<char>> centred;  // per entry of ws, per token: its m2 slots hold C_t itself
  std::vector<matrix<S>> A, V;         // H x (p, p)
  std::vector<matrix<S>> A_pad;        // H x (p, p_pad) A with zero columns (several heads)
  bool one_head = false;               // blocks J'_t = I - M_t V (Sylvester form)
  matrix<S> B_pad, Bt_pad;             // one head: A V and (A V)^T (p, p_pad), zero columns
  matrix<S> J;                         // (N p, p)    J_t = rows [t p, t p + p)
  std::vector<signed_log_det<S>> ld;   // N
  std::vector<S> b;                    // N
  simd_head_grad<S> grad;              // backward: the key tiles' operands (simd/barrier_backward.hpp)
};

// The packed rows X_s of the centred keys.
template <class S>
void simd_barrier_pack(simd_barrier_pass<S>& ps, const Eigen::Ref<const matrix<S>>& U) {
  const index N = U.rows(), p = U.cols();
  ps.N = N;
  ps.p = p;
  ps.W = barrier_width<S>(p);
  ps.p_pad = simd_kernels::round_up(p, simd_kernels::block_width<S>);
  const Eigen::Matrix<S, 1, Eigen::Dynamic> c = U.colwise().mean();  // (p)
  ps.Xc = U.rowwise() - c;                                            // (N, p)
  const index n_pad = simd_kernels::round_up(N, simd_tile);
  simd_kernels::resize_huge(ps.X, n_pad, ps.W);  // every entry is written below
  ps.X.bottomRows(n_pad - N).setZero();
#pragma omp parallel for schedule(static) if (simd_kernels::worth_threads(double(N) * double(ps.W)))
  for (index s = 0; s < N; ++s) {
    const S* x = ps.Xc.data() + s * p;
    S* row = ps.X.data() + s * ps.W;
    S* const end = row + ps.W;
    for (index i = 0; i < p; ++i)
      for (index j = i; j < p; ++j) *row++ = x[i] * x[j];
    for (index i = 0; i < p; ++i) *row++ = x[i];
    *row++ = S(1);
    std::fill(row, end, S(0));
  }
}

// Tokens whose one-pass C_t loses more than log2(8) = 3 bits to cancellation are recomputed.
inline constexpr double moment_refine_ratio = 8;

// a <- softmax(a) for the n logits a recomputed outside the kernel that gave lse: exp(l - lse)
// normalised to sum 1 when lse fits them (their largest weight in [1/(2n), 2]; in exact arithmetic
// it lies in [1/n, 1]), else exp(l - max l) normalised. A recomputed logit differs from the
// kernel's by its rounding, eps |l|, which for concentrated attention (|l| of 1e20, say) is far
// above 1: exp(l - lse) then overflows, or underflows to 0 or to subnormals.
template <class S>
void softmax_in_place(vector<S>& a, S lse) {
  vector<S> e = (a.array() - lse).exp();
  const S top = e.maxCoeff();
  if (!(top >= S(0.5) / S(a.size()) && top <= S(2))) e = (a.array() - a.maxCoeff()).exp();
  a = e / e.sum();
}

// exp(l_tt - lse_t) for a recomputed l_tt: a weight, so at most 1 (see softmax_in_place).
template <class S>
S own_weight(S l_tt, S lse_t) {
  using std::exp;
  return std::min(exp(l_tt - lse_t), S(1));
}

// The attention weights of query t over its past [0, n), normalised to sum 1, into a (n), and its
// centred keys y_s = x_s - m1 into Y (n, p).
template <class S>
void simd_centred_past(vector<S>& a, matrix<S>& Y, const simd_barrier_pass<S>& ps, const simd_head<S>& w, index t,
                       index n, const S* m1) {
  a.noalias() = w.Kt.topLeftCorner(w.d_k, n).transpose() * w.Qs.row(t).head(w.d_k).transpose();  // l_ts (n)
  softmax_in_place(a, w.lse(t));
  Y = ps.Xc.topRows(n).rowwise() - Eigen::Map<const Eigen::Matrix<S, 1, Eigen::Dynamic>>(m1, ps.p);
}

// The second, centred pass for the tokens whose one-pass moments cancel (some rho_ti = m2_ii / C_ii
// >= moment_refine_ratio, or C_ii <= 0): C_t = Y^T diag(a) Y - e e^T, e = Y^T a, m1_t += e, C_t
// written over the packed m2 slots of its row and the token marked in centred.
template <class S>
void simd_refine_moments(simd_head<S>& w, std::vector<char>& centred, const simd_barrier_pass<S>& ps, mask m) {
  const index N = ps.N, p = ps.p, W = ps.W;
  centred.assign(std::size_t(N), 0);
#pragma omp parallel if (simd_kernels::worth_threads(double(N) * double(W)))
  {
    vector<S> a, e;
    matrix<S> Y, C;
#pragma omp for schedule(dynamic, 8)
    for (index t = 0; t < N; ++t) {
      const index n = past_end(t, m);
      S* m2 = w.O.data() + t * W;
      S* m1 = m2 + p * (p + 1) / 2;
      bool cancels = false;  // rho_ti = m2_ii / C_ii >= moment_refine_ratio for some coordinate i
      for (index i = 0, k = 0; i < p; k += p - i, ++i)
        cancels = cancels || !((m2[k] - m1[i] * m1[i]) * S(moment_refine_ratio) > m2[k]);
      if (n == 0 || !cancels) continue;
      simd_centred_past(a, Y, ps, w, t, n, m1);
      e.noalias() = Y.transpose() * a;                                       // (p)
      C.noalias() = Y.transpose() * (Y.array().colwise() * a.array()).matrix();  // (p, p)
      C.noalias() -= e * e.transpose();
      for (index i = 0; i < p; ++i) {
        m1[i] += e(i);
        for (index j = i; j < p; ++j) *m2++ = C(i, j);
      }
      centred[std::size_t(t)] = 1;
    }
  }
}

// The moments of head h into w.O (round_up(N, 6), W), with w.lse (simd/barrier_moments.hpp), and
// the centred pass where they cancel.
template <class S>
void simd_barrier_moments(simd_head<S>& w, std::vector<char>& centred, simd_barrier_pass<S>& ps,
                          const Eigen::Ref<const matrix<S>>& U, const head<S>& h, const attention_params& attention) {
  simd_set_logit_operands<S>(w, U * h.W_Q.transpose(), U * h.W_K.transpose(), temperature_of(h, attention));
  simd_attention_moments(w, ps.X, attention.causal_mask, ps.moments);
  const index z = barrier_sum_column(ps.p);
#pragma omp parallel for schedule(static) if (simd_kernels::worth_threads(double(ps.N) * double(ps.W)))
  for (index t = 0; t < ps.N; ++t) {  // [m2, m1, z] / z; a row with an empty past stays 0
    S* o = w.O.data() + t * ps.W;
    if (o[z] > S(0)) simd_kernels::scale(o, ps.W, S(1) / o[z]);
  }
  simd_refine_moments(w, centred, ps, attention.causal_mask);
}

// Flops of the per-token (p, p) products and LUs of N tokens, for the decision to thread.
inline double simd_token_flops(index N, index p) { return 4.0 * double(N) * double(p) * double(p) * double(p); }

// Per-token quantities of head h at query t, shared by the forward and the backward.
template <class S>
struct simd_token {
  matrix<S> C;     // (p, p)
  matrix<S> M;     // (p, p_pad), zero padding columns
  matrix<S> VM;    // (p, p_pad)  V M_t (one head: M_t V), then J_t for the LU
  vector<S> d, hv; // (p)  inclusive: x_t - m1_t and A u_t
  vector<S> g;     // (p)  inclusive, one head: V^T A u_t
  S a_tt = S(0);   // inclusive: the weight of the query on itself
};

// How much of the symmetric C_t simd_token_moment writes: all of it (the backward's products read
// it whole), or what simd_kernels::symmetric_gemm_tile reads (the upper triangle and the lower
// triangles of the diagonal register blocks: contiguous writes only).
enum class moment_fill { full, upper };

// C_t and the inclusive extras (one head: also g) of head w at token t from its moments, and
// M_t = C_t A (+ extras) unless the pass has one head (whose product is simd_token_product's).
// centred: whether the token's m2 slots hold C_t itself (simd_refine_moments).
template <class S>
void simd_token_moment(simd_token<S>& k, const simd_barrier_pass<S>& ps, const simd_head<S>& w, bool centred,
                       std::size_t h, const Eigen::Ref<const matrix<S>>& U, index t, mask m, moment_fill fill) {
  constexpr index R = simd_kernels::gemm_rows;
  const index p = ps.p;
  const matrix<S>& A = ps.A[h];
  const S* m2 = w.O.data() + t * ps.W;
  const S* m1 = m2 + p * (p + 1) / 2;
  const S one_pass = centred ? S(0) : S(1);
  k.C.resize(p, p);
  S* C = k.C.data();
  for (index i = 0; i < p; m2 += p - i, ++i) {  // row i, j >= i: C = m2 - m1 m1^T
    const S a = one_pass * m1[i];
    for (index j = i; j < p; ++j) C[i * p + j] = m2[j - i] - a * m1[j];
  }
  for (index r = 0; r < p; r += R)  // the lower triangle: all of it, or that of the diagonal blocks
    for (index i = r; i < std::min(r + R, p); ++i)
      for (index j = fill == moment_fill::full ? 0 : r; j < i; ++j) C[i * p + j] = C[j * p + i];
  if (m == mask::inclusive) {
    k.hv.noalias() = A * U.row(t).transpose();                                     // (p)
    k.a_tt = own_weight(S(k.hv.dot(U.row(t).transpose())), w.lse(t));              // l_tt = u_t . A u_t
    k.d = ps.Xc.row(t).transpose() - Eigen::Map<const vector<S>>(m1, p);           // (p)
    if (ps.one_head) k.g.noalias() = ps.V[0].transpose() * k.hv;                    // (p)
  }
  if (ps.one_head) return;
  k.M.resize(p, ps.p_pad);
  simd_kernels::symmetric_gemm_tile<S>(k.M.data(), ps.p_pad, k.C.data(), p, ps.A_pad[h].data(), ps.p_pad, p,
                                       ps.p_pad);  // M = C A (p, p) (p, p_pad)
  if (m == mask::inclusive) {
    k.M.leftCols(p).noalias() += k.a_tt * k.d * k.hv.transpose();
    k.M.diagonal().array() += k.a_tt;
  }
}

// The product subtracted from I into k.VM (p, p_pad): V_h M_t, or for one head
// M_t V = C_t B + a_tt (V + d g^T).
template <class S>
void simd_token_product(simd_token<S>& k, const simd_barrier_pass<S>& ps, std::size_t h, mask m) {
  const index p = ps.p, p_pad = ps.p_pad;
  k.VM.resize(p, p_pad);
  if (!ps.one_head) {
    simd_kernels::gemm_tile<S>(k.VM.data(), p_pad, ps.V[h].data(), p, 1, k.M.data(), p_pad, p, p, p_pad,
                               false);  // V M_t (p, p) (p, p_pad)
    return;
  }
  simd_kernels::symmetric_gemm_tile<S>(k.VM.data(), p_pad, k.C.data(), p, ps.B_pad.data(), p_pad, p,
                                       p_pad);  // C_t B (p, p) (p, p_pad)
  if (m == mask::inclusive) {
    k.VM.leftCols(p) += k.a_tt * ps.V[0];
    k.VM.leftCols(p).noalias() += k.a_tt * k.d * k.g.transpose();
  }
}

// J_t -= V_h M^h_t for every token of one head (its moments in w.O); after the last head also
// log det J_t. Without store_J (one head, forward only) J_t lives in a per-thread (p, p)
// block and the (N p, p) stack is never allocated.
template <class S>
void simd_barrier_accumulate(simd_barrier_pass<S>& ps, std::size_t slot, std::size_t h,
                             const Eigen::Ref<const matrix<S>>& U, mask m, bool last, bool store_J) {
  const index p = ps.p, p_pad = ps.p_pad;
  const simd_head<S>& w = ps.ws[slot];
  const std::vector<char>& centred = ps.centred[slot];
#pragma omp parallel if (simd_kernels::worth_threads(simd_token_flops(ps.N, p)))
  {
    simd_token<S> k;
#pragma omp for schedule(static)
    for (index t = 0; t < ps.N; ++t) {
      simd_token_moment(k, ps, w, centred[std::size_t(t)] != 0, h, U, t, m, moment_fill::upper);
      simd_token_product(k, ps, h, m);
      if (store_J) {
        ps.J.middleRows(t * p, p) -= k.VM.leftCols(p);
        if (last) k.VM.leftCols(p) = ps.J.middleRows(t * p, p);
      } else {
        k.VM = -k.VM;
        k.VM.diagonal().array() += S(1);  // J_t = I - V M_t (J'_t), zero padding columns
      }
      if (last) ps.ld[std::size_t(t)] = simd_kernels::lu_log_det(k.VM.data(), p, p_pad);
    }
  }
}

// Whether the forward keeps the stacked blocks J (N p, p): for several heads or for the backward.
inline bool simd_barrier_stores_J(std::size_t H, bool backward) { return backward || H > 1; }

// The forward of one validated sequence: log det J_t and b_t for every token (and J_t, when
// stored). keep_heads (the backward) keeps every head's moments and projections and the blocks J;
// otherwise one head buffer is reused. `argument` names U in errors.
template <class S>
void simd_barrier_forward_sequence(simd_barrier_pass<S>& ps, const Eigen::Ref<const matrix<S>>& U,
                                   const heads<S>& heads, const barrier_params& barrier,
                                   const attention_params& attention, bool keep_heads, const std::string& argument) {
  const index N = U.rows(), p = U.cols();
  const bool store_J = simd_barrier_stores_J(heads.size(), keep_heads);
  simd_barrier_pack(ps, U);
  ps.ws.resize(keep_heads ? heads.size() : 1);
  ps.centred.resize(ps.ws.size());
  ps.A.resize(heads.size());
  ps.A_pad.resize(heads.size());
  ps.V.resize(heads.size());
  ps.ld.resize(std::size_t(N));
  ps.b.resize(std::size_t(N));
  ps.J.resize(store_J ? N * p : 0, p);
  ps.one_head = heads.size() == 1;
  for (index t = 0; t < ps.J.rows() / p; ++t) ps.J.middleRows(t * p, p).setIdentity();
  for (std::size_t h = 0; h < heads.size(); ++h) {
    const std::size_t slot = keep_heads ? h : 0;
    simd_head<S>& w = ps.ws[slot];
    simd_barrier_moments(w, ps.centred[slot], ps, U, heads[h], attention);
    ps.A[h] = logit_matrix(heads[h], w.tau);  // (p, p)
    ps.V[h] = value_matrix(heads[h]);         // (p, p)
    if (ps.one_head) {
      ps.B_pad.setZero(p, ps.p_pad);
      ps.B_pad.leftCols(p).noalias() = ps.A[h] * ps.V[h];  // B = A V
      ps.Bt_pad.setZero(p, ps.p_pad);
      ps.Bt_pad.leftCols(p) = ps.B_pad.leftCols(p).transpose();
    } else {
      ps.A_pad[h].setZero(p, ps.p_pad);
      ps.A_pad[h].leftCols(p) = ps.A[h];
    }
    simd_barrier_accumulate(ps, slot, h, U, attention.causal_mask, h + 1 == heads.size(), store_J);
  }
  // b_t outside the threads: no exception may leave an OpenMP region
  for (index t = 0; t < N; ++t) ps.b[std::size_t(t)] = token_barrier(ps.ld[std::size_t(t)], barrier, argument, t);
}

// Whether a sequence of N tokens of width p under H heads goes to the reference path
// (barrier/penalty.hpp) instead of the kernels above. Both paths cost about a N^2 p^2 H for the
// moments and b N p^3 H for the per-token (p, p) products and LUs; the kernels' a is smaller (the
// packed moment GEMM) and their b larger (register-blocked products on padded rows, one token at a
// time, out of L1 from p = 64 in double), so they win above some N / p. Measured with
// bench_barrier's BM_barrier_small (one thread, float and double, forward and forward+backward,
// N = 16..256, p = 4..64, H = 1, 2; docs/performance.md, "Small problems"), the kernels' set-up
// loses below N = 32 and the crossing lies
//   double: near N = 2p for one head below p = 48 (one product per token, the Sylvester form),
//           near N = 4p for several heads or p = 64;
//   float:  near N = p / 2 for one head, near N = 2p for several (the kernels' vectors hold twice
//           as many floats, the reference's Eigen products gain less).
template <class S>
bool simd_barrier_prefers_reference(index N, index p, std::size_t H) {
  if (N < 32) return true;
  if constexpr (std::is_same_v<S, float>) return H == 1 ? 2 * N <= p : N <= 2 * p;
  const index c = H == 1 && p < 48 ? 2 : 4;
  return N <= c * p;
}

// b_t of one validated sequence into ps.b: the kernels, or the reference path for small problems.
template <class S>
void simd_barrier_values(simd_barrier_pass<S>& ps, const Eigen::Ref<const matrix<S>>& U, const heads<S>& heads,
                         const barrier_params& barrier, const attention_params& attention,
                         const std::string& argument) {
  if (simd_barrier_prefers_reference<S>(U.rows(), U.cols(), heads.size()))
    ps.b = sequence_barrier_forward<S>(U, heads, barrier, attention, argument).b;
  else
    simd_barrier_forward_sequence<S>(ps, U, heads, barrier, attention, false, argument);
}

}  // namespace detail

// Bytes of the buffers the simd barrier allocates for one sequence of length N (the largest
// sequence of a batch): the forward, or the forward and backward together (backward = true).
// Excludes the outputs (b_t, gradients) and Eigen's small per-thread temporaries.
template <class S>
std::size_t barrier_workspace_bytes(simd, index N, const heads<S>& heads, bool backward) {
  using detail::simd_kernels::block_width;
  using detail::simd_kernels::max_threads;
  using detail::simd_kernels::round_up;
  detail::simd_require_scalar<S>();
  detail::require(N > 0, "N", "must be positive, got ", N);
  detail::validate_heads(heads, heads.empty() ? 1 : heads[0].p());
  detail::require(heads[0].p() > 0, "heads[0].W_Q", "embedding dimension p must be positive, got 0 columns");
  // The largest term below is N p^2 (the blocks J) or n_pad W, W ~ p^2 / 2: N p^2 elements of
  // 8 bytes must leave room in 63 bits, with a factor 16 for the other terms.
  detail::require(double(N) * double(heads[0].p() + 2) * double(heads[0].p() + 2) * double(heads.size() + 1) < 0x1p54,
                  "N", "the workspace for N = ", N, " and p = ", heads[0].p(), " overflows a 64-bit size");
  const index p = heads[0].p(), W = detail::barrier_width<S>(p), n_pad = round_up(N, detail::simd_tile);
  const index T = detail::simd_tile, threads = max_threads();
  // Xc, X, J, the moment GEMM's panels; backward: X^T (shared by the heads; X is released after it)
  index n = N * p + n_pad * W + (detail::simd_barrier_stores_J(heads.size(), backward) ? N * p * p : 0) +
            detail::simd_moment_buffer_elements<S>(N) + (backward ? W * n_pad : 0);
  index heads_kept = 0;
  for (const head<S>& h : heads) {
    const index dk = round_up(h.d_k(), block_width<S>);
    // Qs, Kt, the (unused) values U W_V^T, moments, lse; the P and dP tiles per thread
    const index one = N * dk + h.d_k() * n_pad + n_pad * round_up(h.d_v(), block_width<S>) +
                      round_up(N, detail::simd_kernels::gemm_rows) * W + N +
                      threads * 2 * T * T;
    // K, R, D, dK, E, one dQ and the key tiles' probability column (n_pad, T) per thread (dJ
    // overwrites J)
    const index grad = n_pad * dk + N * W + N + n_pad * dk + n_pad * W + threads * (N * dk + n_pad * T);
    heads_kept = backward ? heads_kept + one + grad : std::max(heads_kept, one);
  }
  return std::size_t(n + heads_kept) * sizeof(S);
}

// Buffers of the simd barrier kept from one call to the next. A loop that evaluates the penalty
// again and again (training, a sweep over inputs) passes the same workspace to barrier_per_token /
// barrier_penalty / barrier_penalty_batch and to barrier_penalty_backward /
// barrier_penalty_batch_backward (simd/barrier_backward.hpp): their buffers (about
// barrier_workspace_bytes(simd{}, N, heads, backward) bytes) are then allocated and first touched
// once, not on every call (at (N, p) = (1024, 64) the page faults of a fresh 20 MB were a fifth of
// the forward's time, and those of the backward's 60 MB two thirds of its time on two threads on
// one machine: docs/simd.md, "Workspace and threads").
// The workspace holds that memory until it is destroyed or released. Calls that share a workspace
// must not run at the same time.
template <class S>
struct barrier_workspace {
  detail::simd_barrier_pass<S> buffers;  // opaque: sized by the calls
  void release() { buffers = {}; }
};

// b_t for every token t = 0..N-1 of U (N, p), as barrier_per_token of barrier/penalty.hpp.
template <class S>
std::vector<S> barrier_per_token(simd, const_ref<S> U, const heads<S>& heads, const barrier_params& barrier,
                                 const attention_params& attention, barrier_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_barrier(barrier);
  detail::validate_attention<S>(U, heads, attention, "U", "attention");
  detail::simd_barrier_values<S>(workspace.buffers, U, heads, barrier, attention, "U");
  return workspace.buffers.b;
}

template <class S>
std::vector<S> barrier_per_token(simd, const_ref<S> U, const heads<S>& heads, const barrier_params& barrier,
                                 const attention_params& attention = {}) {
  barrier_workspace<S> workspace;
  return barrier_per_token<S>(simd{}, U, heads, barrier, attention, workspace);
}

// The penalty of one sequence: mean of b_t over its non-trivial tokens.
template <class S>
S barrier_penalty(simd, const_ref<S> U, const heads<S>& heads, const barrier_params& barrier,
                  const attention_params& attention, barrier_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_barrier(barrier);
  detail::validate_attention<S>(U, heads, attention, "U", "attention");
  const index n = detail::counted_tokens(U.rows(), attention.causal_mask);
  if (n == 0) return S(0);
  detail::simd_barrier_values<S>(workspace.buffers, U, heads, barrier, attention, "U");
  return detail::counted_sum<S>(workspace.buffers.b, attention.causal_mask) / S(n);
}

template <class S>
S barrier_penalty(simd, const_ref<S> U, const heads<S>& heads, const barrier_params& barrier,
                  const attention_params& attention = {}) {
  barrier_workspace<S> workspace;
  return barrier_penalty<S>(simd{}, U, heads, barrier, attention, workspace);
}

// The penalty of a batch (heads shared): mean over all non-trivial tokens of all sequences.
template <class S>
S barrier_penalty_batch(simd, std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads,
                        const barrier_params& barrier, const attention_params& attention,
                        barrier_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_barrier(barrier);
  detail::validate_batch<S>(Us, heads, attention, "attention");
  index n = 0;
  S sum = S(0);
  for (std::size_t b = 0; b < Us.size(); ++b) {  // the buffers are reused by the sequences
    n += detail::counted_tokens(Us[b].rows(), attention.causal_mask);
    detail::simd_barrier_values<S>(workspace.buffers, Us[b], heads, barrier, attention, "Us[" + std::to_string(b) + "]");
    sum += detail::counted_sum<S>(workspace.buffers.b, attention.causal_mask);
  }
  return n == 0 ? S(0) : sum / S(n);
}

template <class S>
S barrier_penalty_batch(simd, std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads,
                        const barrier_params& barrier, const attention_params& attention = {}) {
  barrier_workspace<S> workspace;
  return barrier_penalty_batch<S>(simd{}, Us, heads, barrier, attention, workspace);
}

}  // namespace suptok
