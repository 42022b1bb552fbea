// The host side of the CUDA kernels, without a GPU: the attention's launch geometry and shared
// memory (cuda/attention_plan.hpp, cuda/attention_backward_plan.hpp), the barrier's workspace layout
// (cuda/barrier_plan.hpp), and every argument check of attention_forward(cuda, ...),
// attention_backward(cuda, ...), barrier_per_token(cuda, ...) and barrier_backward(cuda, ...), each
// with the argument it must name.
#include <suptok/cuda/attention_backward_plan.hpp>
#include <suptok/cuda/barrier_plan.hpp>

#include <catch2/catch.hpp>

#include "thrown.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace suptok {  // inside the namespace: `index` would clash with ::index of <strings.h>

namespace {

// Host buffers standing in for device memory: the checks read pointers and extents only.
struct core_problem {
  index bh, N, d_k, d_v;
  std::vector<float> q, k, v, o, l;
  core_problem(index bh_, index N_, index d_k_, index d_v_)
      : bh(bh_), N(N_), d_k(d_k_), d_v(d_v_), q(bh * N * d_k), k(bh * N * d_k), v(bh * N * d_v), o(bh * N * d_v),
        l(bh * N) {}
  batched_view<const float> Q() const { return {q.data(), bh, N, d_k, N * d_k, d_k}; }
  batched_view<const float> K() const { return {k.data(), bh, N, d_k, N * d_k, d_k}; }
  batched_view<const float> V() const { return {v.data(), bh, N, d_v, N * d_v, d_v}; }
  batched_view<float> O() { return {o.data(), bh, N, d_v, N * d_v, d_v}; }
  batched_view<float> lse() { return {l.data(), bh, N, 1, N, 1}; }
};

template <class F>
std::string named_by(F&& f) {
  return test::thrown_by(f).argument;
}

}  // namespace

TEST_CASE("cuda attention launch: one block per sequence-head and query tile, shared memory of the tiles",
          "[cuda][plan]") {
  const detail::cuda_launch l = detail::attention_forward_launch(6, 65, 64, 33);
  CHECK(l.grid_x == 6);
  CHECK(l.grid_y == 3);  // 65 queries: tiles of 32, 32 and 1
  CHECK(l.threads == 128);
  // 32 query rows of 64, 32 key rows of stride 65 (odd), 32 value rows of 33, in floats.
  CHECK(l.shared_bytes == (32 * 64 + 32 * 65 + 32 * 33) * 4);
  CHECK(l.value_chunks == 2);
  CHECK(detail::attention_forward_launch(1, 1, 1, 1).value_chunks == 1);
  CHECK(detail::attention_forward_launch(1, 1, 1, 65).value_chunks == 4);
  CHECK(detail::attention_forward_launch(1, 1, 1, 129).value_chunks == 8);
  CHECK(detail::attention_forward_launch(1, 1, 1, 256).value_chunks == 8);
  CHECK(detail::attention_forward_launch(1, 32, 8, 8).grid_y == 1);
  CHECK(detail::attention_forward_launch(1, 33, 8, 8).grid_y == 2);
}

TEST_CASE("cuda attention dispatch: the tensor-core kernel for 2-byte storage, d in {64, 128}, rows on 16 bytes",
          "[cuda][plan]") {
  // std::uint16_t stands for bf16 and fp16 (the rule reads sizeof(T) only); 16-byte aligned buffers.
  using half_like = std::uint16_t;
  const index bh = 2, N = 65, d = 128;
  alignas(16) static half_like q[bh * N * (d + 8) + 8], k[bh * N * (d + 8) + 8], v[bh * N * (d + 8) + 8],
      o[bh * N * (d + 8) + 8];
  const auto view = [&](half_like* data, index cols, index row_stride, index batch_stride) {
    return batched_view<half_like>{data, bh, N, cols, batch_stride, row_stride};
  };
  const auto in = [&](half_like* data, index cols, index row_stride, index batch_stride) {
    return batched_view<const half_like>{data, bh, N, cols, batch_stride, row_stride};
  };
  const auto uses_mma = [&](index d_k, index d_v, index row_stride, index batch_stride) {
    return detail::attention_uses_mma(view(o, d_v, row_stride, batch_stride), in(q, d_k, row_stride, batch_stride),
                                      in(k, d_k, row_stride, batch_stride), in(v, d_v, row_stride, batch_stride));
  };
  CHECK(uses_mma(128, 128, 128, N * 128));
  CHECK(uses_mma(64, 64, 64, N * 64));
  CHECK(uses_mma(128, 128, 136, N * 136 + 8));  // padded, still multiples of 8 elements
  CHECK_FALSE(uses_mma(64, 128, 128, N * 128));  // d_k != d_v
  CHECK_FALSE(uses_mma(96, 96, 96, N * 96));     // d not 64 or 128
  CHECK_FALSE(uses_mma(32, 32, 32, N * 32));
  CHECK_FALSE(uses_mma(128, 128, 131, N * 131));  // row stride off 16 bytes
  CHECK_FALSE(uses_mma(128, 128, 128, N * 128 + 4));  // batch stride off 16 bytes
  // A single matrix: its batch stride is never used.
  CHECK(detail::attention_uses_mma(batched_view<half_like>{o, 1, N, d, 3, d},
                                   batched_view<const half_like>{q, 1, N, d, 3, d},
                                   batched_view<const half_like>{k, 1, N, d, 3, d},
                                   batched_view<const half_like>{v, 1, N, d, 3, d}));
  // One view's pointer off 16 bytes.
  CHECK_FALSE(detail::attention_uses_mma(view(o, d, d, N * d), in(q, d, d, N * d), in(k + 4, d, d, N * d),
                                         in(v, d, d, N * d)));
  // float storage: the scalar kernel.
  core_problem pf(2, 65, 64, 64);
  CHECK_FALSE(detail::attention_uses_mma(pf.O(), pf.Q(), pf.K(), pf.V()));

  const detail::cuda_launch l = detail::attention_forward_mma_launch(6, 129, 128);
  CHECK(l.grid_x == 6);
  CHECK(l.grid_y == 3);  // 129 queries: tiles of 64, 64 and 1
  CHECK(l.threads == 128);
  CHECK(l.shared_bytes == 2 * 2 * 64 * 136 * 2);  // two stages of a K and a V tile, rows of d + 8
}

TEST_CASE("cuda attention forward: every argument check names its argument", "[cuda][plan][errors]") {
  core_problem pb(2, 5, 4, 3);
  const attention_core_params ok{};
  CHECK(named_by([&] { detail::validate_attention_core(pb.O(), pb.lse(), pb.Q(), pb.K(), pb.V(), ok); }) ==
        "<no error>");

  SECTION("parameters") {
    CHECK(named_by([&] {
            detail::validate_attention_core(pb.O(), pb.lse(), pb.Q(), pb.K(), pb.V(), {mask(7), 0});
          }) == "params.causal_mask");
    CHECK(named_by([&] {
            detail::validate_attention_core(pb.O(), pb.lse(), pb.Q(), pb.K(), pb.V(), {mask::strict, -1});
          }) == "params.temperature");
  }
  SECTION("shapes") {
    auto K = pb.K();
    K.rows = 4;
    CHECK(named_by([&] { detail::validate_attention_core(pb.O(), pb.lse(), pb.Q(), K, pb.V(), ok); }) == "K");
    auto O = pb.O();
    O.cols = 4;
    CHECK(named_by([&] { detail::validate_attention_core(O, pb.lse(), pb.Q(), pb.K(), pb.V(), ok); }) == "O");
    auto lse = pb.lse();
    lse.batch = 1;
    CHECK(named_by([&] { detail::validate_attention_core(pb.O(), lse, pb.Q(), pb.K(), pb.V(), ok); }) == "lse");
    auto Q = pb.Q();
    Q.rows = 0;
    CHECK(named_by([&] { detail::validate_attention_core(pb.O(), pb.lse(), Q, pb.K(), pb.V(), ok); }) == "Q");
  }
  SECTION("pointers and strides") {
    auto V = pb.V();
    V.data = nullptr;
    CHECK(named_by([&] { detail::validate_attention_core(pb.O(), pb.lse(), pb.Q(), pb.K(), V, ok); }) == "V");
    auto Q = pb.Q();
    Q.row_stride = 3;
    CHECK(named_by([&] { detail::validate_attention_core(pb.O(), pb.lse(), Q, pb.K(), pb.V(), ok); }) == "Q");
    auto K = pb.K();
    K.batch_stride = 4 * 5 - 1;
    CHECK(named_by([&] { detail::validate_attention_core(pb.O(), pb.lse(), pb.Q(), K, pb.V(), ok); }) == "K");
  }
  SECTION("value width and shared memory") {
    core_problem wide(1, 3, 4, 257);
    CHECK(named_by([&] {
            detail::validate_attention_core(wide.O(), wide.lse(), wide.Q(), wide.K(), wide.V(), ok);
          }) == "V");
    // d_k = 2000: 32 (2000 + 2001) + 32 d_v floats exceed 227 KiB.
    core_problem deep(1, 3, 2000, 8);
    const test::thrown t = test::thrown_by([&] {
      detail::validate_attention_core(deep.O(), deep.lse(), deep.Q(), deep.K(), deep.V(), ok);
    });
    CHECK(t.argument == "Q");
    CHECK(t.contains("shared memory"));
  }
  SECTION("outputs that overlap an input or each other") {
    // O written over V (same extents, same memory).
    batched_view<float> O{pb.v.data(), 2, 5, 3, 15, 3};
    CHECK(named_by([&] { detail::validate_attention_core(O, pb.lse(), pb.Q(), pb.K(), pb.V(), ok); }) == "O");
    // lse inside Q's last matrix.
    batched_view<float> lse{pb.q.data() + 20, 2, 5, 1, 5, 1};
    CHECK(named_by([&] { detail::validate_attention_core(pb.O(), lse, pb.Q(), pb.K(), pb.V(), ok); }) == "lse");
    // lse inside O.
    batched_view<float> lse_in_o{pb.o.data() + 1, 2, 5, 1, 5, 1};
    CHECK(named_by([&] { detail::validate_attention_core(pb.O(), lse_in_o, pb.Q(), pb.K(), pb.V(), ok); }) == "lse");
    // Interleaved but disjoint is fine: O in the first half of each row of a wider buffer, lse apart.
    std::vector<float> wide_o(2 * 5 * 6);
    batched_view<float> O_strided{wide_o.data(), 2, 5, 3, 30, 6};
    CHECK(named_by([&] { detail::validate_attention_core(O_strided, pb.lse(), pb.Q(), pb.K(), pb.V(), ok); }) ==
          "<no error>");
  }
}

TEST_CASE("cuda attention backward launch: a keys and a queries kernel per sequence-head and tile", "[cuda][plan]") {
  const detail::cuda_backward_launch l = detail::attention_backward_launch(6, 65, 64, 33);
  for (const detail::cuda_launch* k : {&l.keys, &l.queries}) {
    CHECK(k->grid_x == 6);
    CHECK(k->grid_y == 3);  // 65 keys or queries: tiles of 32, 32 and 1
    CHECK(k->threads == 128);
    CHECK(k->value_chunks == 2);  // max(d_k, d_v) = 64
  }
  // keys: 32 key rows of 64 and value rows of 33; 32 query rows of stride 65, dO rows of 33, lse, D.
  CHECK(l.keys.shared_bytes == (32 * (64 + 33) + 32 * (65 + 33 + 2)) * 4);
  // queries: 32 query rows of 64, dO rows of 33, lse and D; 32 key rows of 65 and value rows of 33.
  CHECK(l.queries.shared_bytes == (32 * (64 + 33 + 2) + 32 * (65 + 33)) * 4);
  CHECK(detail::attention_backward_launch(1, 1, 1, 1).keys.value_chunks == 1);
  CHECK(detail::attention_backward_launch(1, 1, 65, 8).keys.value_chunks == 4);
  CHECK(detail::attention_backward_launch(1, 1, 8, 128).queries.value_chunks == 4);
}

TEST_CASE("cuda attention backward: every argument check names its argument", "[cuda][plan][errors]") {
  core_problem pb(2, 5, 4, 3);
  std::vector<float> g(2 * 5 * 3), gq(2 * 5 * 4), gk(2 * 5 * 4), gv(2 * 5 * 3);
  const batched_view<const float> dO{g.data(), 2, 5, 3, 15, 3};
  const batched_view<float> dQ{gq.data(), 2, 5, 4, 20, 4}, dK{gk.data(), 2, 5, 4, 20, 4}, dV{gv.data(), 2, 5, 3, 15, 3};
  const batched_view<const float> O{pb.o.data(), 2, 5, 3, 15, 3};
  const batched_view<const float> lse{pb.l.data(), 2, 5, 1, 5, 1};
  const attention_core_params ok{};
  const auto named = [&](const batched_view<float>& q, const batched_view<float>& k, const batched_view<float>& v,
                         const batched_view<const float>& o, const batched_view<const float>& l,
                         const batched_view<const float>& go, const attention_core_params& params) {
    return named_by(
        [&] { detail::validate_attention_core_backward(q, k, v, go, o, l, pb.Q(), pb.K(), pb.V(), params); });
  };
  CHECK(named(dQ, dK, dV, O, lse, dO, ok) == "<no error>");
  CHECK(named(dQ, dK, dV, O, lse, dO, {mask(7), 0}) == "params.causal_mask");
  CHECK(named(dQ, dK, dV, O, lse, dO, {mask::strict, -1}) == "params.temperature");
  auto O_bad = O;
  O_bad.cols = 4;
  CHECK(named(dQ, dK, dV, O_bad, lse, dO, ok) == "O");
  auto lse_bad = lse;
  lse_bad.rows = 4;
  CHECK(named(dQ, dK, dV, O, lse_bad, dO, ok) == "lse");
  auto dO_bad = dO;
  dO_bad.data = nullptr;
  CHECK(named(dQ, dK, dV, O, lse, dO_bad, ok) == "dO");
  auto dQ_bad = dQ;
  dQ_bad.cols = 3;
  CHECK(named(dQ_bad, dK, dV, O, lse, dO, ok) == "dQ");
  auto dK_bad = dK;
  dK_bad.row_stride = 3;
  CHECK(named(dQ, dK_bad, dV, O, lse, dO, ok) == "dK");
  auto dV_bad = dV;
  dV_bad.batch = 1;
  CHECK(named(dQ, dK, dV_bad, O, lse, dO, ok) == "dV");
  // outputs over an input or over each other
  CHECK(named(batched_view<float>{pb.q.data(), 2, 5, 4, 20, 4}, dK, dV, O, lse, dO, ok) == "dQ");
  CHECK(named(dQ, dK, batched_view<float>{g.data(), 2, 5, 3, 15, 3}, O, lse, dO, ok) == "dV");
  CHECK(named(dQ, batched_view<float>{gq.data(), 2, 5, 4, 20, 4}, dV, O, lse, dO, ok) == "dK");
  // the backward's widths: at most 128
  core_problem wide(1, 3, 129, 8);
  std::vector<float> w_g(3 * 8), w_q(3 * 129), w_k(3 * 129), w_v(3 * 8);
  const test::thrown t = test::thrown_by([&] {
    detail::validate_attention_core_backward(
        batched_view<float>{w_q.data(), 1, 3, 129, 387, 129}, batched_view<float>{w_k.data(), 1, 3, 129, 387, 129},
        batched_view<float>{w_v.data(), 1, 3, 8, 24, 8}, batched_view<const float>{w_g.data(), 1, 3, 8, 24, 8},
        batched_view<const float>{wide.o.data(), 1, 3, 8, 24, 8},
        batched_view<const float>{wide.l.data(), 1, 3, 1, 3, 1}, wide.Q(), wide.K(), wide.V(), ok);
  });
  CHECK(t.argument == "Q");
  CHECK(t.contains("d_k <= 128"));
}

namespace {

// Host buffers standing in for device memory: U (B, N, p), H heads, the outputs, db and the
// gradients of the backward, a workspace (of the backward's size).
struct barrier_problem {
  index B, N, p, H, d_k, d_v;
  std::vector<float> u, wq, wk, wv, wo, b_out, log_out, db, du, dwq, dwk, dwv, dwo;
  std::vector<int> sign_out;
  std::vector<double> ws;  // 8-byte elements; aligned to 256 below
  barrier_problem(index B_, index N_, index p_, index H_, index d_k_, index d_v_)
      : B(B_), N(N_), p(p_), H(H_), d_k(d_k_), d_v(d_v_), u(B * N * p), wq(H * d_k * p), wk(H * d_k * p),
        wv(H * d_v * p), wo(H * p * d_v), b_out(B * N), log_out(B * N), db(B * N), du(u.size()), dwq(wq.size()),
        dwk(wk.size()), dwv(wv.size()), dwo(wo.size()), sign_out(B * N),
        ws(std::max(bytes(detail::barrier_pass::backward), projected_bytes(detail::barrier_pass::backward)) / 8 + 64) {}
  batched_view<const float> U() const { return {u.data(), B, N, p, N * p, p}; }
  cuda_heads<float> heads() const {
    return {{wq.data(), H, d_k, p, d_k * p, p},
            {wk.data(), H, d_k, p, d_k * p, p},
            {wv.data(), H, d_v, p, d_v * p, p},
            {wo.data(), H, p, d_v, p * d_v, d_v}};
  }
  cuda_token_barrier<float> out() {
    return {{b_out.data(), B, N, 1, N, 1}, {log_out.data(), B, N, 1, N, 1}, {sign_out.data(), B, N, 1, N, 1}};
  }
  batched_view<const float> dB() const { return {db.data(), B, N, 1, N, 1}; }
  cuda_barrier_gradients<float> grad() {
    return {{du.data(), B, N, p, N * p, p},
            {dwq.data(), H, d_k, p, d_k * p, p},
            {dwk.data(), H, d_k, p, d_k * p, p},
            {dwv.data(), H, d_v, p, d_v * p, p},
            {dwo.data(), H, p, d_v, p * d_v, d_v}};
  }
  std::size_t bytes(detail::barrier_pass pass = detail::barrier_pass::forward) const {
    return detail::barrier_layout(B, N, p, H, d_k, mask::strict, 4, pass).bytes;
  }
  std::size_t projected_bytes(detail::barrier_pass pass = detail::barrier_pass::forward) const {
    return detail::projected_layout(B, N, p, H, d_k, d_v, mask::strict, 4, pass).bytes;
  }
  void* workspace() {
    const auto at = reinterpret_cast<std::uintptr_t>(ws.data());
    return reinterpret_cast<void*>((at + 255) / 256 * 256);
  }
};

}  // namespace

TEST_CASE("cuda barrier workspace: aligned buffers in order, each of its size, G only for the inclusive mask",
          "[cuda][plan]") {
  // B = 2, N = 5, p = 3, H = 2, d_k = 4 in float: w = 3 * 4 / 2 + 3 = 9 moments per token.
  const auto round = [](std::size_t n) { return (n + 255) / 256 * 256; };
  const detail::cuda_barrier_layout l = detail::barrier_layout(2, 5, 3, 2, 4, mask::strict, 4);
  CHECK(detail::barrier_packed_width(3) == 9);
  CHECK(l.A == 0);
  CHECK(l.V == round(2 * 9 * 4));
  CHECK(l.mean == l.V + round(2 * 9 * 4));
  CHECK(l.Uc == l.mean + round(2 * 3 * 4));
  CHECK(l.X == l.Uc + round(10 * 3 * 4));
  CHECK(l.Q == l.X + round(10 * 9 * 4));
  CHECK(l.P == l.K + round(10 * 4 * 4));
  CHECK(l.M == l.P + round(10 * 5 * 4));
  CHECK(l.G == l.M + round(10 * 9 * 4));
  CHECK(l.C == l.G);  // strict: no G
  CHECK(l.J == l.T + round(10 * 9 * 4));
  CHECK(l.J_ptr == l.J + round(10 * 9 * 4));
  CHECK(l.pivots == l.J_ptr + round(10 * sizeof(void*)));
  CHECK(l.bytes == l.info + round(10 * 4));
  CHECK(l.Z == l.bytes);  // the forward's layout: the backward's buffers are empty
  CHECK(l.SA == l.bytes);
  const detail::cuda_barrier_layout li = detail::barrier_layout(2, 5, 3, 2, 4, mask::inclusive, 8);
  CHECK(li.C == li.G + round(10 * 3 * 8));
  CHECK(li.bytes > l.bytes);
  // The backward's buffers follow the forward's, DG only for the inclusive mask.
  const detail::cuda_barrier_layout b =
      detail::barrier_layout(2, 5, 3, 2, 4, mask::strict, 4, detail::barrier_pass::backward);
  CHECK(b.info == l.info);
  CHECK(b.Z == l.bytes);
  CHECK(b.Z_ptr == b.Z + round(10 * 9 * 4));
  CHECK(b.dP == b.Z_ptr + round(10 * sizeof(void*)));
  CHECK(b.R == b.dP + round(10 * 5 * 4));
  CHECK(b.e == b.R + round(10 * 9 * 4));
  CHECK(b.ones == b.e + round(10 * 4));
  CHECK(b.DG == b.ones + round(10 * 4));
  CHECK(b.dQ == b.DG);  // strict: no DG
  CHECK(b.dK == b.dQ + round(10 * 4 * 4));
  CHECK(b.Un == b.dK + round(10 * 4 * 4));
  CHECK(b.SV == b.Un + round(10 * 3 * 4));
  CHECK(b.SA == b.SV + round(9 * 4));
  CHECK(b.bytes == b.SA + round(9 * 4));
  const detail::cuda_barrier_layout bi =
      detail::barrier_layout(2, 5, 3, 2, 4, mask::inclusive, 8, detail::barrier_pass::backward);
  CHECK(bi.dQ == bi.DG + round(10 * 3 * 8));
  CHECK(test::thrown_by([] { detail::barrier_layout(1, index(1) << 40, 64, 1, 64, mask::strict, 4); }).argument == "U");
}

TEST_CASE("cuda projected barrier workspace: aligned buffers in order, each of its size, the inclusive mask's "
          "KO, VO and Cq", "[cuda][plan]") {
  // B = 2, N = 5, p = 3, H = 2, d_k = 4, d_v = 3 in float: n = 6, w = 12 + 3 + 4 = 19 moments per token.
  const auto round = [](std::size_t n) { return (n + 255) / 256 * 256; };
  CHECK(detail::projected_moment_width(3, 4) == 19);
  const detail::cuda_projected_layout l = detail::projected_layout(2, 5, 3, 2, 4, 3, mask::strict, 4);
  CHECK(l.PQ == 0);
  CHECK(l.KO == round(2 * 4 * 6 * 4));
  CHECK(l.VO == l.KO);  // strict: no KO, VO
  CHECK(l.mean == l.VO);
  CHECK(l.Uc == l.mean + round(2 * 3 * 4));
  CHECK(l.Q == l.Uc + round(10 * 3 * 4));
  CHECK(l.K == l.Q + round(10 * 4 * 4));
  CHECK(l.P == l.K + round(10 * 4 * 4));
  CHECK(l.Z == l.P + round(10 * 5 * 4));
  CHECK(l.M == l.Z + round(10 * 19 * 4));
  CHECK(l.Cq == l.M + round(10 * 19 * 4));
  CHECK(l.J == l.Cq);  // strict: no Cq
  CHECK(l.J_ptr == l.J + round(10 * 36 * 4));
  CHECK(l.pivots == l.J_ptr + round(10 * sizeof(void*)));
  CHECK(l.info == l.pivots + round(10 * 6 * 4));
  CHECK(l.bytes == l.info + round(10 * 4));
  const detail::cuda_projected_layout li = detail::projected_layout(2, 5, 3, 2, 4, 3, mask::inclusive, 8);
  CHECK(li.KO == round(2 * 4 * 6 * 8));
  CHECK(li.VO == li.KO + round(2 * 4 * 6 * 8));
  CHECK(li.mean == li.VO + round(2 * 3 * 6 * 8));
  CHECK(li.J == li.Cq + round(10 * 6 * 8));
  CHECK(l.Inv == l.bytes);  // the forward's layout: the backward's buffers are empty
  CHECK(l.Un == l.bytes);
  // The backward's buffers follow the forward's; att, ddv, dCq, dKO and dVOt only for the inclusive mask.
  const detail::cuda_projected_layout b =
      detail::projected_layout(2, 5, 3, 2, 4, 3, mask::strict, 4, detail::barrier_pass::backward);
  CHECK(b.info == l.info);
  CHECK(b.Inv == l.bytes);
  CHECK(b.Inv_ptr == b.Inv + round(10 * 36 * 4));
  CHECK(b.W == b.Inv_ptr + round(10 * sizeof(void*)));
  CHECK(b.dW == b.W + round(3 * 6 * 4));
  CHECK(b.dP == b.dW + round(3 * 6 * 4));
  CHECK(b.R == b.dP + round(10 * 5 * 4));
  CHECK(b.e == b.R + round(10 * 19 * 4));
  CHECK(b.ones == b.e + round(10 * 4));
  CHECK(b.att == b.ones + round(10 * 4));
  CHECK(b.Y == b.att);  // strict: no att, ddv, dCq
  CHECK(b.dPQ == b.Y + round(10 * 4 * 6 * 4));
  CHECK(b.dKO == b.dPQ + round(4 * 6 * 4));
  CHECK(b.dQ == b.dKO);  // strict: no dKO, dVOt
  CHECK(b.dK == b.dQ + round(10 * 4 * 4));
  CHECK(b.dVs == b.dK + round(10 * 4 * 4));
  CHECK(b.dKs == b.dVs + round(10 * 3 * 4));
  CHECK(b.Un == b.dKs + round(10 * 4 * 4));
  CHECK(b.bytes == b.Un + round(10 * 3 * 4));
  const detail::cuda_projected_layout bi =
      detail::projected_layout(2, 5, 3, 2, 4, 3, mask::inclusive, 8, detail::barrier_pass::backward);
  CHECK(bi.ddv == bi.att + round(10 * 8));
  CHECK(bi.dCq == bi.ddv + round(10 * 3 * 8));
  CHECK(bi.Y == bi.dCq + round(10 * 6 * 8));
  CHECK(bi.dVOt == bi.dKO + round(4 * 6 * 8));
  CHECK(bi.dQ == bi.dVOt + round(6 * 3 * 8));
  // The margins' buffers: W at the backward's place, then Y_t and the iterations' vectors; Cp only
  // for the inclusive mask, the backward's other buffers empty.
  const detail::cuda_projected_layout g =
      detail::projected_layout(2, 5, 3, 2, 4, 3, mask::strict, 4, detail::barrier_pass::margins);
  CHECK(g.info == l.info);
  CHECK(g.Inv == l.bytes);
  CHECK(g.W == g.Inv_ptr);  // no Inv, Inv_ptr
  CHECK(g.dW == g.W + round(3 * 6 * 4));
  CHECK(g.Yt == g.dW);  // no dW ... Un
  CHECK(g.Un == g.Yt);
  CHECK(g.Cp == g.Yt + round(10 * 6 * 3 * 4));
  CHECK(g.x == g.Cp);  // strict: no Cp
  CHECK(g.y == g.x + round(10 * 3 * 4));
  CHECK(g.t == g.y + round(10 * 3 * 4));
  CHECK(g.v == g.t + round(10 * 3 * 4));
  CHECK(g.v_ptr == g.v + round(10 * 6 * 4));
  CHECK(g.state == g.v_ptr + round(10 * sizeof(void*)));
  CHECK(g.bytes == g.state + round(10 * sizeof(detail::power_state<float>)));
  const detail::cuda_projected_layout gi =
      detail::projected_layout(2, 5, 3, 2, 4, 3, mask::inclusive, 8, detail::barrier_pass::margins);
  CHECK(gi.x == gi.Cp + round(10 * 3 * 8));
  CHECK(gi.bytes == gi.state + round(10 * sizeof(detail::power_state<double>)));
  CHECK(b.Yt == b.bytes);  // the backward's layout: the margins' buffers are empty
  // N = 2^31: the weights alone are 2^62 elements.
  CHECK(test::thrown_by([] { detail::projected_layout(1, index(1) << 31, 768, 12, 64, 64, mask::strict, 4); })
            .argument == "U");
}

TEST_CASE("cuda barrier forms: automatic takes the form of fewer operations on the GPU", "[cuda][plan]") {
  const auto heads = [](index H, index d_k, index d_v, index p) {
    return cuda_heads<float>{{nullptr, H, d_k, p, d_k * p, p},
                             {nullptr, H, d_k, p, d_k * p, p},
                             {nullptr, H, d_v, p, d_v * p, p},
                             {nullptr, H, p, d_v, p * d_v, d_v}};
  };
  // GPT-2 small (p = 768, H = 12, d = 64, N = 1024): per pair and head 2 * 4224 operations
  // projected against 2 * 295680 packed.
  CHECK(detail::resolve_cuda_form(jacobian_form::automatic, 1024, 768, heads(12, 64, 64, 768)) ==
        jacobian_form::projected);
  // One head as wide as the model (p = d = 64, N = 2048): 2 * 2144 packed against 2 * 4224 per
  // pair; the packed form's 4 p^3 per token do not make up for it.
  CHECK(detail::resolve_cuda_form(jacobian_form::automatic, 2048, 64, heads(1, 64, 64, 64)) ==
        jacobian_form::general);
  // Beyond the packed form's p <= 1024: projected, even where the packed form would count fewer
  // operations (400 heads of d_v = 64: an LU of n = 25600 per token).
  CHECK(detail::cuda_form_operations(jacobian_form::general, 4, 1100, 400, 1, 64) <
        detail::cuda_form_operations(jacobian_form::projected, 4, 1100, 400, 1, 64));
  CHECK(detail::resolve_cuda_form(jacobian_form::automatic, 4, 1100, heads(400, 1, 64, 1100)) ==
        jacobian_form::projected);
  // A form given is kept.
  CHECK(detail::resolve_cuda_form(jacobian_form::general, 1024, 768, heads(12, 64, 64, 768)) ==
        jacobian_form::general);
  CHECK(detail::resolve_cuda_form(jacobian_form::projected, 2048, 64, heads(1, 64, 64, 64)) ==
        jacobian_form::projected);
}

TEST_CASE("cuda barrier: every argument check names its argument", "[cuda][plan][errors]") {
  barrier_problem pb(2, 5, 3, 2, 4, 2);
  const attention_core_params attention{};
  const barrier_params barrier{extension::extended, 1e-8, 1e-2};
  const auto named = [&](const cuda_token_barrier<float>& out, const batched_view<const float>& U,
                         const cuda_heads<float>& heads, const attention_core_params& a, const barrier_params& bp,
                         void* ws, std::size_t bytes) {
    return named_by([&] { detail::validate_cuda_barrier(out, U, heads, a, bp, ws, bytes); });
  };
  void* ws = pb.workspace();
  const std::size_t bytes = pb.bytes();
  CHECK(named(pb.out(), pb.U(), pb.heads(), attention, barrier, ws, bytes) == "<no error>");

  SECTION("parameters") {
    CHECK(named(pb.out(), pb.U(), pb.heads(), {mask(5), 0}, barrier, ws, bytes) == "attention.causal_mask");
    CHECK(named(pb.out(), pb.U(), pb.heads(), {mask::strict, -2}, barrier, ws, bytes) == "attention.temperature");
    CHECK(named(pb.out(), pb.U(), pb.heads(), attention, {extension::clamp, 0, 1e-2}, ws, bytes) == "barrier.eps");
  }
  SECTION("shapes") {
    auto U = pb.U();
    U.rows = 0;
    CHECK(named(pb.out(), U, pb.heads(), attention, barrier, ws, bytes) == "U");
    auto heads = pb.heads();
    heads.W_K.cols = 4;
    CHECK(named(pb.out(), pb.U(), heads, attention, barrier, ws, bytes) == "heads.W_K");
    heads = pb.heads();
    heads.W_O.batch = 1;
    CHECK(named(pb.out(), pb.U(), heads, attention, barrier, ws, bytes) == "heads.W_O");
    heads = pb.heads();
    heads.W_Q.batch = 0;
    CHECK(named(pb.out(), pb.U(), heads, attention, barrier, ws, bytes) == "heads.W_Q");
    auto out = pb.out();
    out.sign.rows = 4;
    CHECK(named(out, pb.U(), pb.heads(), attention, barrier, ws, bytes) == "out.sign");
    out = pb.out();
    out.log_abs.data = nullptr;
    CHECK(named(out, pb.U(), pb.heads(), attention, barrier, ws, bytes) == "out.log_abs");
  }
  SECTION("outputs apart from the inputs and each other, and from the workspace") {
    auto out = pb.out();
    out.b.data = pb.u.data() + 1;  // inside U
    CHECK(named(out, pb.U(), pb.heads(), attention, barrier, ws, bytes) == "out.b");
    out = pb.out();
    out.log_abs.data = pb.b_out.data() + 9;  // overlaps out.b's last element
    CHECK(named(out, pb.U(), pb.heads(), attention, barrier, ws, bytes) == "out.log_abs");
    CHECK(named(pb.out(), pb.U(), pb.heads(), attention, barrier, pb.b_out.data(), bytes) == "workspace");
  }
  SECTION("workspace") {
    CHECK(named(pb.out(), pb.U(), pb.heads(), attention, barrier, nullptr, bytes) == "workspace");
    CHECK(named(pb.out(), pb.U(), pb.heads(), attention, barrier, ws, bytes - 1) == "workspace");
    const test::thrown t = test::thrown_by(
        [&] { detail::validate_cuda_barrier(pb.out(), pb.U(), pb.heads(), attention, barrier, static_cast<char*>(ws) + 8, bytes); });
    CHECK(t.argument == "workspace");
    CHECK(t.contains("aligned"));
  }
}

TEST_CASE("cuda barrier forms: the form is checked, and sets the workspace and the width the call takes",
          "[cuda][plan][errors]") {
  barrier_problem pb(2, 5, 3, 2, 4, 2);
  const barrier_params barrier{extension::extended, 1e-8, 1e-2};
  const auto named = [](barrier_problem& problem, std::size_t bytes, jacobian_form form) {
    return named_by([&] {
      detail::validate_cuda_barrier(problem.out(), problem.U(), problem.heads(), {}, barrier_params{},
                                    problem.workspace(), bytes, form);
    });
  };
  const std::size_t projected = pb.projected_bytes();
  REQUIRE(projected != pb.bytes());
  CHECK(named(pb, projected, jacobian_form::projected) == "<no error>");
  CHECK(named(pb, projected - 1, jacobian_form::projected) == "workspace");
  CHECK(named(pb, pb.bytes(), jacobian_form::general) == "<no error>");
  CHECK(named(pb, pb.bytes(), jacobian_form(7)) == "form");
  CHECK(detail::validate_cuda_barrier(pb.out(), pb.U(), pb.heads(), {}, barrier, pb.workspace(), projected,
                                      jacobian_form::projected) == jacobian_form::projected);
  // p = 1100: beyond the packed form, which names U; the projected form (and automatic) take it.
  barrier_problem wide(1, 2, 1100, 1, 1, 1);
  const std::size_t wide_projected = wide.projected_bytes();
  const test::thrown t = test::thrown_by([&] {
    detail::validate_cuda_barrier(wide.out(), wide.U(), wide.heads(), {}, barrier, wide.workspace(), wide.bytes(),
                                  jacobian_form::general);
  });
  CHECK(t.argument == "U");
  CHECK(t.contains("p <= 1024"));
  CHECK(named(wide, wide_projected, jacobian_form::projected) == "<no error>");
  CHECK(detail::validate_cuda_barrier(wide.out(), wide.U(), wide.heads(), {}, barrier, wide.workspace(),
                                      wide_projected, jacobian_form::automatic) == jacobian_form::projected);
  // The backward: the same form check, and the projected backward's workspace.
  const std::size_t backward = pb.projected_bytes(detail::barrier_pass::backward);
  const auto named_backward = [&](std::size_t bytes, jacobian_form form) {
    return named_by([&] {
      detail::validate_cuda_barrier_backward(pb.grad(), pb.out(), pb.dB(), pb.U(), pb.heads(), {}, barrier,
                                             pb.workspace(), bytes, form);
    });
  };
  CHECK(named_backward(backward, jacobian_form::projected) == "<no error>");
  CHECK(named_backward(backward - 1, jacobian_form::projected) == "workspace");
  CHECK(named_backward(backward, jacobian_form(9)) == "form");
  CHECK(named_by([&] {
          detail::validate_cuda_barrier_backward(wide.grad(), wide.out(), wide.dB(), wide.U(), wide.heads(), {},
                                                 barrier, wide.workspace(), wide.bytes(detail::barrier_pass::backward),
                                                 jacobian_form::general);
        }) == "U");
}

TEST_CASE("cuda barrier backward: every argument check names its argument", "[cuda][plan][errors]") {
  barrier_problem pb(2, 5, 3, 2, 4, 2);
  const attention_core_params attention{};
  const barrier_params barrier{extension::extended, 1e-8, 1e-2};
  void* ws = pb.workspace();
  const std::size_t bytes = pb.bytes(detail::barrier_pass::backward);
  const auto named = [&](const cuda_barrier_gradients<float>& grad, const batched_view<const float>& db,
                         std::size_t workspace_bytes) {
    return named_by([&] {
      detail::validate_cuda_barrier_backward(grad, pb.out(), db, pb.U(), pb.heads(), attention, barrier, ws,
                                             workspace_bytes);
    });
  };
  CHECK(named(pb.grad(), pb.dB(), bytes) == "<no error>");
  CHECK(named(pb.grad(), pb.dB(), pb.bytes()) == "workspace");  // the forward's size is too small
  auto db = pb.dB();
  db.rows = 4;
  CHECK(named(pb.grad(), db, bytes) == "db");
  db = pb.dB();
  db.data = pb.b_out.data() + 3;  // overlaps the output out.b
  CHECK(named(pb.grad(), db, bytes) == "out.b");
  auto grad = pb.grad();
  grad.dU.cols = 2;
  CHECK(named(grad, pb.dB(), bytes) == "grad.dU");
  grad = pb.grad();
  grad.dW_Q.rows = 3;
  CHECK(named(grad, pb.dB(), bytes) == "grad.dW_Q");
  grad = pb.grad();
  grad.dW_K.batch = 1;
  CHECK(named(grad, pb.dB(), bytes) == "grad.dW_K");
  grad = pb.grad();
  grad.dW_V.cols = 4;
  CHECK(named(grad, pb.dB(), bytes) == "grad.dW_V");
  grad = pb.grad();
  grad.dW_O.data = nullptr;
  CHECK(named(grad, pb.dB(), bytes) == "grad.dW_O");
  grad = pb.grad();
  grad.dW_O.data = pb.wo.data();  // the input heads.W_O
  CHECK(named(grad, pb.dB(), bytes) == "grad.dW_O");
  grad = pb.grad();
  grad.dW_V.data = pb.dwq.data() + 4;  // inside grad.dW_Q
  const test::thrown t = test::thrown_by([&] {
    detail::validate_cuda_barrier_backward(grad, pb.out(), pb.dB(), pb.U(), pb.heads(), attention, barrier, ws, bytes);
  });
  CHECK(t.argument == "grad.dW_V");
  CHECK(t.contains("grad.dW_Q"));
  grad = pb.grad();
  grad.dU.data = pb.db.data();  // the input db
  CHECK(named(grad, pb.dB(), bytes) == "grad.dU");
  grad = pb.grad();
  grad.dW_K.data = static_cast<float*>(ws) + 16;  // inside the workspace
  CHECK(named(grad, pb.dB(), bytes) == "grad.dW_K");
}

TEST_CASE("cuda margins: the Jacobi sweep's round-robin meets every pair of rows once, rounds disjoint",
          "[cuda][plan]") {
  for (index n : {2, 4, 6, 34, 128}) {
    std::vector<int> met(std::size_t(n * n), 0);
    for (index round = 0; round < n - 1; ++round) {
      std::vector<int> used(std::size_t(n), 0);
      for (index q = 0; q < n / 2; ++q) {
        index i = -1, j = -1;
        detail::round_robin_pair(n, round, q, i, j);
        REQUIRE(i >= 0);
        REQUIRE(j < n);
        REQUIRE(i != j);
        ++used[std::size_t(i)];
        ++used[std::size_t(j)];
        ++met[std::size_t(std::min(i, j) * n + std::max(i, j))];
      }
      CHECK(std::count(used.begin(), used.end(), 1) == n);  // each row once per round
    }
    for (index i = 0; i < n; ++i)
      for (index j = i + 1; j < n; ++j) CHECK(met[std::size_t(i * n + j)] == 1);
  }
  // Shared memory: p rounded up to even rows of p_even + 1 elements.
  CHECK(detail::margin_shared_bytes(5, 8) == 6 * 7 * 8);
  CHECK(detail::margin_shared_bytes(128, 8) == 128 * 129 * 8);
  CHECK(detail::margin_shared_bytes(128, 8) <= 227 * 1024);
}

TEST_CASE("cuda margins: every argument check names its argument", "[cuda][plan][errors]") {
  barrier_problem pb(2, 5, 3, 2, 4, 2);
  std::vector<float> sigma_min(10), signed_margin(10), sigma_max(10), kappa(10);
  const auto column = [&](std::vector<float>& x) { return batched_view<float>{x.data(), 2, 5, 1, 5, 1}; };
  const cuda_token_margins<float> out{pb.out().sign, pb.out().log_abs, column(sigma_min), column(signed_margin),
                                      column(sigma_max), column(kappa)};
  void* ws = pb.workspace();
  const std::size_t bytes = pb.bytes();
  const auto named = [&](const cuda_token_margins<float>& o, const batched_view<const float>& U,
                         const attention_core_params& a, std::size_t workspace_bytes) {
    return named_by([&] { detail::validate_cuda_margins(o, U, pb.heads(), a, ws, workspace_bytes); });
  };
  CHECK(named(out, pb.U(), {}, bytes) == "<no error>");
  CHECK(named(out, pb.U(), {mask(7), 0}, bytes) == "attention.causal_mask");
  CHECK(named(out, pb.U(), {}, bytes - 1) == "workspace");
  auto o = out;
  o.kappa.rows = 4;
  CHECK(named(o, pb.U(), {}, bytes) == "out.kappa");
  o = out;
  o.sigma_max.data = nullptr;
  CHECK(named(o, pb.U(), {}, bytes) == "out.sigma_max");
  o = out;
  o.signed_margin = o.sigma_min;  // the same memory twice
  CHECK(named(o, pb.U(), {}, bytes) == "out.signed_margin");
  o = out;
  o.sigma_min.data = pb.u.data();  // inside U
  CHECK(named(o, pb.U(), {}, bytes) == "out.sigma_min");
  barrier_problem wide(1, 2, 130, 1, 1, 1);  // p = 130: the barrier takes it, the margins do not
  std::vector<float> columns(4 * 2);
  const auto slot = [&](index k) { return batched_view<float>{columns.data() + 2 * k, 1, 2, 1, 2, 1}; };
  const cuda_token_margins<float> wide_out{wide.out().sign, wide.out().log_abs, slot(0), slot(1), slot(2), slot(3)};
  CHECK(named_by([&] {
          detail::validate_cuda_barrier(wide.out(), wide.U(), wide.heads(), {}, barrier_params{}, wide.workspace(),
                                        wide.bytes());
        }) == "<no error>");
  const test::thrown t = test::thrown_by(
      [&] { detail::validate_cuda_margins(wide_out, wide.U(), wide.heads(), {}, wide.workspace(), wide.bytes()); });
  CHECK(t.argument == "U");
  CHECK(t.contains("p <= 128"));
}

TEST_CASE("cuda margins forms: the projected form takes any p, automatic takes it past p = 128, its workspace "
          "and iteration are checked", "[cuda][plan][errors]") {
  using detail::resolve_cuda_margin_form;
  CHECK(resolve_cuda_margin_form(jacobian_form::automatic, 128) == jacobian_form::general);
  CHECK(resolve_cuda_margin_form(jacobian_form::automatic, 129) == jacobian_form::projected);
  CHECK(resolve_cuda_margin_form(jacobian_form::projected, 8) == jacobian_form::projected);
  CHECK(resolve_cuda_margin_form(jacobian_form::general, 700) == jacobian_form::general);
  barrier_problem wide(1, 2, 130, 2, 3, 4);  // p = 130 > 128, n = 8
  std::vector<float> columns(4 * 2);
  const auto slot = [&](index k) { return batched_view<float>{columns.data() + 2 * k, 1, 2, 1, 2, 1}; };
  const cuda_token_margins<float> out{wide.out().sign, wide.out().log_abs, slot(0), slot(1), slot(2), slot(3)};
  const std::size_t bytes = wide.projected_bytes(detail::barrier_pass::margins);
  CHECK(detail::cuda_margin_bytes(1, 2, wide.heads(), mask::strict, jacobian_form::projected) == bytes);
  CHECK(detail::cuda_margin_bytes(1, 2, wide.heads(), mask::strict, jacobian_form::general) == wide.bytes());
  CHECK(bytes > wide.projected_bytes());  // Y_t and the iterations' vectors beside the forward's buffers
  wide.ws.resize(bytes / 8 + 64);
  const auto validate = [&](jacobian_form form, const iteration_params& ip, std::size_t workspace_bytes) {
    return detail::validate_cuda_margins(out, wide.U(), wide.heads(), {}, wide.workspace(), workspace_bytes, form, ip);
  };
  const auto named = [&](jacobian_form form, const iteration_params& ip, std::size_t workspace_bytes) {
    return named_by([&] { validate(form, ip, workspace_bytes); });
  };
  CHECK(validate(jacobian_form::automatic, {}, bytes) == jacobian_form::projected);
  CHECK(named(jacobian_form::projected, {}, bytes) == "<no error>");
  CHECK(named(jacobian_form::automatic, {}, bytes) == "<no error>");
  CHECK(named(jacobian_form::projected, {}, bytes - 1) == "workspace");
  CHECK(named(jacobian_form::projected, {0, 1e-6}, bytes) == "iteration.max_iterations");
  CHECK(named(jacobian_form::projected, {10, 0}, bytes) == "iteration.tolerance");
  CHECK(named(jacobian_form::projected, {10, std::nan("")}, bytes) == "iteration.tolerance");
  CHECK(named(jacobian_form(9), {}, bytes) == "form");
  // The workspace queries' checks (barrier_workspace_bytes and margins_workspace_bytes).
  const auto query = [&](index B, index N, const cuda_heads<float>& h, jacobian_form form) {
    return named_by([&] { detail::validate_workspace_query(B, N, h, form); });
  };
  cuda_heads<float> headless = wide.heads();
  headless.W_Q.batch = 0;
  CHECK(query(1, 2, wide.heads(), jacobian_form::automatic) == "<no error>");
  CHECK(query(0, 2, wide.heads(), jacobian_form::automatic) == "B");
  CHECK(query(1, -1, wide.heads(), jacobian_form::automatic) == "N");
  CHECK(query(1, 2, headless, jacobian_form::automatic) == "heads.W_Q");
  CHECK(query(1, 2, wide.heads(), jacobian_form(5)) == "form");
  // The packed form does not iterate: its iteration parameters are not read.
  barrier_problem narrow(2, 5, 3, 2, 4, 2);
  std::vector<float> narrow_columns(4 * 10);
  const auto narrow_slot = [&](index k) {
    return batched_view<float>{narrow_columns.data() + 10 * k, 2, 5, 1, 5, 1};
  };
  const cuda_token_margins<float> narrow_out{narrow.out().sign, narrow.out().log_abs, narrow_slot(0), narrow_slot(1),
                                             narrow_slot(2), narrow_slot(3)};
  CHECK(detail::validate_cuda_margins(narrow_out, narrow.U(), narrow.heads(), {}, narrow.workspace(), narrow.bytes(),
                                      jacobian_form::automatic, {0, 0}) == jacobian_form::general);
}

}  // namespace suptok
