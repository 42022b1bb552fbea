// Gradient tier (float50): the analytic backward against forward-mode autodiff through the
// generic forward with dual<float50> (each input entry seeded in turn).
//
// Both are exact derivatives evaluated in 50-digit arithmetic, so they differ only by rounding:
// a few hundred operations of eps ~ 5e-51 each, amplified by at most the conditioning of the
// small problem (measured: 1.2e-50 to 1.9e-49, printed below). The test requires 1e-40 relative
// (block-wise): about nine orders above that rounding, ten below any FD reference.
#include "attention_checks.hpp"

#include <catch2/catch.hpp>

using namespace suptok;

TEST_CASE("attention_backward (float50) matches forward-mode autodiff (dual<float50>)", "[attention][gradient]") {
  for (const auto& c : test::gradient_cases) {
    const auto pr = test::make_problem<float50>(c);
    const auto analytic = test::blocks_of(attention_backward<float50>(pr.G, pr.U, pr.hs, pr.params));
    const auto ad = test::autodiff_gradient<float50>(pr.U, pr.hs, pr.G, pr.params);
    REQUIRE(analytic.size() == ad.size());
    for (std::size_t k = 0; k < ad.size(); ++k) {
      const double err = test::max_rel_error(analytic[k], ad[k]);
      INFO(test::describe(c) << ", " << test::block_name(k) << ": relative error " << err);
      CHECK(err <= 1e-40);
    }
    WARN("float50 backward vs dual<float50> autodiff, " << test::describe(c) << ": max relative error "
                                                        << test::max_block_error(analytic, ad));
  }
}
