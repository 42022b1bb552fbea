// The host side of the CUDA attention kernels, without a GPU: launch geometry and shared memory
// (cuda/attention_plan.hpp) and every argument check of attention_forward(cuda, ...), each with
// the argument it must name.
#include <suptok/cuda/attention_plan.hpp>

#include <catch2/catch.hpp>

#include "thrown.hpp"

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

}  // namespace suptok
