// The simd backend gives the same results on 1, 2 and 3 OpenMP threads, on shapes large enough
// to be threaded (simd_kernels::worth_threads) and with more query/key tiles than threads.
#include "simd_checks.hpp"

#include <catch2/catch.hpp>

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

}  // namespace suptok
