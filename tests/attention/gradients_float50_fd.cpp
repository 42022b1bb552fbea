// Gradient tier (float50): the analytic backward against central finite differences of
// L = sum G o mu, both in cpp_bin_float_50 (eps about 5e-51).
//
// Step h = 1e-17: the central difference has truncation error h^2/6 |L'''| ~ 2e-35 |L'''| and
// rounding error eps |L| / h ~ 5e-34 |L|, so with derivatives of order one the FD gradient is
// good to a few 1e-33 relative (measured: 1.3e-33 to 6.9e-33, printed below; with h = 1e-16 the
// truncation term dominated, up to 2e-31 at tau = 0.7). The test requires 1e-30 (block-wise,
// max |err| / max |ref|): over two orders of margin, yet 15 orders below anything double
// arithmetic could reach, so only an exact backward passes.
#include "attention_checks.hpp"

#include <catch2/catch.hpp>

using namespace suptok;

TEST_CASE("attention_backward (float50) matches central finite differences", "[attention][gradient]") {
  for (const auto& c : test::gradient_cases) {
    const auto pr = test::make_problem<float50>(c);
    const auto analytic = test::blocks_of(attention_backward<float50>(pr.G, pr.U, pr.hs, pr.params));
    const auto fd = test::fd_gradient<float50>(pr.U, pr.hs, pr.G, pr.params, float50(1e-17));
    REQUIRE(analytic.size() == fd.size());
    for (std::size_t k = 0; k < fd.size(); ++k) {
      const double err = test::max_rel_error(analytic[k], fd[k]);
      INFO(test::describe(c) << ", " << test::block_name(k) << ": relative error " << err);
      CHECK(err <= 1e-30);
      CHECK(to_double(fd[k].cwiseAbs().maxCoeff()) > 1e-6);  // a non-trivial gradient
    }
    WARN("float50 backward vs float50 FD, " << test::describe(c) << ": max relative error "
                                            << test::max_block_error(analytic, fd));
  }
}
