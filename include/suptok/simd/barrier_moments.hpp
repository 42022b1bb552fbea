// suptok/simd/barrier_moments.hpp: the attention-weighted moments of the barrier, xsimd fast path.
//
//   O_t = sum_{s in P(t)} a_ts X_s,  a_ts = exp(l_ts - lse_t),  l_ts = Q_t . K_s    (N, W)
// with X_s the packed rows [x_i x_j (i <= j), x] of simd/barrier_forward.hpp (W about p^2 / 2).
// W is far wider than the d_v of attention, so the moments are computed in two passes rather than
// with the online softmax of simd/attention_forward.hpp (whose rescaling and strided value reads
// cost a third of the FMA rate at W = 2144):
//   1. lse_t: the fused forward tiles with zero-width values (only the running max and sum).
//   2. O = P X as a packed GEMM (the BLIS loop order): for each block of moment_key_block keys,
//      the probabilities P (rows t >= the block's first query, those keys) are computed once and
//      stored in row panels of gemm_rows = 6 rows (k-major, the A operand of gemm_block); then each
//      thread takes column panels of block_width columns of X, packs the block's rows of one panel
//      (its B operand, kc x block_width: 32 KiB in float with AVX-512, 16 KiB with AVX2) and runs it
//      against every row panel as one 6 x block_width register block over the keys of the block
//      that are in the panel's past (the masked corner of the diagonal is not multiplied). The B
//      panel stays in L1 while the row panels stream from L2 (6 scalars per step of k against the
//      2 vectors of B a step, so the other order moves about 5x the bytes from L2).
// Memory: P panels (N + 6) x moment_key_block and one packed panel per thread; O(N) for a fixed
// block size; no (N, N) matrix. O gets round_up(N, 6) rows (the last panel's padding rows are zero).
// Threads: OpenMP over the query chunks of P, then over the column panels.
#pragma once

#include <algorithm>
#include <span>
#include <vector>

#include "attention_forward.hpp"

namespace suptok::detail {

inline constexpr index moment_key_block = 256;     // keys per block: a packed panel (256 x block_width) fits L1
inline constexpr index moment_row_chunk = 96;       // query rows per probability chunk (16 panels)

// The probability panels of one key block, shared by the threads.
template <class S>
struct simd_moment_buffers {
  std::vector<S> P;   // probability panels of one key block: (round_up(N, 6) - r0) x kc
};

// Row stride of the per-thread logit scratch (moment_row_chunk rows).
template <class S>
inline constexpr index moment_logit_stride = moment_key_block + simd_skew<S>;

// Elements of simd_moment_buffers and the per-thread scratch (logits, one packed panel) for a
// sequence of length N.
template <class S>
index simd_moment_buffer_elements(index N) {
  const index rows = simd_kernels::round_up(N, simd_kernels::gemm_rows);
  const index per_thread = moment_row_chunk * moment_logit_stride<S> + moment_key_block * simd_kernels::block_width<S>;
  return rows * moment_key_block + simd_kernels::max_threads() * per_thread;
}

// Probabilities a_ts of rows [q0, q0 + rows) (q0 a multiple of 6) and keys [k0, k0 + kc) into
// row panels at Pp (panel i at Pp + i kc 6, entry (k, r) at + k 6 + r); rows >= N and entries
// outside the past are 0. L is a (moment_row_chunk, ldl) scratch for the logits.
template <class S>
void simd_probability_panels(S* Pp, S* L, index ldl, const simd_head<S>& w, index q0, index rows, index k0, index kc,
                             mask m) {
  namespace k = simd_kernels;
  constexpr index R = k::gemm_rows;
  const index kw = k::round_up(kc, k::block_width<S>);
  const index real = std::max<index>(std::min(rows, w.N - q0), 0);
  k::gemm_tile<S>(L, ldl, w.Qs.data() + q0 * w.dk_pad, w.dk_pad, 1, w.Kt.data() + k0, w.Kt.cols(), real, w.d_k, kw,
                  false);  // (real, d_k) (d_k, kw)
  for (index i = 0; i < rows; ++i) {
    S* l = L + i * ldl;
    const index end = i < real ? std::clamp<index>(past_end(q0 + i, m) - k0, 0, kc) : 0;  // keys [0, end)
    if (end > 0) k::exp_shift_sum(l, k::round_up(end, k::lanes<S>), w.lse(q0 + i));
    std::fill(l + end, l + kc, S(0));
  }
  for (index i = 0; i < rows; i += R)
    for (index kk = 0; kk < kc; ++kk)
      for (index r = 0; r < R; ++r) Pp[(i * kc) + kk * R + r] = L[(i + r) * ldl + kk];
}

// The moments O (round_up(N, 6), W) += P X of one projected head, lse already in w.lse.
// X: (n_pad, W) packed rows (n_pad >= N, zero padding rows).
template <class S>
void simd_moment_gemm(matrix<S>& O, const simd_head<S>& w, const matrix<S>& X, mask m, simd_moment_buffers<S>& buf) {
  namespace k = simd_kernels;
  constexpr index R = k::gemm_rows, bw = k::block_width<S>;
  const index N = w.N, W = X.cols(), rows_pad = k::round_up(N, R);
  constexpr index ldl = moment_logit_stride<S>;
  k::resize_huge(O, rows_pad, W);
  buf.P.resize(std::size_t(rows_pad * moment_key_block));
  const double flops = double(N) * double(N) * double(W);
#pragma omp parallel if (k::worth_threads(flops))
  {
    std::vector<S> L(std::size_t(moment_row_chunk * ldl));
    std::vector<S> Xp(std::size_t(moment_key_block * bw));  // one packed column panel (kc, bw)
    for (index k0 = 0; k0 < N; k0 += moment_key_block) {
      const index kc = std::min(moment_key_block, N - k0);
      const index r0 = (m == mask::strict ? k0 + 1 : k0) / R * R;  // first row panel that sees key k0
      if (r0 >= N) break;
      S* P = buf.P.data();
#pragma omp for schedule(dynamic, 1)
      for (index q0 = r0; q0 < rows_pad; q0 += moment_row_chunk)
        simd_probability_panels(P + (q0 - r0) * kc, L.data(), ldl, w, q0, std::min(moment_row_chunk, rows_pad - q0), k0,
                                kc, m);
#pragma omp for schedule(static)
      for (index c = 0; c < W; c += bw) {
        k::pack_column_panels(Xp.data(), X.data() + k0 * W + c, W, kc, bw);
        for (index r = r0; r < rows_pad; r += R) {
          // keys of the block in the past of the panel's last row (the rest of the panel is 0)
          const index keys = std::clamp<index>(past_end(std::min(r + R, N) - 1, m) - k0, 0, kc);
          if (keys == 0 && k0 > 0) continue;
          if (r + R < rows_pad) k::prefetch_tile(O.data() + (r + R) * W + c, W, R, bw);  // the next C tile
          k::gemm_block<R>(O.data() + r * W + c, W, P + (r - r0) * kc, 1, R, Xp.data(), bw, keys, k0 > 0);
        }
      }
    }
  }
}

// Moments of one projected head with X as its values: lse into w.lse (pass 1), the moments into
// w.O (round_up(N, 6), W) (pass 2); w.d_v = w.dv_pad = W afterwards.
template <class S>
void simd_attention_moments(simd_head<S>& w, const matrix<S>& X, mask m, simd_moment_buffers<S>& buf) {
  w.d_v = w.dv_pad = 0;  // pass 1: the fused forward tiles without values (they write no row of O,
                         // which keeps its buffer for pass 2)
  simd_forward_tiles<S>(std::span(&w, 1), m);
  simd_moment_gemm(w.O, w, X, m, buf);
  w.d_v = w.dv_pad = X.cols();
}

}  // namespace suptok::detail
