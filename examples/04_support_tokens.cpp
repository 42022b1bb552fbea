// 04_support_tokens: per-token stability margins of a random sequence and its support tokens
// (docs/math.md section 3).
//
// A seeded random sequence (N = 64, p = 8, entries N(0, 1)) through two strict-mask heads with
// d_k = d_v = 8, W_Q and W_V of entries N(0, 0.22^2), W_K = W_Q and W_O = W_V^T (so A_h and V_h
// are positive semi-definite, V C A mostly shrinks J and det J_t < 1, b_t > 0): at this scale
// every token is feasible (det J_t > 0) but some come close to the boundary. Prints, per token, det J_t, log det J_t, the margin
// m_t = sigma_min(J_t), kappa(J_t), 1 - max Re eig(sum_h V_h C_t A_h) and b_t (exact policy), then
// the support tokens under the three rules. Positions are 0-based (docs/math.md's t = position + 1);
// positions 0 and 1 have J = I and are not eligible. Self-checking: the rules are re-derived from
// the table, and every column is checked against the others.
#include <suptok/barrier.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

namespace {

using suptok::matrix;

matrix<double> normal_matrix(suptok::index rows, suptok::index cols, std::mt19937_64& gen, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  matrix<double> m(rows, cols);
  for (suptok::index r = 0; r < rows; ++r)
    for (suptok::index c = 0; c < cols; ++c) m(r, c) = normal(gen);
  return m;
}

int failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("CHECK FAILED: %s\n", what);
    ++failures;
  }
}

void print(const char* rule, const suptok::support_set<double>& s) {
  std::printf("%-34s", rule);
  for (std::size_t i = 0; i < s.positions.size(); ++i) std::printf(" %ld (%.4f)", long(s.positions[i]), s.margins[i]);
  std::printf("\n");
}

}  // namespace

int main() {
  using namespace suptok;
  const suptok::index N = 64, p = 8, H = 2;
  std::mt19937_64 gen(3);
  const matrix<double> U = normal_matrix(N, p, gen, 1.0);  // (N, p)
  heads<double> hs(H);
  for (head<double>& h : hs) {
    h.W_Q = normal_matrix(p, p, gen, 0.22);
    h.W_K = h.W_Q;
    h.W_V = normal_matrix(p, p, gen, 0.22);
    h.W_O = h.W_V.transpose();
  }
  const attention_params ap{mask::strict, 0};
  const barrier_params bp{extension::exact, 1e-8, 1e-2};

  const std::vector<token_margin<double>> ms = token_margins<double>(U, hs, ap);
  const std::vector<double> b = barrier_per_token<double>(U, hs, bp, ap);
  const std::vector<double> margins = margins_of(ms);
  const suptok::index first = first_nontrivial(ap.causal_mask);

  std::printf("N = %ld, p = %ld, H = %ld, strict mask, W_Q = W_K, W_V = W_O^T ~ N(0, 0.22^2), seed 3;\npositions 0-based\n\n", long(N),
              long(p), long(H));
  std::printf("%3s %11s %9s %9s %9s %11s %9s\n", "t", "det J_t", "log det", "sigma_min", "kappa", "1-maxRe(VCA)",
              "b_t");
  for (suptok::index t = 0; t < N; ++t) {
    const token_margin<double>& m = ms[std::size_t(t)];
    std::printf("%3ld %11.5f %9.5f %9.5f %9.3f %11.5f %9.5f\n", long(t), m.det, m.log_abs_det, m.sigma_min, m.kappa,
                m.eig_margin, b[std::size_t(t)] + 0.0);  // + 0.0: print -0 as 0
    // column consistency (all to rounding of O(1) quantities)
    check(m.sign == 1, "every token is feasible (det J_t > 0)");
    check(std::abs(m.det - std::exp(m.log_abs_det)) <= 1e-12 * m.det, "det = exp(log det)");
    check(std::abs(b[std::size_t(t)] + m.log_abs_det) <= 1e-12, "exact policy: b_t = -log det J_t");
    check(std::abs(m.kappa - m.sigma_max / m.sigma_min) <= 1e-12 * m.kappa, "kappa = sigma_max / sigma_min");
    // |det| is the product of the singular values: sigma_min^p <= det <= sigma_max^p
    check(std::pow(m.sigma_min, double(p)) <= m.det * (1 + 1e-12) && m.det <= std::pow(m.sigma_max, double(p)) * (1 + 1e-12),
          "sigma_min^p <= det <= sigma_max^p");
    // every eigenvalue lambda has sigma_min <= |lambda|; a real part can be smaller, never larger than sigma_max
    check(m.eig_margin <= m.sigma_max * (1 + 1e-12), "min Re eig <= sigma_max");
  }
  double penalty = 0;
  for (suptok::index t = first; t < N; ++t) penalty += b[std::size_t(t)];
  penalty /= double(N - first);
  std::printf("\nbarrier penalty (mean of b_t over t >= 2): %.6f\n", barrier_penalty<double>(U, hs, bp, ap));
  check(std::abs(barrier_penalty<double>(U, hs, bp, ap) - penalty) <= 1e-12, "penalty = mean of the table's b_t");

  const suptok::index k = 5;
  const double delta = 0.3, q = 0.1;
  std::printf("\nsupport tokens: position (margin), in order of selection\n");
  const support_set<double> a = support_smallest(margins, k, first);
  const support_set<double> w = support_within(margins, delta, first);
  const support_set<double> c = support_barrier_fraction(margins, b, q, first);
  print("(a) k = 5 smallest margins:", a);
  print("(b) margin <= delta = 0.3:", w);
  print("(c) fraction q = 0.1 of sum b_t:", c);

  // Re-derive each rule from the table.
  const auto selected = [](const support_set<double>& s, suptok::index t) {
    return std::find(s.positions.begin(), s.positions.end(), t) != s.positions.end();
  };
  check(a.positions.size() == std::size_t(k), "(a) selects k tokens");
  for (suptok::index t = first; t < N; ++t) {
    const double m = margins[std::size_t(t)];
    if (!selected(a, t)) check(m >= a.margins.back(), "(a) no unselected token has a smaller margin");
    check(selected(w, t) == (m <= delta), "(b) selected exactly when margin <= delta");
  }
  for (std::size_t i = 1; i < a.margins.size(); ++i) check(a.margins[i - 1] <= a.margins[i], "(a) increasing margins");
  check(!c.positions.empty(), "(c) selects at least one token (B > 0 here)");
  if (c.positions.empty()) return 1;
  double total = 0, carried = 0;
  for (suptok::index t = first; t < N; ++t) total += b[std::size_t(t)];
  for (suptok::index t : c.positions) carried += b[std::size_t(t)];
  const double last = b[std::size_t(c.positions.back())];
  std::printf("(c) carries %.6f of B = %.6f (q B = %.6f); without its last token %.6f\n", carried, total, q * total,
              carried - last);
  check(carried >= q * total * (1 - 1e-12) && carried - last < q * total, "(c) smallest prefix carrying q of B");
  for (suptok::index t = first; t < N; ++t)
    if (!selected(c, t)) check(b[std::size_t(t)] <= last, "(c) no unselected token has a larger b_t");

  if (failures) {
    std::printf("\n%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("\nall checks passed\n");
  return 0;
}
