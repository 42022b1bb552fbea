// suptok/cuda/attention_backward_plan.hpp: the arguments, their checks and the launch geometry of
// the CUDA attention backward (cuda/attention_backward.cuh), in plain C++ (no CUDA header), tested
// where no GPU or nvcc is.
//
// For the views of the forward (cuda/attention_plan.hpp: Q, K (BH, N, d_k), V, O (BH, N, d_v),
// lse (BH, N)) and the upstream gradient dO = dL/dO (BH, N, d_v), the kernels write
//   dQ (BH, N, d_k), dK (BH, N, d_k), dV (BH, N, d_v), in float whatever the storage of the inputs.
//
// Two kernels, so that every output row has exactly one writer (no atomics; the same bits on every
// run). The keys kernel: one block of cuda_attention_warps warps per (sequence-head, tile of
// cuda_key_tile keys), each warp 8 keys, walking the query tiles of cuda_query_tile queries (one per
// lane) from the first that sees the tile; dynamic shared memory, in float:
//   (cuda_key_tile (d_k + d_v) + cuda_query_tile ((d_k | 1) + (d_v | 1) + 2)) * 4 bytes
// The queries kernel: the forward's geometry (one block per (sequence-head, query tile), each warp
// 8 queries, key tiles of one key per lane):
//   (cuda_query_tile (d_k + d_v + 2) + cuda_key_tile ((d_k | 1) + (d_v | 1))) * 4 bytes
// The rows a lane reads whole (a query of the keys kernel, a key and value of the queries kernel)
// are padded to an odd stride, so that 32 lanes reading 32 rows hit 32 banks.
#pragma once

#include <algorithm>

#include "attention_plan.hpp"

namespace suptok::detail {

// The largest d_k and d_v of the backward: each lane keeps, for 8 rows, d / 32 accumulators of
// dK and of dV (the keys kernel), so 2 x 8 x 4 = 64 registers at d = 128.
inline constexpr index cuda_max_backward_dim = 128;

struct cuda_backward_launch {
  cuda_launch keys, queries;  // grid_y: key tiles / query tiles; value_chunks: max(d_k, d_v) / 32
};

inline cuda_backward_launch attention_backward_launch(index bh, index N, index d_k, index d_v) {
  cuda_backward_launch l;
  const index tiles = (N + cuda_query_tile - 1) / cuda_query_tile;  // cuda_key_tile == cuda_query_tile
  const index chunks = (std::max(d_k, d_v) + 31) / 32;
  for (cuda_launch* k : {&l.keys, &l.queries}) {
    k->grid_x = bh;
    k->grid_y = tiles;
    k->threads = int(32 * cuda_attention_warps);
    k->value_chunks = chunks <= 1 ? 1 : chunks <= 2 ? 2 : 4;
  }
  l.keys.shared_bytes =
      std::size_t(cuda_key_tile * (d_k + d_v) + cuda_query_tile * ((d_k | 1) + (d_v | 1) + 2)) * sizeof(float);
  l.queries.shared_bytes =
      std::size_t(cuda_query_tile * (d_k + d_v + 2) + cuda_key_tile * ((d_k | 1) + (d_v | 1))) * sizeof(float);
  return l;
}

// The checks of attention_backward(cuda, ...), before anything is launched: Q, K, V and params as
// the forward's (validate_attention_operands), d_k and d_v at most cuda_max_backward_dim, the
// extents of O, lse, dO, dQ, dK, dV in that order, the grid's limits, and outputs that overlap no
// input and not each other (the forward's conservative test). Device data is not read.
template <class T>
void validate_attention_core_backward(const batched_view<float>& dQ, const batched_view<float>& dK,
                                      const batched_view<float>& dV, const batched_view<const T>& dO,
                                      const batched_view<const T>& O, const batched_view<const float>& lse,
                                      const batched_view<const T>& Q, const batched_view<const T>& K,
                                      const batched_view<const T>& V, const attention_core_params& params) {
  validate_attention_operands(Q, K, V, params);
  const index bh = Q.batch, N = Q.rows, d_k = Q.cols, d_v = V.cols;
  require(d_k <= cuda_max_backward_dim, "Q", "the backward takes d_k <= ", cuda_max_backward_dim, ", got ", d_k);
  require(d_v <= cuda_max_backward_dim, "V", "the backward takes d_v <= ", cuda_max_backward_dim, ", got ", d_v);
  validate_batched(O, bh, N, d_v, "O");
  validate_batched(lse, bh, N, 1, "lse");
  validate_batched(dO, bh, N, d_v, "dO");
  validate_batched(dQ, bh, N, d_k, "dQ");
  validate_batched(dK, bh, N, d_k, "dK");
  validate_batched(dV, bh, N, d_v, "dV");
  validate_attention_sizes(bh, N, d_k, d_v);  // the backward's shared memory: at most 65 KiB (d = 128)
  const auto require_apart = [&](const batched_view<float>& out, const char* name) {
    require(!overlap(out, dO), name, "overlaps the input dO");
    require(!overlap(out, O), name, "overlaps the input O");
    require(!overlap(out, lse), name, "overlaps the input lse");
    require(!overlap(out, Q), name, "overlaps the input Q");
    require(!overlap(out, K), name, "overlaps the input K");
    require(!overlap(out, V), name, "overlaps the input V");
  };
  require_apart(dQ, "dQ");
  require_apart(dK, "dK");
  require_apart(dV, "dV");
  require(!overlap(dQ, dK), "dK", "overlaps the output dQ");
  require(!overlap(dQ, dV), "dV", "overlaps the output dQ");
  require(!overlap(dK, dV), "dV", "overlaps the output dK");
}

}  // namespace suptok::detail
