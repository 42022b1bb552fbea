// suptok/simd/attention_forward.hpp: fused causal attention forward, xsimd fast path (float, double).
//
// Same maths as attention/forward.hpp (docs/math.md section 1), per head h and sequence b:
//   Q = U W_Q^T / tau (N, d_k), K = U W_K^T (N, d_k), Vv = U W_V^T (N, d_v)   (Eigen GEMMs)
//   O_t = sum_{s in P(t)} exp(l_ts - lse_t) Vv_s,  l_ts = Q_t . K_s           (fused kernel)
//   mu += O W_O^T                                                            (Eigen GEMM)
// The fused kernel walks query tiles x key tiles of simd_tile = 64 with an online softmax:
// per row the running maximum m_t and sum l_t; a new tile with maximum m' rescales the running
// output and sum by exp(m_t - m') (FlashAttention). The (N, N) weights are never formed; key tiles
// past a query tile's last key are skipped, the diagonal tile is masked with -inf.
// Outputs: mu (N, p), lse[h] (N) (-inf for an empty past, whose output row is 0, never NaN) and
// head_outputs[h] = O (N, d_v), which the backward can reuse; attention_output::weights stays empty (the simd overloads have no keep_weights parameter).
// Workspace: padded Q, K^T, Vv, O per head and sequence, O(N d), allocated by the call or kept in
// an attention_workspace across calls, plus O(simd_tile (simd_tile + d_v)) scratch per thread;
// nothing is allocated inside the tile loops.
// Threads: OpenMP over (sequence, head, query tile) tasks, largest first (OMP_NUM_THREADS).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "../attention/forward.hpp"
#include "kernels.hpp"

namespace suptok {
namespace detail {

// Queries per query tile = keys per key tile; a multiple of every block_width.
inline constexpr index simd_tile = 64;

// One head on one sequence: the padded operands of the fused kernels and the forward's results.
template <class S>
struct simd_head {
  index N = 0, d_k = 0, d_v = 0;
  index n_pad = 0, dk_pad = 0, dv_pad = 0;  // N rounded up to simd_tile, d_k and d_v to block_width
  S tau = S(1);
  matrix<S> Qs;   // (N, dk_pad)     Q / tau, zero padding columns
  matrix<S> Kt;   // (d_k, n_pad + skew) K^T, zero padding columns; see simd_skew
  matrix<S> V;    // (n_pad, dv_pad) Vv, zero padding
  matrix<S> O;    // (N, dv_pad)     output of the head, zero padding columns
  vector<S> lse;  // (N)
};

// Extra columns of the transposed operands (K^T, Vv^T): their rows are read together by one
// register block, and n_pad columns apart they would be a multiple of 4 KiB apart for large N,
// all in the same L1 set; 64 more bytes spread them over the sets.
template <class S>
inline constexpr index simd_skew = 64 / index(sizeof(S));

// Per-thread scratch tiles, sized on first use.
template <class S>
struct simd_scratch {
  matrix<S> P;    // (simd_tile, simd_tile): logits, then probabilities; backward: (n_pad, simd_tile)
  matrix<S> dP;   // (simd_tile, simd_tile): backward only
  matrix<S> acc;  // (simd_tile, dv_pad): running output of a query tile
};

// The extra operands of the backward for one head (padded as in simd_head; simd/attention_backward.hpp,
// and the barrier's backward, which keeps them in its workspace).
template <class S>
struct simd_head_grad {
  matrix<S> K;   // (n_pad, dk_pad)  K, row-major
  matrix<S> Vt;  // (d_v, n_pad + skew) Vv^T (any row stride >= n_pad: Vt.cols())
  matrix<S> dO;  // (N, dv_pad)      dMu W_O
  vector<S> D;   // (N)              dO_t . O_t
  matrix<S> dK;  // (n_pad, dk_pad)
  matrix<S> dV;  // (n_pad, dv_pad)
  std::vector<matrix<S>> dQ;  // one (N, dk_pad) per thread, of dS K (without 1/tau)
  std::vector<simd_scratch<S>> tiles;  // one per thread: the key tiles' probabilities
};

// Logit operands of a head from its (rotated) queries Q (N, d_k) and keys K (N, d_k); no values.
template <class S>
void simd_set_logit_operands(simd_head<S>& w, const matrix<S>& Q, const matrix<S>& K, S tau) {
  using simd_kernels::block_width;
  using simd_kernels::round_up;
  w.N = Q.rows();
  w.d_k = Q.cols();
  w.d_v = w.dv_pad = 0;
  w.n_pad = round_up(w.N, simd_tile);
  w.dk_pad = round_up(w.d_k, block_width<S>);
  w.tau = tau;
  w.Qs.setZero(w.N, w.dk_pad);
  w.Qs.leftCols(w.d_k) = Q / tau;
  w.Kt.setZero(w.d_k, w.n_pad + simd_skew<S>);
  w.Kt.leftCols(w.N) = K.transpose();
  w.V.resize(w.n_pad, 0);
  w.lse.resize(w.N);
}

// Logit operands and values of a head: Q = U W_Q^T, K = U W_K^T, Vv = U W_V^T.
template <class S>
void simd_project(simd_head<S>& w, const Eigen::Ref<const matrix<S>>& U, const head<S>& h,
                  const attention_params& params) {
  simd_set_logit_operands<S>(w, U * h.W_Q.transpose(), U * h.W_K.transpose(), temperature_of(h, params));
  w.d_v = h.d_v();
  w.dv_pad = simd_kernels::round_up(w.d_v, simd_kernels::block_width<S>);
  w.V.setZero(w.n_pad, w.dv_pad);
  w.V.topLeftCorner(w.N, w.d_v).noalias() = U * h.W_V.transpose();  // (N, d_v)
  w.O.resize(w.N, w.dv_pad);
}

// Logits of query rows [q0, q0 + rows) against keys [k0, k0 + kw) into P (rows, kw), row stride
// simd_tile; entries outside the causal past are set to -inf.
template <class S>
void simd_masked_logits(S* P, const simd_head<S>& w, index q0, index rows, index k0, index kw, mask m) {
  simd_kernels::gemm_tile<S>(P, simd_tile, w.Qs.data() + q0 * w.dk_pad, w.dk_pad, 1, w.Kt.data() + k0, w.Kt.cols(),
                             rows, w.d_k, kw, false);  // (rows, d_k) (d_k, kw)
  for (index i = 0; i < rows; ++i) {
    const index end = std::max<index>(past_end(q0 + i, m) - k0, 0);  // unmasked columns [0, end)
    std::fill(P + i * simd_tile + std::min(end, kw), P + i * simd_tile + kw, -std::numeric_limits<S>::infinity());
  }
}

// The fused forward of query tile [q0, q0 + simd_tile) of one head: fills w.O and w.lse rows.
template <class S>
void simd_forward_tile(simd_head<S>& w, index q0, mask m, simd_scratch<S>& sc) {
  namespace k = simd_kernels;
  using std::exp;
  using std::log;
  constexpr index T = simd_tile;
  constexpr S minus_inf = -std::numeric_limits<S>::infinity();
  const index rows = std::min(T, w.N - q0);
  const index keys = past_end(q0 + rows - 1, m);  // the tile needs keys [0, keys)
  sc.P.resize(T, T);
  sc.acc.setZero(T, w.dv_pad);
  S* P = sc.P.data();
  S* acc = sc.acc.data();
  S row_m[T], row_l[T];  // running maximum and sum of each row
  std::fill(row_m, row_m + T, minus_inf);
  std::fill(row_l, row_l + T, S(0));
  for (index k0 = 0; k0 < keys; k0 += T) {
    const index kn = std::min(T, keys - k0);
    const index kw = k::round_up(kn, k::block_width<S>);
    simd_masked_logits(P, w, q0, rows, k0, kw, m);  // (rows, kw)
    for (index i = 0; i < rows; ++i) {
      S* p = P + i * T;
      const S mx = std::max(row_m[i], k::row_max(p, kw));
      if (mx == minus_inf) {  // no key of row i so far
        std::fill(p, p + kw, S(0));
        continue;
      }
      const S alpha = exp(row_m[i] - mx);  // 0 on the row's first keys
      row_l[i] = row_l[i] * alpha + k::exp_shift_sum(p, kw, mx);
      if (alpha != S(1)) k::scale(acc + i * w.dv_pad, w.dv_pad, alpha);
      row_m[i] = mx;
    }
    k::gemm_tile<S>(acc, w.dv_pad, P, T, 1, w.V.data() + k0 * w.dv_pad, w.dv_pad, rows, kn, w.dv_pad,
                    true);  // (rows, kn) (kn, dv_pad)
  }
  for (index i = 0; i < rows; ++i) {
    S* o = w.O.data() + (q0 + i) * w.dv_pad;
    if (row_l[i] == S(0)) {  // empty past: output 0, lse -inf
      std::fill(o, o + w.dv_pad, S(0));
      w.lse(q0 + i) = minus_inf;
      continue;
    }
    const S inv = S(1) / row_l[i];
    for (index c = 0; c < w.dv_pad; ++c) o[c] = acc[i * w.dv_pad + c] * inv;
    w.lse(q0 + i) = row_m[i] + log(row_l[i]);
  }
}

// Runs every query tile of every projected head, largest tiles first, on the OpenMP threads.
// Flops of the fused N^2 part (logits and P V over all (t, s) pairs of the tiles), for the
// decision to thread.
template <class S>
double simd_tile_flops(std::span<const simd_head<S>> ws) {
  double flops = 0;
  for (const simd_head<S>& w : ws) flops += double(w.N) * double(w.N) * double(w.d_k + w.d_v);
  return flops;
}

template <class S>
void simd_forward_tiles(std::span<simd_head<S>> ws, mask m) {
  struct task {
    index head, q0;
  };
  std::vector<task> tasks;
  for (std::size_t i = 0; i < ws.size(); ++i)
    for (index q0 = 0; q0 < ws[i].N; q0 += simd_tile) tasks.push_back({index(i), q0});
  std::stable_sort(tasks.begin(), tasks.end(), [](const task& a, const task& b) { return a.q0 > b.q0; });
  const index n_tasks = index(tasks.size());
#pragma omp parallel if (simd_kernels::worth_threads(simd_tile_flops<S>(ws)))
  {
    simd_scratch<S> sc;
#pragma omp for schedule(dynamic, 1)
    for (index t = 0; t < n_tasks; ++t) simd_forward_tile(ws[tasks[t].head], tasks[t].q0, m, sc);
  }
}

// The fused forward on validated arguments: outs[b] for sequence Us[b].
template <class S>
void simd_forward_unchecked(std::span<attention_output<S>> outs, std::span<const Eigen::Ref<const matrix<S>>> Us,
                            const heads<S>& heads, const attention_params& params, std::vector<simd_head<S>>& ws) {
  const index B = index(Us.size()), H = index(heads.size());
  ws.resize(std::size_t(B * H));  // head h of sequence b at b * H + h; kept buffers are reused
  double projection_flops = 0;
  for (index b = 0; b < B; ++b)
    for (const head<S>& h : heads) projection_flops += 2.0 * Us[b].rows() * Us[b].cols() * (2 * h.d_k() + 2 * h.d_v());
  const bool threaded = simd_kernels::worth_threads(projection_flops);
#pragma omp parallel for schedule(dynamic, 1) if (threaded)
  for (index bh = 0; bh < B * H; ++bh) simd_project(ws[bh], Us[bh / H], heads[bh % H], params);
  simd_forward_tiles<S>(ws, params.causal_mask);
#pragma omp parallel for schedule(dynamic, 1) if (threaded)
  for (index b = 0; b < B; ++b) {
    attention_output<S>& out = outs[b];
    out.mu.setZero(Us[b].rows(), Us[b].cols());
    out.lse.resize(H);
    out.head_outputs.resize(H);
    out.weights.clear();
    for (index h = 0; h < H; ++h) {
      const simd_head<S>& w = ws[b * H + h];
      out.mu.noalias() += w.O.leftCols(w.d_v) * heads[h].W_O.transpose();  // (N, d_v) (d_v, p)
      out.lse[h] = w.lse;
      out.head_outputs[h] = w.O.leftCols(w.d_v);
    }
  }
}

template <class S>
void simd_require_scalar() {
  static_assert(simd_kernels::supported_scalar<S>, "suptok::simd backend: Scalar must be float or double");
}

}  // namespace detail

// Buffers of the simd attention kept from one call to the next: the padded Q / tau, K^T, Vv and O
// of every (sequence, head) of a forward, and the backward's operands and gradients of one head
// (about 4 N d values each, d = max(d_k, d_v) rounded up to 2 vectors, plus one (N, d_k) dQ per
// thread). A training loop passes the same workspace to attention_forward(_batch) and
// attention_backward(_batch) (simd/attention_backward.hpp): the buffers are then allocated and
// first touched once, not on every call (docs/simd.md, "Workspace": at (N, d) = (2048, 64) the
// page faults and zeroing of fresh buffers were about a third of a forward+backward).
// The workspace holds that memory until it is destroyed or released. Calls that share a workspace
// must not run at the same time.
template <class S>
struct attention_workspace {
  std::vector<detail::simd_head<S>> heads;  // opaque: sized by the calls
  detail::simd_head_grad<S> grad;
  void release() { *this = {}; }
};

// Fused forward into `out` (mu, lse and head_outputs; weights left empty). Validation as the reference.
template <class S>
void attention_forward(simd, attention_output<S>& out, const_ref<S> U, const heads<S>& heads,
                       const attention_params& params, attention_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_attention<S>(U, heads, params);
  const std::vector<Eigen::Ref<const matrix<S>>> Us{U};
  detail::simd_forward_unchecked<S>(std::span(&out, 1), Us, heads, params, workspace.heads);
}

template <class S>
void attention_forward(simd, attention_output<S>& out, const_ref<S> U, const heads<S>& heads,
                       const attention_params& params = {}) {
  attention_workspace<S> workspace;
  attention_forward<S>(simd{}, out, U, heads, params, workspace);
}

// Batch forward: outs[b] for sequence Us[b] (lengths may differ); validated as the reference.
template <class S>
void attention_forward_batch(simd, std::vector<attention_output<S>>& outs,
                             std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads,
                             const attention_params& params, attention_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_batch<S>(Us, heads, params);
  const std::vector<Eigen::Ref<const matrix<S>>> refs(Us.begin(), Us.end());
  outs.resize(Us.size());
  detail::simd_forward_unchecked<S>(outs, refs, heads, params, workspace.heads);
}

template <class S>
void attention_forward_batch(simd, std::vector<attention_output<S>>& outs,
                             std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads,
                             const attention_params& params = {}) {
  attention_workspace<S> workspace;
  attention_forward_batch<S>(simd{}, outs, Us, heads, params, workspace);
}

}  // namespace suptok
