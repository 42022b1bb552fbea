// suptok/simd/projected_analysis.hpp: analyse(simd{}, U, layer, options), the per-token table of
// barrier/analysis.hpp on the fast path, in the projected form (docs/math.md sections 2.3 and 3).
//
// With W = [W_O[0] ... W_O[H-1]] (p, n), J_t = I_p - W Y_t and I_n - K_t = I_n - Y_t W, where the
// rows of query head h (group g) of Y_t (n, p) are
//   XR^h_t W_Q[h] / tau_h   [inclusive: + a_tt W_V[g] + a_tt dv_t q'_t^T W_K[g] / tau_h]
// (simd/projected_forward.hpp names XR, a_tt, dv and q'). The four operators of the iterations of
// barrier/singular_values.hpp, the inverse ones by Woodbury through the LU of I - K_t:
//   J x      = x - W (Y_t x)                 J^T x    = x - Y_t^T (W^T x)
//   J^{-1} x = x + W (I - K_t)^{-1} Y_t x     J^{-T} x = x + Y_t^T (I - K_t)^{-T} W^T x
// The vectors of the tokens of a tile iterate together as the rows of one (k, p) matrix, so W,
// W^T and, under the strict mask, the stacked W_Q apply as matrix products once per step for the
// whole tile; per token remain the products with XR^h_t (d_v, d_k) and, for sigma_min, two
// triangular solves with the LU of I - K_t kept from the determinant (simd/recursive_lu.hpp).
// Under the inclusive mask, where Y_t x would need three stacked products (W_Q, W_V, W_K), and
// when the LUs' memory allows fewer than 16 tokens per tile, each token's Y_t (n, p) is formed
// once and the tokens iterate one at a time instead. A stacked tile holds
// projected_tile_tokens(n) tokens (their LUs take at most 16 MiB); threads take whole tiles, and
// the tiles depend on N and n only, so the results do not change with the number of threads.
// margins = exact forms J_t = I - W Y_t and takes its SVD, as the reference path does. Layers for
// which the general form is chosen (or forced) are analysed by the reference path.
#pragma once

#include <algorithm>
#include <vector>

#include "../barrier/analysis.hpp"
#include "projected_forward.hpp"

namespace suptok {
namespace detail {

// The layer's projections stacked over query heads, shared by every Y_t.
template <class S>
struct projected_operators {
  matrix<S> WQ;                 // (n_k, p) rows of head h: W_Q[h] / tau_h
  matrix<S> WV, WK;             // inclusive: (n, p) rows of head h: W_V[g]; (n_k, p): W_K[g] / tau_h
  std::vector<index> k_offset;  // first row of head h in WQ and WK
};

template <class S>
projected_operators<S> projected_operators_of(const simd_projected_pass<S>& ps, const layer<S>& layer,
                                              const attention_params& attention) {
  const std::size_t H = layer.W_Q.size();
  const index p = ps.W.rows();
  const bool inclusive = attention.causal_mask == mask::inclusive;
  projected_operators<S> o;
  index n_k = 0;
  for (std::size_t h = 0; h < H; ++h) o.k_offset.push_back(n_k), n_k += layer.W_Q[h].rows();
  o.WQ.resize(n_k, p);
  if (inclusive) o.WV.resize(ps.n, p), o.WK.resize(n_k, p);
  for (std::size_t h = 0; h < H; ++h) {
    const S tau = layer_temperature(layer, h, attention);
    const index d_k = layer.W_Q[h].rows(), k0 = o.k_offset[h];
    o.WQ.middleRows(k0, d_k) = layer.W_Q[h] / tau;
    if (!inclusive) continue;
    const std::size_t g = layer.group_of(h);
    o.WV.middleRows(ps.heads[h].offset, ps.heads[h].d_v) = layer.W_V[g];
    o.WK.middleRows(k0, d_k) = layer.W_K[g] / tau;
  }
  return o;
}

template <class S>
Eigen::Map<const matrix<S>> head_XR(const projected_head_state<S>& st, index t) {
  return {st.XR.data() + t * st.d_v * st.d_k, st.d_v, st.d_k};
}

// Y <- Y_t (n, p): rows of head h XR^h_t W_Q[h] / tau_h [inclusive: + a_tt W_V[g]
// + a_tt dv_t (q'_t^T W_K[g] / tau_h)]; n d_k p multiply-adds.
template <class S>
void form_Y(matrix<S>& Y, const simd_projected_pass<S>& ps, const projected_operators<S>& o, index t) {
  const bool inclusive = o.WV.size() > 0;
  Y.resize(ps.n, o.WQ.cols());
  for (std::size_t h = 0; h < ps.heads.size(); ++h) {
    const projected_head_state<S>& st = ps.heads[h];
    const index k0 = o.k_offset[h];
    auto rows = Y.middleRows(st.offset, st.d_v);
    rows.noalias() = head_XR(st, t) * o.WQ.middleRows(k0, st.d_k);
    if (!inclusive || st.a_tt(t) == S(0)) continue;
    rows += st.a_tt(t) * o.WV.middleRows(st.offset, st.d_v);
    const Eigen::Matrix<S, 1, Eigen::Dynamic> r = st.Qp.row(t) * o.WK.middleRows(k0, st.d_k);  // (p)
    rows.noalias() += (st.a_tt(t) * st.dv.row(t).transpose()) * r;
  }
}

// Rows (Y_t x)^T (k, n) for the rows x of X (k, p), row j of token token[j]: by the formed Y_t
// (Y[j], when given), else through the stacked projections.
template <class S>
matrix<S> apply_Y(const simd_projected_pass<S>& ps, const projected_operators<S>& o, const std::vector<index>& token,
                  const matrix<S>& X, const std::vector<const matrix<S>*>& Y = {}) {
  if (!Y.empty()) {
    matrix<S> out(X.rows(), ps.n);
    for (index j = 0; j < X.rows(); ++j) out.row(j).noalias() = X.row(j) * Y[std::size_t(j)]->transpose();
    return out;
  }
  const bool inclusive = o.WV.size() > 0;
  const matrix<S> Qx = X * o.WQ.transpose();  // (k, n_k)
  matrix<S> Vx, Kx;
  if (inclusive) Vx.noalias() = X * o.WV.transpose(), Kx.noalias() = X * o.WK.transpose();
  matrix<S> out(X.rows(), ps.n);
  for (index j = 0; j < X.rows(); ++j) {
    const index t = token[std::size_t(j)];
    for (std::size_t h = 0; h < ps.heads.size(); ++h) {
      const projected_head_state<S>& st = ps.heads[h];
      const index k0 = o.k_offset[h];
      auto y = out.row(j).segment(st.offset, st.d_v);
      y.noalias() = Qx.row(j).segment(k0, st.d_k) * head_XR(st, t).transpose();
      if (!inclusive || st.a_tt(t) == S(0)) continue;
      y += st.a_tt(t) * (Vx.row(j).segment(st.offset, st.d_v) + st.Qp.row(t).dot(Kx.row(j).segment(k0, st.d_k)) *
                                                                    st.dv.row(t));
    }
  }
  return out;
}

// Rows (Y_t^T z)^T (k, p) for the rows z of Z (k, n), row j of token token[j].
template <class S>
matrix<S> apply_Y_transposed(const simd_projected_pass<S>& ps, const projected_operators<S>& o,
                             const std::vector<index>& token, const matrix<S>& Z,
                             const std::vector<const matrix<S>*>& Y = {}) {
  if (!Y.empty()) {
    matrix<S> out(Z.rows(), o.WQ.cols());
    for (index j = 0; j < Z.rows(); ++j) out.row(j).noalias() = Z.row(j) * *Y[std::size_t(j)];
    return out;
  }
  const bool inclusive = o.WV.size() > 0;
  matrix<S> R(Z.rows(), o.WQ.rows()), Zv, Rk;  // R: rows (XR^h_t^T z_h), stacked over heads
  if (inclusive) Zv.setZero(Z.rows(), ps.n), Rk.setZero(Z.rows(), o.WQ.rows());
  for (index j = 0; j < Z.rows(); ++j) {
    const index t = token[std::size_t(j)];
    for (std::size_t h = 0; h < ps.heads.size(); ++h) {
      const projected_head_state<S>& st = ps.heads[h];
      const index k0 = o.k_offset[h];
      const auto z = Z.row(j).segment(st.offset, st.d_v);
      R.row(j).segment(k0, st.d_k).noalias() = z * head_XR(st, t);
      if (!inclusive || st.a_tt(t) == S(0)) continue;
      Zv.row(j).segment(st.offset, st.d_v) = st.a_tt(t) * z;
      Rk.row(j).segment(k0, st.d_k) = (st.a_tt(t) * st.dv.row(t).dot(z)) * st.Qp.row(t);
    }
  }
  matrix<S> out = R * o.WQ;
  if (inclusive) out.noalias() += Zv * o.WV + Rk * o.WK;
  return out;
}

// Tokens per tile: their (n, n) LUs take at most 16 MiB, and at most 16 tokens.
template <class S>
index projected_tile_tokens(index n) {
  const double budget = 16.0 * 1024 * 1024, block = double(n) * double(n) * double(sizeof(S));
  return std::clamp(index(budget / block), index(1), index(16));
}

// The factored blocks I - K_t of the tokens [first, first + size) of a tile.
template <class S>
struct projected_tile {
  index first = 0, size = 0;
  std::vector<matrix<S>> lu;            // P (I - K_t) = L U in place (recursive_lu)
  std::vector<std::vector<index>> pivot;
  std::vector<signed_log_det<S>> ld;
  std::vector<matrix<S>> Y;             // Y_t (n, p) formed once per token, when the tile does (below)
};

// sigma_min and sigma_max of J_t for every token of the tile.
template <class S>
void projected_tile_margins(std::vector<extreme_singular_values<S>>& sv, const projected_tile<S>& tile,
                            const simd_projected_pass<S>& ps, const projected_operators<S>& o,
                            const analysis_options& options) {
  const index p = ps.W.rows();
  const matrix<S>& W = ps.W;
  if (options.margins == margin_method::exact) {
    using dense = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
    matrix<S> Y;
    for (index i = 0; i < tile.size; ++i) {
      const index t = tile.first + i;
      form_Y(Y, ps, o, t);
      const dense J = matrix<S>(matrix<S>::Identity(p, p) - W * Y);
      const vector<S> s = Eigen::BDCSVD<dense>(J).singularValues();
      sv[std::size_t(t)] = {s(p - 1), s(0)};
    }
    return;
  }
  // Batch operator j of a tile-local list `local` is token tile.first + local[j].
  const auto tokens_of = [&](const std::vector<index>& local, const std::vector<index>& active) {
    std::vector<index> t(active.size());
    for (std::size_t j = 0; j < active.size(); ++j) t[j] = tile.first + local[std::size_t(active[j])];
    return t;
  };
  const auto formed_Y = [&](const std::vector<index>& local, const std::vector<index>& active) {
    std::vector<const matrix<S>*> Y;
    if (tile.Y.empty()) return Y;
    for (index a : active) Y.push_back(&tile.Y[std::size_t(local[std::size_t(a)])]);
    return Y;
  };
  std::vector<index> all(std::size_t(tile.size)), nonsingular;
  for (index i = 0; i < tile.size; ++i) {
    all[std::size_t(i)] = i;
    if (tile.ld[std::size_t(i)].sign != 0) nonsingular.push_back(i);
  }
  const std::vector<S> largest = power_iteration_batch<S>(
      p, tile.size,
      [&](const std::vector<index>& a, const matrix<S>& X) -> matrix<S> {  // J x
        matrix<S> Z = X;
        Z.noalias() -= apply_Y(ps, o, tokens_of(all, a), X, formed_Y(all, a)) * W.transpose();
        return Z;
      },
      [&](const std::vector<index>& a, const matrix<S>& X) -> matrix<S> {  // J^T x
        return X - apply_Y_transposed(ps, o, tokens_of(all, a), matrix<S>(X * W), formed_Y(all, a));
      },
      options.iteration);
  const std::vector<S> inverse_norm = power_iteration_batch<S>(
      p, index(nonsingular.size()),
      [&](const std::vector<index>& a, const matrix<S>& X) -> matrix<S> {  // J^{-1} x
        matrix<S> V = apply_Y(ps, o, tokens_of(nonsingular, a), X, formed_Y(nonsingular, a));
        for (std::size_t j = 0; j < a.size(); ++j) {
          const std::size_t i = std::size_t(nonsingular[std::size_t(a[j])]);
          lu_solve_row<S>(tile.lu[i], tile.pivot[i], V.row(index(j)));
        }
        matrix<S> Z = X;
        Z.noalias() += V * W.transpose();
        return Z;
      },
      [&](const std::vector<index>& a, const matrix<S>& X) -> matrix<S> {  // J^{-T} x
        matrix<S> V = X * W;
        for (std::size_t j = 0; j < a.size(); ++j) {
          const std::size_t i = std::size_t(nonsingular[std::size_t(a[j])]);
          lu_solve_transposed_row<S>(tile.lu[i], tile.pivot[i], V.row(index(j)));
        }
        return X + apply_Y_transposed(ps, o, tokens_of(nonsingular, a), V, formed_Y(nonsingular, a));
      },
      options.iteration);
  for (index i = 0; i < tile.size; ++i) sv[std::size_t(tile.first + i)] = {S(0), largest[std::size_t(i)]};
  for (std::size_t j = 0; j < nonsingular.size(); ++j)
    sv[std::size_t(tile.first + nonsingular[j])].min = sigma_min_of_inverse_norm<S>(inverse_norm[j]);
}

// The rows of every token into r.tokens: blocks, LUs and margins per tile, threads over tiles.
template <class S>
void simd_projected_analysis(analysis<S>& r, const Eigen::Ref<const matrix<S>>& U, const layer<S>& layer,
                             const analysis_options& options) {
  const mask m = options.attention.causal_mask;
  simd_projected_pass<S> ps;
  simd_projected_moments(ps, U, layer, options.attention);
  const projected_operators<S> o = projected_operators_of(ps, layer, options.attention);
  // The stacked projections pay off when a step shares them over a full tile: under the strict
  // mask (one (n_k, p) product per step) with 16 tokens per tile. Under the inclusive mask (three
  // products per step) or with smaller tiles, each token's Y_t is formed once (n d_k p) and the
  // tokens iterate one at a time, which keeps Y_t and the LU in cache (docs/performance.md).
  const index stacked_tile = projected_tile_tokens<S>(ps.n);
  const bool form_Y_per_token = options.margins == margin_method::estimate && (m == mask::inclusive || stacked_tile < 16);
  const index N = ps.N, n = ps.n, per_tile = form_Y_per_token ? 1 : stacked_tile, tiles = (N + per_tile - 1) / per_tile;
  std::vector<signed_log_det<S>> ld(static_cast<std::size_t>(N));
  std::vector<extreme_singular_values<S>> sv(static_cast<std::size_t>(N));
#pragma omp parallel if (tiles > 1 && simd_kernels::worth_threads(double(n) * double(n) * double(n)))
  {
    projected_tile<S> tile;
    tile.lu.resize(std::size_t(per_tile));
    tile.pivot.resize(std::size_t(per_tile));
#pragma omp for schedule(dynamic, 1)
    for (index k = 0; k < tiles; ++k) {
      tile.first = k * per_tile;
      tile.size = std::min(per_tile, N - tile.first);
      tile.ld.resize(std::size_t(tile.size));
      for (index i = 0; i < tile.size; ++i) {
        build_projected_block(tile.lu[std::size_t(i)], ps, tile.first + i, m);
        tile.ld[std::size_t(i)] = recursive_lu_log_det<S>(tile.lu[std::size_t(i)], tile.pivot[std::size_t(i)]);
        ld[std::size_t(tile.first + i)] = tile.ld[std::size_t(i)];
      }
      tile.Y.resize(form_Y_per_token ? std::size_t(tile.size) : 0);
      for (index i = 0; i < index(tile.Y.size()); ++i) form_Y(tile.Y[std::size_t(i)], ps, o, tile.first + i);
      projected_tile_margins(sv, tile, ps, o, options);
    }
  }
  for (index t = 0; t < N; ++t) {  // outside the threads: both checks may throw
    require_finite_log_det(ld[std::size_t(t)], "U", t);
    r.tokens.push_back(token_row<S>(t, ld[std::size_t(t)], sv[std::size_t(t)], options.barrier));
  }
}

}  // namespace detail

// analyse(U, layer, options) of barrier/analysis.hpp on the fast path (float, double): the same
// table and totals; margins by the batched iterations above (or the exact SVD when asked).
template <class S>
analysis<S> analyse(simd, const_ref<S> U, const layer<S>& layer, const analysis_options& options = {}) {
  detail::simd_require_scalar<S>();
  return detail::analyse_with<S>(U, layer, options, detail::simd_projected_analysis<S>);
}

// The same for a plain head stack.
template <class S>
analysis<S> analyse(simd, const_ref<S> U, const heads<S>& heads, const analysis_options& options = {}) {
  detail::validate_attention<S>(U, heads, options.attention, "U", "options.attention");
  return analyse<S>(simd{}, U, as_layer(heads), options);
}

}  // namespace suptok
