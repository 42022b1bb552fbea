// analyse (docs/errors.md, "analyse"): every option it validates, named `options.*`, in the
// documented order: the options first, then U and the layer, then the chosen rule's parameter.
// (The shared arguments U, layer.* and heads[h].* are in sequence_functions.cpp.)
#include "error_cases.hpp"

using namespace suptok;
using namespace suptok::errors_test;

TEST_CASE("analyse names each option", "[errors][analysis]") {
  const M U = seq(5, 3, 7);
  const layer<double> l = gqa_layer();
  const heads<double> hs = stack();
  // analyse(input, l, o) with o the default options after `change`.
  const auto with_input = [&l](auto change, const M& input) {
    analysis_options o;
    change(o);
    return std::function<void()>([o, input, &l] { analyse<double>(input, l, o); });
  };
  const auto with = [&](auto change) { return with_input(change, U); };
  using O = analysis_options;
  check_valid("analyse, exact margins, projected form",
              [&] { analyse<double>(U, l, O{{}, {}, jacobian_form::projected, margin_method::exact}); });
  check_cases({
      {"unknown mask", "options.attention.causal_mask", with([](O& o) { o.attention.causal_mask = static_cast<mask>(6); })},
      {"NaN temperature", "options.attention.temperature", with([](O& o) { o.attention.temperature = NaN; })},
      {"unknown policy", "options.barrier.policy", with([](O& o) { o.barrier.policy = static_cast<extension>(5); })},
      {"eps = 0", "options.barrier.eps", with([](O& o) { o.barrier.eps = 0; })},
      {"infinite z0", "options.barrier.z0", with([](O& o) { o.barrier.z0 = inf; })},
      {"unknown form", "options.form", with([](O& o) { o.form = static_cast<jacobian_form>(3); })},
      {"unknown margin method", "options.margins", with([](O& o) { o.margins = static_cast<margin_method>(2); })},
      {"negative max_iterations", "options.iteration.max_iterations", with([](O& o) { o.iteration.max_iterations = -5; })},
      {"NaN tolerance", "options.iteration.tolerance", with([](O& o) { o.iteration.tolerance = NaN; })},
      {"unknown rule", "options.support", with([](O& o) { o.support.rule = static_cast<support_rule::kind>(3); })},
      {"NaN delta", "options.support.delta", with([](O& o) { o.support = support_rule::within(NaN); })},
      {"infinite delta", "options.support.delta", with([](O& o) { o.support = support_rule::within(inf); })},
      {"q = 0", "options.support.q", with([](O& o) { o.support = support_rule::barrier_fraction(0); })},
      {"NaN q", "options.support.q", with([](O& o) { o.support = support_rule::barrier_fraction(NaN); })},
      // Order: options before U, attention before barrier, U before the rule's parameter.
      {"options before U", "options.form", with_input([](O& o) { o.form = static_cast<jacobian_form>(3); }, M(0, 3))},
      {"attention before barrier", "options.attention.temperature",
       with([](O& o) {
         o.attention.temperature = -1;
         o.barrier.z0 = -1;
       })},
      {"U before k", "U", with_input([](O& o) { o.support = support_rule::smallest(-1); }, M(4, 0))},
      {"layer before k", "layer.W_O", [&] {
         layer<double> bad = l;
         bad.W_O.pop_back();
         analyse<double>(U, bad, O{{}, {}, {}, {}, {}, support_rule::smallest(-1)});
       }},
      {"heads form: attention parameters before U", "options.attention.temperature",
       [&] { analyse<double>(M(0, 3), hs, O{{mask::strict, -1}}); }},
      {"heads form: attention parameters", "options.attention.causal_mask",
       [&] { analyse<double>(U, hs, O{{static_cast<mask>(2), 0}}); }},
      {"heads form: the heads before the barrier", "heads[0].W_K",
       [&] {
         heads<double> h = hs;
         h[0].W_K(0, 0) = NaN;
         analyse<double>(U, h, O{{}, {extension::clamp, -1, 1}});
       }},
  });
  // k beyond the eligible tokens is clamped, not an error; a bad q under another rule is ignored.
  check_valid("k = 100", [&] { analyse<double>(U, l, O{{}, {}, {}, {}, {}, support_rule::smallest(100)}); });
  O other;
  other.support = support_rule::smallest(1);
  other.support.q = NaN;
  check_valid("q = NaN under the smallest rule", [&] { analyse<double>(U, l, other); });
}
