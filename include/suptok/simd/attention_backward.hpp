// suptok/simd/attention_backward.hpp: fused causal attention backward, xsimd fast path (float, double).
//
// Same gradients as attention/backward.hpp, computed FlashAttention-2 style from the forward's
// O and lse: taken from the forward's output when the caller passes it, else recomputed by the
// fused forward (which then runs twice in a training step). Per head, with
// Q = U W_Q^T, l = Q K^T / tau and a = exp(l - lse) on P(t):
//   mu  += O W_O^T          ->  dO = dMu W_O (N, d_v),  dW_O = dMu^T O (p, d_v)     (Eigen)
//   D_t  = dO_t . O_t       (= sum_r a_tr da_tr, since O_t = sum_r a_tr Vv_r)
//   per key tile, for every query tile that sees it, recomputing P = exp(l - lse):
//   O    = a Vv             ->  dV += P^T dO,  dP = dO Vv^T
//   a    = softmax(l)       ->  dS = P (dP - D)
//   l    = Q K^T / tau      ->  dQ += dS K / tau,  dK += dS^T Q / tau              (fused)
//   Q, K, Vv = U W^T        ->  dW = d(Q, K, Vv)^T U,  dU += dQ W_Q + dK W_K + dV W_V  (Eigen)
// Threads: OpenMP over the key tiles of one head at a time (sequences and heads in turn): a key
// tile owns its rows of dK and dV; dQ is summed in one (N, d_k) buffer per thread and reduced.
// Workspace: O(N (d_k + d_v)) for one head at a time plus, per thread, one dQ buffer and the
// (n_pad, simd_tile) probabilities of a key tile; allocated by the call or kept in an
// attention_workspace (simd/attention_forward.hpp) across calls.
#pragma once

#include <span>
#include <vector>

#include "../attention/backward.hpp"
#include "attention_forward.hpp"

namespace suptok {
namespace detail {

template <class S>
void simd_prepare_backward(simd_head_grad<S>& g, const simd_head<S>& w, const Eigen::Ref<const matrix<S>>& dMu,
                           const head<S>& h) {
  g.K.setZero(w.n_pad, w.dk_pad);
  g.K.topLeftCorner(w.N, w.d_k) = w.Kt.leftCols(w.N).transpose();  // (N, d_k)
  g.Vt.setZero(w.d_v, w.n_pad + simd_skew<S>);
  g.Vt.leftCols(w.N) = w.V.topLeftCorner(w.N, w.d_v).transpose();  // (d_v, N)
  g.dO.setZero(w.N, w.dv_pad);
  g.dO.leftCols(w.d_v).noalias() = dMu * h.W_O;  // (N, p) (p, d_v)
  g.D.resize(w.N);
  for (index t = 0; t < w.N; ++t)
    g.D(t) = simd_kernels::dot(g.dO.data() + t * w.dv_pad, w.O.data() + t * w.dv_pad, w.dv_pad);
  g.dK.setZero(w.n_pad, w.dk_pad);
  g.dV.resize(w.n_pad, w.dv_pad);  // every key tile's rows written by its product
  g.dQ.resize(std::size_t(simd_kernels::max_threads()));
  for (matrix<S>& dQ : g.dQ) dQ.setZero(w.N, w.dk_pad);
}

// Key tile [k0, k0 + simd_tile) of one head: its rows of dK and dV, and dS K into dQ (N, dk_pad).
// The probabilities of every query tile are kept in one column (sc.P, (n_pad, simd_tile)) so
// that dV += P^T dO is one product over all the tile's queries: its (kw, dv_pad) output is then
// loaded and stored once per gemm_depth queries instead of once per query tile (dv_pad = W, about
// p^2 / 2 wide, in the barrier's backward).
template <class S>
void simd_backward_tile(simd_head_grad<S>& g, S* dQ, const simd_head<S>& w, index k0, mask m, simd_scratch<S>& sc) {
  namespace k = simd_kernels;
  constexpr index T = simd_tile;
  const index kn = std::min(T, w.N - k0);
  const index kw = k::round_up(kn, k::block_width<S>);
  const index q_first = k0;  // the diagonal tile: the first whose queries see key k0 (either mask)
  sc.P.resize(w.n_pad, T);
  sc.dP.resize(T, T);
  S* dS = sc.dP.data();
  S* dK = g.dK.data() + k0 * w.dk_pad;  // (kw, dk_pad), owned by this tile
  S* dV = g.dV.data() + k0 * w.dv_pad;  // (kw, dv_pad), owned by this tile
  for (index q0 = q_first; q0 < w.N; q0 += T) {
    const index rows = std::min(T, w.N - q0);
    S* P = sc.P.data() + (q0 - q_first) * T;
    simd_masked_logits(P, w, q0, rows, k0, kw, m);  // (rows, kw)
    for (index i = 0; i < rows; ++i) {
      S* p = P + i * T;
      const index end = std::clamp<index>(past_end(q0 + i, m) - k0, 0, kw);  // unmasked columns [0, end)
      if (end > 0) k::exp_shift_sum(p, kw, w.lse(q0 + i));                    // P = exp(l - lse)
      std::fill(p + end, p + kw, S(0));
    }
    const S* dO = g.dO.data() + q0 * w.dv_pad;
    k::gemm_tile<S>(dS, T, dO, w.dv_pad, 1, g.Vt.data() + k0, g.Vt.cols(), rows, w.d_v, kw, false);  // dP (rows, kw)
    for (index i = 0; i < rows; ++i) k::mul_shifted(dS + i * T, P + i * T, kw, g.D(q0 + i));   // dS = P (dP - D)
    k::gemm_tile<S>(dK, w.dk_pad, dS, 1, T, w.Qs.data() + q0 * w.dk_pad, w.dk_pad, kw, rows, w.dk_pad,
                    true);  // (kw, rows) (rows, dk_pad): dS^T Q / tau
    k::gemm_tile<S>(dQ + q0 * w.dk_pad, w.dk_pad, dS, T, 1, g.K.data() + k0 * w.dk_pad, w.dk_pad, rows, kw, w.dk_pad,
                    true);  // (rows, kw) (kw, dk_pad)
  }
  // (kw, N - q_first) (N - q_first, dv_pad); every tile's k0 < N
  k::gemm_tile<S>(dV, w.dv_pad, sc.P.data(), 1, T, g.dO.data() + q_first * w.dv_pad, w.dv_pad, kw, w.N - q_first,
                  w.dv_pad, false);
}

// simd_backward_tile over every key tile of head w on the OpenMP threads, each with its own dQ
// buffer and scratch of g (kept with g across calls); the threads' dQ summed into g.dQ[0].
template <class S>
void simd_backward_key_tiles(simd_head_grad<S>& g, const simd_head<S>& w, mask m) {
  const index n_tiles = w.n_pad / simd_tile;
  g.tiles.resize(g.dQ.size());
#pragma omp parallel if (simd_kernels::worth_threads(2 * simd_tile_flops<S>(std::span(&w, 1))))
  {
    const std::size_t id = std::size_t(simd_kernels::thread_id());
#pragma omp for schedule(dynamic, 1)
    for (index kt = 0; kt < n_tiles; ++kt) simd_backward_tile(g, g.dQ[id].data(), w, kt * simd_tile, m, g.tiles[id]);
  }
  for (std::size_t i = 1; i < g.dQ.size(); ++i) g.dQ[0] += g.dQ[i];
}

// Accumulates the gradients of one sequence into dU (N, p) and dW, head by head; O and lse of each
// head come from `forward` (validated) or, when it is null, from the fused forward.
template <class S>
void simd_backward_sequence(matrix<S>& dU, heads<S>& dW, simd_head<S>& w, simd_head_grad<S>& g,
                            const Eigen::Ref<const matrix<S>>& dMu, const Eigen::Ref<const matrix<S>>& U,
                            const heads<S>& heads, const attention_params& params,
                            const attention_output<S>* forward) {
  dU.setZero(U.rows(), U.cols());
  for (std::size_t h = 0; h < heads.size(); ++h) {
    simd_project(w, U, heads[h], params);
    if (forward) {
      w.lse = forward->lse[h];
      w.O.setZero(w.N, w.dv_pad);
      w.O.leftCols(w.d_v) = forward->head_outputs[h];  // (N, d_v)
    } else {
      simd_forward_tiles<S>(std::span(&w, 1), params.causal_mask);
    }
    simd_prepare_backward(g, w, dMu, heads[h]);
    simd_backward_key_tiles(g, w, params.causal_mask);
    g.dQ[0] /= w.tau;
    const auto dQ = g.dQ[0].leftCols(w.d_k);               // (N, d_k)
    const auto dK = g.dK.topLeftCorner(w.N, w.d_k);        // (N, d_k)
    const auto dV = g.dV.topLeftCorner(w.N, w.d_v);        // (N, d_v)
    dW[h].W_O.noalias() += dMu.transpose() * w.O.leftCols(w.d_v);  // (p, d_v)
    dW[h].W_Q.noalias() += dQ.transpose() * U;                      // (d_k, p)
    dW[h].W_K.noalias() += dK.transpose() * U;                      // (d_k, p)
    dW[h].W_V.noalias() += dV.transpose() * U;                      // (d_v, p)
    dU.noalias() += dQ * heads[h].W_Q;                                  // (N, p)
    dU.noalias() += dK * heads[h].W_K;
    dU.noalias() += dV * heads[h].W_V;
  }
}

}  // namespace detail

// Fused backward: dL/dU and dL/dW for the upstream gradient dMu (N, p). Validation as the reference.
template <class S>
void attention_backward(simd, attention_gradients<S>& grads, const_ref<S> dMu, const_ref<S> U, const heads<S>& heads,
                        const attention_params& params, attention_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_attention<S>(U, heads, params);
  detail::validate_upstream<S>(dMu, U, "dMu");
  grads.dW = detail::zero_like(heads);
  workspace.heads.resize(1);
  detail::simd_backward_sequence<S>(grads.dU, grads.dW, workspace.heads[0], workspace.grad, dMu, U, heads, params,
                                    nullptr);
}

template <class S>
void attention_backward(simd, attention_gradients<S>& grads, const_ref<S> dMu, const_ref<S> U, const heads<S>& heads,
                        const attention_params& params = {}) {
  attention_workspace<S> workspace;
  attention_backward<S>(simd{}, grads, dMu, U, heads, params, workspace);
}

// Fused backward that reuses the forward's output for the same U, heads and params (its lse and
// head_outputs, validated): no forward pass is recomputed.
template <class S>
void attention_backward(simd, attention_gradients<S>& grads, const_ref<S> dMu, const_ref<S> U, const heads<S>& heads,
                        const attention_output<S>& forward, const attention_params& params,
                        attention_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_attention<S>(U, heads, params);
  detail::validate_upstream<S>(dMu, U, "dMu");
  detail::validate_saved_forward<S>(forward, U, heads, params.causal_mask);
  grads.dW = detail::zero_like(heads);
  workspace.heads.resize(1);
  detail::simd_backward_sequence<S>(grads.dU, grads.dW, workspace.heads[0], workspace.grad, dMu, U, heads, params,
                                    &forward);
}

template <class S>
void attention_backward(simd, attention_gradients<S>& grads, const_ref<S> dMu, const_ref<S> U, const heads<S>& heads,
                        const attention_output<S>& forward, const attention_params& params = {}) {
  attention_workspace<S> workspace;
  attention_backward<S>(simd{}, grads, dMu, U, heads, forward, params, workspace);
}

// Batch backward: dMus[b] is the upstream gradient of sequence b; weight gradients are summed.
template <class S>
void attention_backward_batch(simd, attention_batch_gradients<S>& grads,
                              std::type_identity_t<std::span<const matrix<S>>> dMus,
                              std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads,
                              const attention_params& params, attention_workspace<S>& workspace) {
  detail::simd_require_scalar<S>();
  detail::validate_backward_batch<S>(dMus, Us, heads, params);
  grads.dU.resize(Us.size());
  grads.dW = detail::zero_like(heads);
  workspace.heads.resize(1);
  for (std::size_t b = 0; b < Us.size(); ++b)
    detail::simd_backward_sequence<S>(grads.dU[b], grads.dW, workspace.heads[0], workspace.grad, dMus[b], Us[b], heads,
                                      params, nullptr);
}

template <class S>
void attention_backward_batch(simd, attention_batch_gradients<S>& grads,
                              std::type_identity_t<std::span<const matrix<S>>> dMus,
                              std::type_identity_t<std::span<const matrix<S>>> Us, const heads<S>& heads,
                              const attention_params& params = {}) {
  attention_workspace<S> workspace;
  attention_backward_batch<S>(simd{}, grads, dMus, Us, heads, params, workspace);
}

}  // namespace suptok
