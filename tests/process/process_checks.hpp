// Shared references of the process tests: the Markov chain closed form of P_S, a brute-force P_S
// in probability space, and the argument named by a failing call.
#pragma once

#include <suptok/process.hpp>

#include <functional>
#include <string>
#include <vector>

namespace suptok::test {

// P_S(x_S) = (pi^T T^{s_1 - 1})(x_{s_1}) prod_j T^{s_{j+1} - s_j}(x_{s_j}, x_{s_{j+1}}) (docs/math.md section 5),
// in the layout of fdd.hpp (first position most significant).
template <class S>
vector<S> markov_closed_form(const markov_chain<S>& chain, index_set positions) {
  const index K = chain.vocab_size();
  const matrix<S>& T = chain.transition();
  const auto power = [&](int e) {
    matrix<S> M = matrix<S>::Identity(K, K);
    for (int i = 0; i < e; ++i) M = (M * T).eval();
    return M;
  };
  vector<S> dist = vector<S>::Ones(1);  // over the positions of S met so far
  int previous = 0;
  for (int s : positions) {
    vector<S> next(dist.size() * K);
    if (previous == 0) {
      const vector<S> marginal = (chain.initial().transpose() * power(s - 1)).transpose();  // (K)
      next = marginal;
    } else {
      const matrix<S> M = power(s - previous);  // (K, K)
      for (index c = 0; c < dist.size(); ++c)
        for (index y = 0; y < K; ++y) next(c * K + y) = dist(c) * M(c % K, y);
    }
    dist = next;
    previous = s;
  }
  return dist;
}

// P_S by summing prod_t p(x_t | x_<t) over all K^(max S) sequences, in probability space.
template <causal_model M>
vector<scalar_of<M>> brute_force_fdd(const M& model, index_set positions) {
  using S = scalar_of<M>;
  using std::exp;
  const index K = model.vocab_size();
  const int m = positions.max();
  index total = 1, cells = 1;
  for (int i = 0; i < m; ++i) total *= K;
  for (int i = 0; i < positions.size(); ++i) cells *= K;
  vector<S> out = vector<S>::Zero(cells);
  std::vector<token> x(static_cast<std::size_t>(m));
  vector<S> lp;
  for (index c = 0; c < total; ++c) {
    index rest = c;
    for (int t = m - 1; t >= 0; --t, rest /= K) x[std::size_t(t)] = token(rest % K);
    S p = S(1);
    for (int t = 0; t < m; ++t) {
      model.next_log_probs(lp, std::span<const token>(x.data(), std::size_t(t)));
      p *= exp(lp(x[std::size_t(t)]));
    }
    index cell = 0;
    for (int s : positions) cell = cell * K + x[std::size_t(s - 1)];
    out(cell) += p;
  }
  return out;
}

// The argument named by the suptok::error that f throws ("no error" if none).
inline std::string argument_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const suptok::error& e) {
    return e.argument();
  }
  return "no error";
}

// max_i |a_i - b_i|, the difference taken in the scalar type of a and b (then reported in double).
template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  using std::abs;
  using R = typename A::Scalar;
  double d = 0;
  for (index i = 0; i < a.size(); ++i) d = std::max(d, to_double(R(abs(R(a(i)) - R(b(i))))));
  return d;
}

}  // namespace suptok::test
