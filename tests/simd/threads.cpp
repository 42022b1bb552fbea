// The simd backend gives the same results on 1, 2 and 3 OpenMP threads, on shapes large enough
// to be threaded (simd_kernels::worth_threads) and with more query/key tiles than threads.
#include "barrier_checks.hpp"
#include "simd_checks.hpp"

#include <catch2/catch.hpp>

#include <thread>

namespace suptok {  // inside the namespace: `index` would clash with ::index of <strings.h>

TEMPLATE_TEST_CASE("simd attention does not depend on the number of threads", "[simd][threads]", float, double) {
  using S = TestType;
#ifndef _OPENMP
  WARN("built without OpenMP: nothing to compare");
  return;
#endif
  const index p = 24;
  const heads<S> hs = test::random_heads<S>(2, p, 20, 27, 31, test::sweep_head_scale(p));
  const std::vector<matrix<S>> Us = {test::random_matrix<S>(300, p, 32), test::random_matrix<S>(257, p, 33)};
  const std::vector<matrix<S>> dMus = {test::random_matrix<S>(300, p, 34), test::random_matrix<S>(257, p, 35)};
  for (mask m : test::sweep_masks) {
    const attention_params params{m, 0};
    std::vector<attention_output<S>> out1;
    attention_batch_gradients<S> grad1;
    {
      const test::omp_threads one(1);
      attention_forward_batch(simd{}, out1, Us, hs, params);
      attention_backward_batch(simd{}, grad1, dMus, Us, hs, params);
    }
    for (int threads : {2, 3}) {
      INFO(threads << " threads, " << to_string(m) << " mask");
      const test::omp_threads many(threads);
      std::vector<attention_output<S>> out;
      attention_batch_gradients<S> grad;
      attention_forward_batch(simd{}, out, Us, hs, params);
      attention_backward_batch(simd{}, grad, dMus, Us, hs, params);
      for (std::size_t b = 0; b < Us.size(); ++b) {
        // Every query tile is computed by one thread in a fixed order: bitwise equal.
        CHECK(out[b].mu == out1[b].mu);
        for (std::size_t h = 0; h < hs.size(); ++h) CHECK(out[b].lse[h] == out1[b].lse[h]);
        // dQ is summed over per-thread buffers, whose split depends on the schedule: the order of
        // the final additions changes, a few eps on the gradient's scale (k = 8).
        CHECK(test::err_eps(grad.dU[b], grad1.dU[b], test::epsilon_of<S>(), test::max_abs(grad1.dU[b])) <= 8);
      }
      CHECK(test::err_eps_heads(grad.dW, grad1.dW, test::epsilon_of<S>(), test::max_abs(grad1.dW)) <= 8);
    }
  }
}

// The barrier: the moment GEMM's row panels, the per-token loops and the key tiles are threaded
// (N = 300, p = 24: above worth_threads everywhere). One head (Sylvester blocks) and two heads.
// b_t and the penalty are bitwise equal (every panel and token is one thread's, in a fixed order);
// the gradients'
// per-thread sums (dQ, dA, dV, G) are added in the schedule's order: k = 8 on the gradient's scale.
TEMPLATE_TEST_CASE("simd barrier does not depend on the number of threads", "[simd][threads]", float, double) {
  using S = TestType;
#ifndef _OPENMP
  WARN("built without OpenMP: nothing to compare");
  return;
#endif
  const barrier_params bp{extension::extended, 1e-8, 1e-2};
  for (index H : {1, 2})
    for (mask m : test::sweep_masks) {
      const auto pb = test::make_barrier_problem<S>(300, 24, H, 0.5 / std::sqrt(24.0), 40 + H);
      const std::vector<matrix<S>> Us = {pb.U, pb.U.topRows(257)};
      const attention_params ap{m, 0};
      std::vector<S> b1;
      barrier_gradients<S, attention_batch_gradients<S>> g1;
      {
        const test::omp_threads one(1);
        b1 = barrier_per_token(simd{}, pb.U, pb.hs, bp, ap);
        g1 = barrier_penalty_batch_backward(simd{}, Us, pb.hs, bp, ap);
      }
      for (int threads : {2, 3}) {
        INFO(threads << " threads, H = " << H << ", " << to_string(m) << " mask");
        const test::omp_threads many(threads);
        CHECK(barrier_per_token(simd{}, pb.U, pb.hs, bp, ap) == b1);
        const auto g = barrier_penalty_batch_backward(simd{}, Us, pb.hs, bp, ap);
        CHECK(g.penalty == g1.penalty);
        for (std::size_t b = 0; b < Us.size(); ++b)
          CHECK(test::err_eps(g.grad.dU[b], g1.grad.dU[b], test::epsilon_of<S>(), test::max_abs(g1.grad.dU[b])) <= 8);
        CHECK(test::err_eps_heads(g.grad.dW, g1.grad.dW, test::epsilon_of<S>(), test::max_abs(g1.grad.dW)) <= 8);
      }
    }
}

// A data-parallel training loop: every worker thread evaluates its own sequence's barrier and
// attention (forward and backward) at the same time as the others, each call opening its own
// OpenMP team (1 or 2 threads per call). The results equal those of the same calls made one after
// the other, bitwise: nothing is shared between calls (no static buffers, no global state).
TEMPLATE_TEST_CASE("simd calls from several threads at once give the serial results", "[simd][threads]", float,
                   double) {
  using S = TestType;
  constexpr int workers = 4;
  const barrier_params barrier{extension::extended, 1e-8, 1e-2};
  const attention_params attention{mask::strict, 0};
  struct result {
    barrier_gradients<S> barrier;
    attention_output<S> forward;
    attention_gradients<S> backward;
  };
  std::vector<test::barrier_problem<S>> problems;
  std::vector<matrix<S>> dMus;
  for (int w = 0; w < workers; ++w) {
    problems.push_back(test::make_barrier_problem<S>(200 + 13 * w, 16, 2, 0.25, 60 + w));
    dMus.push_back(test::random_matrix<S>(200 + 13 * w, 16, 70 + w));
  }
  const auto evaluate = [&](int w, int omp) {
    const test::omp_threads scope(omp);  // the calling thread's own OpenMP setting
    const auto& pb = problems[static_cast<std::size_t>(w)];
    result r{barrier_penalty_backward(simd{}, pb.U, pb.hs, barrier, attention), {}, {}};
    attention_forward(simd{}, r.forward, pb.U, pb.hs, attention);
    attention_backward(simd{}, r.backward, dMus[static_cast<std::size_t>(w)], pb.U, pb.hs, attention);
    return r;
  };
  for (int omp : {1, 2}) {
    INFO(omp << " OpenMP thread(s) per call");
    std::vector<result> serial, parallel(workers);
    for (int w = 0; w < workers; ++w) serial.push_back(evaluate(w, omp));
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w)
      pool.emplace_back([&, w] { parallel[static_cast<std::size_t>(w)] = evaluate(w, omp); });
    for (std::thread& t : pool) t.join();
    for (std::size_t w = 0; w < workers; ++w) {
      // Values are bitwise equal; with 2 OpenMP threads the gradients' per-thread sums are added
      // in the schedule's order (as above: k = 8 on the gradient's scale), with 1 they are bitwise.
      const double k = omp == 1 ? 0 : 8;
      const auto& x = parallel[w];
      const auto& r = serial[w];
      CHECK(x.barrier.penalty == r.barrier.penalty);
      CHECK(x.forward.mu == r.forward.mu);
      CHECK(test::err_eps_gradients(x.barrier.grad.dU, x.barrier.grad.dW, r.barrier.grad.dU, r.barrier.grad.dW,
                                    test::epsilon_of<S>()) <= k);
      CHECK(test::err_eps_gradients(x.backward.dU, x.backward.dW, r.backward.dU, r.backward.dW,
                                    test::epsilon_of<S>()) <= k);
    }
  }
}

}  // namespace suptok
