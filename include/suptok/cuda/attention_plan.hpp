// suptok/cuda/attention_plan.hpp: the arguments, their checks and the launch geometry of the CUDA
// attention kernels, in plain C++ (no CUDA header), so that they are tested where no GPU or nvcc is.
//
// The kernels take the per-head projections already made (docs/math.md section 1, one head):
//   Q (BH, N, d_k)   K (BH, N, d_k)   V (BH, N, d_v)        BH = batch x heads, any strides
//   O_t = sum_{s in P(t)} a_ts V_s,  a_ts = exp(Q_t . K_s / tau - lse_t),
//   lse_t = log sum_{s in P(t)} exp(Q_t . K_s / tau)        O (BH, N, d_v), lse (BH, N)
// A token with an empty past (t = 0 under the strict mask) gets O_t = 0 and lse_t = -inf.
//
// Launch geometry of the forward kernel (cuda/attention_forward.cuh): one block of
// cuda_attention_warps warps per (sequence-head, tile of cuda_query_tile queries); each warp owns
// cuda_query_tile / cuda_attention_warps query rows and walks the key tiles of cuda_key_tile keys
// (one key per lane) up to the block's last key. Dynamic shared memory holds the block's queries
// and one key and value tile in float:
//   (cuda_query_tile d_k + cuda_key_tile (d_k | 1) + cuda_key_tile d_v) * 4 bytes
// (the key rows padded to an odd stride, so that 32 lanes reading 32 different keys hit 32 banks).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "../attention/mask.hpp"
#include "../core/config.hpp"
#include "../core/error.hpp"

namespace suptok {

// A strided stack of matrices, in device memory for the CUDA backend: element (b, r, c) is
// data[b * batch_stride + r * row_stride + c].
template <class T>
struct batched_view {
  T* data = nullptr;
  index batch = 0, rows = 0, cols = 0;
  index batch_stride = 0, row_stride = 0;

  SUPTOK_HD T* row(index b, index r) const { return data + b * batch_stride + r * row_stride; }
};

// The parameters of the attention kernels: the mask and the temperature tau (0: sqrt(d_k)).
struct attention_core_params {
  mask causal_mask = mask::strict;
  double temperature = 0;
};

namespace detail {

inline constexpr index cuda_query_tile = 32;
inline constexpr index cuda_key_tile = 32;
inline constexpr index cuda_attention_warps = 4;
// The largest d_v: each lane keeps cuda_query_tile / cuda_attention_warps rows of d_v / 32
// running outputs in registers (64 floats at d_v = 256).
inline constexpr index cuda_max_value_dim = 256;

struct cuda_launch {
  std::int64_t grid_x = 0, grid_y = 0;  // sequence-heads, query tiles
  int threads = 0;
  std::size_t shared_bytes = 0;
  int value_chunks = 0;  // d_v / 32 rounded up to 1, 2, 4 or 8: the kernel instance launched
};

inline cuda_launch attention_forward_launch(index bh, index N, index d_k, index d_v) {
  cuda_launch l;
  l.grid_x = bh;
  l.grid_y = (N + cuda_query_tile - 1) / cuda_query_tile;
  l.threads = int(32 * cuda_attention_warps);
  const index key_stride = d_k | 1;
  l.shared_bytes = std::size_t(cuda_query_tile * d_k + cuda_key_tile * key_stride + cuda_key_tile * d_v) * sizeof(float);
  const index chunks = (d_v + 31) / 32;
  l.value_chunks = chunks <= 1 ? 1 : chunks <= 2 ? 2 : chunks <= 4 ? 4 : 8;
  return l;
}

// The tensor-core kernel (cuda/attention_forward_mma.cuh): one block of cuda_attention_warps warps
// per (sequence-head, tile of cuda_mma_tile queries), each warp 16 query rows, key tiles of
// cuda_mma_tile keys. Dynamic shared memory holds two stages (cp.async double buffering) of one
// key and one value tile in the 2-byte storage type, rows padded by 8 elements (16 bytes):
//   2 stages x 2 tiles x cuda_mma_tile x (d + 8) x 2 bytes        (69 632 bytes at d = 128)
inline constexpr index cuda_mma_tile = 64;

inline cuda_launch attention_forward_mma_launch(index bh, index N, index d) {
  cuda_launch l;
  l.grid_x = bh;
  l.grid_y = (N + cuda_mma_tile - 1) / cuda_mma_tile;
  l.threads = int(32 * cuda_attention_warps);
  l.shared_bytes = std::size_t(2 * 2 * cuda_mma_tile * (d + 8)) * 2;
  l.value_chunks = 0;  // unused: the kernel is instantiated per d
  return l;
}

// Whether the view's rows all start on 16 bytes: a 16-byte aligned pointer, and row and batch
// strides (the latter when there is more than one matrix) of multiples of 8 two-byte elements.
template <class T>
bool rows_16_byte_aligned(const batched_view<T>& v) {
  return reinterpret_cast<std::uintptr_t>(v.data) % 16 == 0 && v.row_stride % 8 == 0 &&
         (v.batch == 1 || v.batch_stride % 8 == 0);
}

// The dispatch rule of attention_forward(cuda, ...), for arguments that passed
// validate_attention_core: the tensor-core kernel when the storage T is a 2-byte type (bf16 or
// fp16, the only 2-byte types the kernels take), d_k == d_v in {64, 128}, and every row of Q, K,
// V and O starts on 16 bytes (the kernel copies 16-byte pieces of K and V); the scalar kernel
// otherwise.
template <class T>
bool attention_uses_mma(const batched_view<T>& O, const batched_view<const T>& Q, const batched_view<const T>& K,
                        const batched_view<const T>& V) {
  return sizeof(T) == 2 && Q.cols == V.cols && (Q.cols == 64 || Q.cols == 128) && rows_16_byte_aligned(O) &&
         rows_16_byte_aligned(Q) && rows_16_byte_aligned(K) && rows_16_byte_aligned(V);
}

// The byte range [first, last) that a view's elements span; empty views span nothing.
template <class T>
std::pair<std::uintptr_t, std::uintptr_t> byte_span(const batched_view<T>& v) {
  if (v.batch == 0 || v.rows == 0 || v.cols == 0) return {0, 0};
  const auto first = reinterpret_cast<std::uintptr_t>(v.data);
  const index last_element = (v.batch - 1) * v.batch_stride + (v.rows - 1) * v.row_stride + v.cols;
  return {first, first + std::uintptr_t(last_element) * sizeof(T)};
}

template <class A, class B>
bool overlap(const batched_view<A>& a, const batched_view<B>& b) {
  const auto [a0, a1] = byte_span(a);
  const auto [b0, b1] = byte_span(b);
  return a0 < b1 && b0 < a1;
}

// A view's own consistency: a pointer when it has elements, unit-stride rows that do not overlap,
// matrices that do not overlap, and the expected extents.
template <class T>
void validate_batched(const batched_view<T>& v, index batch, index rows, index cols, const char* name) {
  require(v.batch == batch && v.rows == rows && v.cols == cols, name, "expected ", batch, " x ", rows, " x ", cols,
          ", got ", v.batch, " x ", v.rows, " x ", v.cols);
  require(v.data != nullptr, name, "null data pointer");
  require(v.row_stride >= v.cols, name, "row_stride ", v.row_stride, " is less than cols ", v.cols);
  require(v.batch == 1 || v.batch_stride >= v.rows * v.row_stride, name, "batch_stride ", v.batch_stride,
          " is less than rows x row_stride = ", v.rows * v.row_stride);
}

// The checks of params and the inputs Q, K, V that the forward and the backward share: the
// parameters, then the shapes and strides of Q, K, V.
template <class T>
void validate_attention_operands(const batched_view<const T>& Q, const batched_view<const T>& K,
                                 const batched_view<const T>& V, const attention_core_params& params) {
  require(params.causal_mask == mask::strict || params.causal_mask == mask::inclusive, "params.causal_mask",
          "unknown mask value");
  require(std::isfinite(params.temperature) && params.temperature >= 0, "params.temperature",
          "must be finite and positive (or 0 for sqrt(d_k)), got ", params.temperature);
  require(Q.batch > 0 && Q.rows > 0 && Q.cols > 0, "Q", "empty: ", Q.batch, " x ", Q.rows, " x ", Q.cols);
  const index bh = Q.batch, N = Q.rows, d_k = Q.cols;
  require(V.cols > 0 && V.cols <= cuda_max_value_dim, "V", "d_v must be in [1, ", cuda_max_value_dim, "], got ",
          V.cols);
  const index d_v = V.cols;
  validate_batched(Q, bh, N, d_k, "Q");
  validate_batched(K, bh, N, d_k, "K");
  validate_batched(V, bh, N, d_v, "V");
}

// The grid's limits (sequence-heads, query tiles) and the forward's shared memory, named `Q`.
inline void validate_attention_sizes(index bh, index N, index d_k, index d_v) {
  require(bh <= 2147483647, "Q", "at most 2^31 - 1 sequence-heads, got ", bh);
  require(N <= 65535 * cuda_query_tile, "Q", "at most ", 65535 * cuda_query_tile, " tokens, got ", N);
  require(attention_forward_launch(bh, N, d_k, d_v).shared_bytes <= 227 * 1024, "Q",
          "d_k = ", d_k, " and d_v = ", d_v, " need more than the 227 KiB of shared memory of a block");
}

// The checks of attention_forward(cuda, ...), before anything is launched: shapes, strides, sizes,
// parameters, and outputs whose address ranges overlap no input's and not each other's (a
// conservative test: interleaved but disjoint views are refused as well). Device data is not
// read: a non-finite input gives non-finite outputs in the rows it reaches (docs/cuda.md).
template <class T>
void validate_attention_core(const batched_view<T>& O, const batched_view<float>& lse, const batched_view<const T>& Q,
                             const batched_view<const T>& K, const batched_view<const T>& V,
                             const attention_core_params& params) {
  validate_attention_operands(Q, K, V, params);
  validate_batched(O, Q.batch, Q.rows, V.cols, "O");
  validate_batched(lse, Q.batch, Q.rows, 1, "lse");
  validate_attention_sizes(Q.batch, Q.rows, Q.cols, V.cols);
  const auto require_apart_from_outputs = [&](const batched_view<const T>& in, const char* name) {
    require(!overlap(O, in), "O", "overlaps the input ", name);
    require(!overlap(lse, in), "lse", "overlaps the input ", name);
  };
  require_apart_from_outputs(Q, "Q");
  require_apart_from_outputs(K, "K");
  require_apart_from_outputs(V, "V");
  require(!overlap(O, lse), "lse", "overlaps the output O");
}

}  // namespace detail
}  // namespace suptok
