// suptok/simd/projected_backward.hpp: the penalty of an attention layer in the projected form and
// its gradients with respect to U and every weight and bias, fast path (float, double). Same
// gradients as barrier_penalty_backward(U, layer, ...) of barrier/penalty.hpp.
//
// L = weight sum_{counted t} b_t,  b_t = f(det B_t),  B_t = J in the projected form = I - K_t (n, n),
// weight = 1 / (number of counted tokens). Per token t:
//   dK_t = -weight db/dB_t = weight B_t^{-T}         on the -log branch of the policy
//        = -weight (the policy's block gradient)     otherwise (barrier/block.hpp, rare tokens)
// B_t is built from the forward's X^h_t R_t (simd/projected_forward.hpp) and factored by the
// recursive LU, which gives log|det B_t| as well (the forward's own LU pass is not run); its inverse
// comes from the factors (lu_inverse, 3/2 n^3 flops: with the LU about three times the forward's
// work per token, and what bounds this path). dK_t is reduced at once to each
// head's rows (detail::projected_rows_backward: dXR^h_t = dB P_h^T, dP_h += XR^T dB and the
// inclusive terms), so no (n, n) block outlives its token. What follows dK_t is the reference
// path's (detail::projected_head_backward of likelihood/projected_backward.hpp: the centred
// covariances, softmax, rotations and affine maps), O(N^2 d_v d_k) per head.
// Threads: the tokens in projected_backward_chunks fixed chunks; dP, dKO, dVO summed per chunk and
// the chunks added in order, so these sums do not depend on the thread count.
// Memory: the forward's (X^h_t R_t of every head, H N d_v d_k) plus dXR^h_t of the same size, the
// per-chunk product gradients (chunks x 3 n max(d_k, d_v)), four (n, n) blocks per thread and the
// reference passes' (N, N) weights of every head.
// Layers for which the general form is cheaper (choose_form) go to the reference path's general form.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "../likelihood/projected_backward.hpp"
#include "projected_forward.hpp"

namespace suptok {
namespace detail {

inline constexpr index projected_backward_chunks = 16;

// The chunk sums of the product gradients of every head, and their total.
template <class S>
using head_product_gradients = std::vector<projected_product_gradients<S>>;

template <class S>
head_product_gradients<S> zero_product_gradients(const simd_projected_pass<S>& ps) {
  head_product_gradients<S> dp;
  for (const projected_head_state<S>& st : ps.heads) dp.emplace_back(st.products);
  return dp;
}

// Per counted token t: B_t built and factored (sign and log|det| into ps.ld), and dL/dB_t =
// weight db/dB_t reduced per head into rg and dp. Infeasible tokens under the exact policy are
// left out here: the caller throws for them, outside the threads.
template <class S>
void simd_projected_block_gradients(std::vector<projected_row_gradients<S>>& rg, head_product_gradients<S>& dp,
                                    simd_projected_pass<S>& ps, const S& weight, const barrier_params& barrier,
                                    mask m) {
  const index N = ps.N, n = ps.n, first = first_nontrivial(m);
  const index chunks = std::min(projected_backward_chunks, N);
  ps.ld.assign(std::size_t(N), {});
  std::vector<head_product_gradients<S>> chunk_dp(std::size_t(chunks), zero_product_gradients(ps));
#pragma omp parallel if (chunks > 1 && simd_kernels::worth_threads(double(N) * double(n) * double(n) * double(n)))
  {
    matrix<S> B(n, n), LU(n, n), inverse(n, n), dK(n, n);
    std::vector<index> pivot;
#pragma omp for schedule(dynamic, 1)
    for (index c = 0; c < chunks; ++c)
      for (index t = std::max(first, c * N / chunks); t < (c + 1) * N / chunks; ++t) {
        build_projected_block(B, ps, t, m);
        LU = B;
        const signed_log_det<S> ld = recursive_lu_log_det<S>(LU, pivot);
        ps.ld[std::size_t(t)] = ld;
        if (on_log_branch(ld, barrier)) {
          lu_inverse<S>(LU, pivot, inverse);
          dK.noalias() = weight * inverse.transpose();  // b = -log det B: db/dK = B^{-T}
        } else if (barrier.policy == extension::exact) {
          continue;
        } else {
          dK = -weight * barrier_block_backward_unchecked<S>(B, ld, barrier, "U", token_name{t});
        }
        for (std::size_t h = 0; h < ps.heads.size(); ++h) {
          const projected_head_state<S>& st = ps.heads[h];
          const bool inclusive = m == mask::inclusive;
          projected_rows_backward<S>(
              rg[h], chunk_dp[std::size_t(c)][h], t, dK.middleRows(st.offset, st.d_v),
              Eigen::Map<const matrix<S>>(st.XR.data() + t * st.d_v * st.d_k, st.d_v, st.d_k), st.products,
              inclusive ? st.a_tt(t) : S(0), inclusive ? vector<S>(st.dv.row(t).transpose()) : vector<S>(),
              inclusive ? vector<S>(st.Qp.row(t).transpose()) : vector<S>());
        }
      }
  }
  for (const head_product_gradients<S>& c : chunk_dp)
    for (std::size_t h = 0; h < dp.size(); ++h) dp[h] += c[h];
}

template <class S>
barrier_gradients<S, layer_gradients<S>> simd_layer_penalty_backward(const Eigen::Ref<const matrix<S>>& U,
                                                                     const layer<S>& layer,
                                                                     const barrier_params& barrier,
                                                                     const attention_params& attention) {
  const index N = U.rows(), counted = counted_tokens(N, attention.causal_mask);
  if (counted == 0 || choose_form(N, layer) == jacobian_form::general)
    return sequence_penalty_backward<S>(U, layer, barrier, attention, jacobian_form::general);
  const mask m = attention.causal_mask;
  simd_projected_pass<S> ps;
  simd_projected_moments(ps, U, layer, attention);
  std::vector<projected_row_gradients<S>> rg;
  for (const projected_head_state<S>& st : ps.heads) rg.emplace_back(N, st.d_v, st.d_k, m);
  head_product_gradients<S> dp = zero_product_gradients(ps);
  simd_projected_block_gradients(rg, dp, ps, S(1) / S(counted), barrier, m);
  S sum = S(0);
  for (index t = first_nontrivial(m); t < N; ++t) {
    const signed_log_det<S>& ld = ps.ld[std::size_t(t)];
    if (barrier.policy == extension::exact && !on_log_branch(ld, barrier)) {  // the reference's error
      matrix<S> B;
      build_projected_block(B, ps, t, m);
      barrier_block_backward_unchecked<S>(B, ld, barrier, "U", token_name{t});
    }
    sum += token_barrier(ld, barrier, "U", t);
  }
  for (projected_head_state<S>& st : ps.heads) st.XR.resize(0, 0);  // the reference recomputes X^h_t centred
  const std::vector<layer_head_pass<S>> passes = layer_passes<S>(U, layer, attention);
  layer_gradients<S> grad{matrix<S>::Zero(N, U.cols()), zero_like(layer)};
  for (std::size_t h = 0; h < ps.heads.size(); ++h)
    projected_head_backward<S>(grad, rg[h], dp[h], U, layer, h, passes[h], ps.W, m,
                               [](index, const projected_head_moment<S>&) {});
  return {sum / S(counted), std::move(grad)};
}

}  // namespace detail

// The penalty of one sequence under a layer (mean of b_t over its non-trivial tokens) and its
// gradients with respect to U and every weight and bias, as barrier_penalty_backward(U, layer, ...)
// of barrier/penalty.hpp (those of b_V and b_O are zero).
template <class S>
barrier_gradients<S, layer_gradients<S>> barrier_penalty_backward(simd, const_ref<S> U, const layer<S>& layer,
                                                                  const barrier_params& barrier,
                                                                  const attention_params& attention = {}) {
  detail::simd_require_scalar<S>();
  detail::validate_barrier(barrier);
  detail::validate_layer_attention<S>(U, layer, attention, "U", "attention");
  return detail::simd_layer_penalty_backward<S>(U, layer, barrier, attention);
}

}  // namespace suptok
