// libFuzzer target: the validation layer of the reference path, in double. The first byte picks
// one public entry point; the rest decodes its arguments: small shapes (N <= 6, p <= 4, up to 3
// heads, d_k and d_v <= 3, each shape sometimes one off), sequences passed through every kind of
// view a const_ref binds to (an owned row-major matrix, a column-major matrix, a row-major Map
// with an outer stride, a Map with an inner stride, a block of a larger matrix, the transpose of a
// column-major matrix; every view over a buffer of exactly the size it needs), values (small
// multiples of 1/32, or NaN, +-inf, +-0, the largest, smallest and denormal doubles, 1e+-300, raw
// bit patterns), masks, policies, noise kinds, forms and rules (invalid enumerator values
// included) and every scalar parameter.
//
// Each call must return or throw suptok::error. A finding is anything else: a crash, a sanitizer
// report, a timeout, another exception escaping (libFuzzer reports it as a crash), and also
//   - an error whose what() is not "suptok: <argument>: <details>",
//   - an error naming an argument that the entry point does not have (allowed names below),
//   - an output argument (the cpu forms of the attention) changed by a call that threw,
//   - a result of the wrong shape.
// tests/errors/fuzz_replay.cpp replays fuzz/corpus/validation/ through this file under the test
// build, with SUPTOK_FUZZ_FAIL throwing instead of aborting.
#include <suptok/suptok.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#ifndef SUPTOK_FUZZ_FAIL
#define SUPTOK_FUZZ_FAIL(message)                                      \
  do {                                                                 \
    std::fprintf(stderr, "validation_fuzz: %s\n", std::string(message).c_str()); \
    std::abort();                                                      \
  } while (0)
#endif

namespace validation_fuzz {

using suptok::index;
using M = suptok::matrix<double>;
using V = suptok::vector<double>;
using H = suptok::heads<double>;
using L = suptok::layer<double>;
using Ref = Eigen::Ref<const M>;

// ---- decoding ----------------------------------------------------------------------------------

// The fuzzer's bytes, read front to back; reads past the end give 0.
class input {
 public:
  input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  int below(int n) { return byte() % n; }
  int signed_byte() { return static_cast<int>(byte()) - 128; }

  // One value: usually a multiple of 1/32 in [-4, 4), else a special one.
  double real() {
    const std::uint8_t code = byte();
    if (code < 200) return (static_cast<int>(code) - 100) / 32.0;
    switch (code % 14) {
      case 0: return std::numeric_limits<double>::quiet_NaN();
      case 1: return std::numeric_limits<double>::infinity();
      case 2: return -std::numeric_limits<double>::infinity();
      case 3: return -0.0;
      case 4: return std::numeric_limits<double>::max();
      case 5: return std::numeric_limits<double>::lowest();
      case 6: return std::numeric_limits<double>::denorm_min();
      case 7: return std::numeric_limits<double>::min();
      case 8: return signed_byte() * 1e300;
      case 9: return signed_byte() * 1e-300;
      case 10: return std::numeric_limits<double>::epsilon();
      case 11: {  // 2^(8k) (1 + m / 256), k in -128..127
        const double mantissa = 1.0 + byte() / 256.0;
        return std::ldexp(mantissa, signed_byte() * 8);
      }
      case 12: {
        std::uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = bits << 8 | byte();
        double x;
        std::memcpy(&x, &bits, sizeof x);
        return x;
      }
      default: return 1e-8;
    }
  }

  // A positive parameter: usually a plain one, sometimes any value.
  double positive(double usual) {
    const int c = below(4);
    return c == 0 ? usual : c == 1 ? (1 + byte()) / 64.0 : real();
  }

  // A dimension: usually `want`, sometimes one off or zero.
  index around(index want) {
    const std::uint8_t c = byte();
    if (c < 220) return want;
    switch (c % 4) {
      case 0: return want + 1;
      case 1: return want > 0 ? want - 1 : 2;
      case 2: return 0;
      default: return want + 2;
    }
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Fills a buffer: "clean" (small multiples of 1/32, scaled by a power of two) or "wild" (any values).
void fill(input& in, double* x, std::size_t n) {
  const std::uint8_t mode = in.byte();
  if (mode < 200) {
    const double scale = std::ldexp(1.0, mode % 12 - 6);
    for (std::size_t i = 0; i < n; ++i) x[i] = (static_cast<int>(in.byte()) - 128) / 32.0 * scale;
  } else {
    for (std::size_t i = 0; i < n; ++i) x[i] = in.real();
  }
}

M matrix_of(input& in, index rows, index cols) {
  M m(rows, cols);
  fill(in, m.data(), static_cast<std::size_t>(m.size()));
  return m;
}

V vector_of(input& in, index n) {
  V v(n);
  fill(in, v.data(), static_cast<std::size_t>(v.size()));
  return v;
}

// A read-only (rows, cols) argument held in one of six layouts; `ref` is what the library sees.
// Not copyable: the Ref may point into this object.
class view {
 public:
  view(input& in, index rows, index cols) {
    const int layout = in.below(6);
    switch (layout) {
      case 0:  // an owned row-major matrix
        owned_ = matrix_of(in, rows, cols);
        ref_.emplace(owned_);
        break;
      case 1: {  // a column-major matrix (the Ref holds a row-major copy)
        column_major_.resize(rows, cols);
        fill(in, column_major_.data(), static_cast<std::size_t>(column_major_.size()));
        ref_.emplace(column_major_);
        break;
      }
      case 2: {  // row-major rows `stride` apart in a buffer of exactly (rows - 1) stride + cols values
        const index stride = cols + in.below(3);
        buffer_.resize(rows > 0 && cols > 0 ? static_cast<std::size_t>((rows - 1) * stride + cols) : 0);
        fill(in, buffer_.data(), buffer_.size());
        ref_.emplace(Eigen::Map<const M, 0, Eigen::OuterStride<>>(buffer_.data(), rows, cols, Eigen::OuterStride<>(stride)));
        break;
      }
      case 3: {  // every other element of each row: an inner stride of 2 (the Ref holds a copy)
        const index outer = 2 * cols + in.below(2);
        buffer_.resize(rows > 0 && cols > 0 ? static_cast<std::size_t>((rows - 1) * outer + 2 * (cols - 1) + 1) : 0);
        fill(in, buffer_.data(), buffer_.size());
        ref_.emplace(Eigen::Map<const M, 0, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>(
            buffer_.data(), rows, cols, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(outer, 2)));
        break;
      }
      case 4: {  // a block of a larger row-major matrix (at (0, 0) when empty: Eigen would offset a null pointer)
        const bool empty = rows == 0 || cols == 0;
        const index r0 = in.below(2) * !empty, c0 = in.below(2) * !empty, r1 = in.below(2), c1 = in.below(2);
        owned_ = matrix_of(in, rows + r0 + r1, cols + c0 + c1);
        ref_.emplace(owned_.block(r0, c0, rows, cols));
        break;
      }
      default: {  // the transpose of a column-major (cols, rows) matrix: row-major, bound directly
        column_major_.resize(cols, rows);
        fill(in, column_major_.data(), static_cast<std::size_t>(column_major_.size()));
        ref_.emplace(column_major_.transpose());
        break;
      }
    }
  }
  view(const view&) = delete;
  view& operator=(const view&) = delete;

  const Ref& ref() const { return *ref_; }
  index rows() const { return ref_->rows(); }
  index cols() const { return ref_->cols(); }

 private:
  M owned_;
  Eigen::MatrixXd column_major_;
  std::vector<double> buffer_;
  std::optional<Ref> ref_;
};

suptok::attention_params attention_of(input& in) {
  suptok::attention_params ap;
  const int m = in.below(8);
  ap.causal_mask = m < 3 ? suptok::mask::strict : m < 6 ? suptok::mask::inclusive : static_cast<suptok::mask>(in.signed_byte());
  const int t = in.below(4);
  ap.temperature = t < 2 ? 0.0 : t == 2 ? (1 + in.byte()) / 64.0 : in.real();
  return ap;
}

suptok::barrier_params barrier_of(input& in) {
  suptok::barrier_params bp;
  const int p = in.below(8);
  bp.policy = p < 7 ? static_cast<suptok::extension>(p % 3) : static_cast<suptok::extension>(in.signed_byte());
  bp.eps = in.positive(1e-8);
  bp.z0 = in.positive(1e-2);
  return bp;
}

H heads_of(input& in, index p) {
  H hs(static_cast<std::size_t>(in.below(4)));
  for (auto& h : hs) {
    const index d_k = in.around(1 + in.below(3)), d_v = in.around(1 + in.below(3));
    const index q_cols = in.around(p), k_rows = in.around(d_k), k_cols = in.around(p), v_cols = in.around(p);
    const index o_rows = in.around(p), o_cols = in.around(d_v);
    h.W_Q = matrix_of(in, d_k, q_cols);
    h.W_K = matrix_of(in, k_rows, k_cols);
    h.W_V = matrix_of(in, d_v, v_cols);
    h.W_O = matrix_of(in, o_rows, o_cols);
  }
  return hs;
}

L layer_of(input& in, index p) {
  L l;
  const index kv = in.around(1 + in.below(2)), group = 1 + in.below(2);
  const index q = in.around(kv * group);
  // d_k (even, for rotary embeddings) and d_v of each key/value group; heads past the last group
  // (head counts one off) read the last one.
  std::vector<index> d_k(static_cast<std::size_t>(kv) + 1), d_v(d_k.size());
  for (std::size_t g = 0; g < d_k.size(); ++g) {
    d_k[g] = in.around(2 * (1 + in.below(2)));
    d_v[g] = in.around(1 + in.below(3));
  }
  const auto group_of = [&](index h) { return std::min(static_cast<std::size_t>(h / group), d_k.size() - 1); };
  for (index g = 0; g < kv; ++g) {
    const index k_cols = in.around(p), v_cols = in.around(p);
    l.W_K.push_back(matrix_of(in, d_k[group_of(g * group)], k_cols));
    l.W_V.push_back(matrix_of(in, d_v[group_of(g * group)], v_cols));
  }
  for (index h = 0; h < q; ++h) {
    const index q_rows = in.around(d_k[group_of(h)]), q_cols = in.around(p);
    const index o_rows = in.around(p), o_cols = in.around(d_v[group_of(h)]);
    l.W_Q.push_back(matrix_of(in, q_rows, q_cols));
    l.W_O.push_back(matrix_of(in, o_rows, o_cols));
  }
  const int biases = in.byte();
  if (biases & 1)
    for (index h = 0, n = in.around(q); h < n; ++h) l.b_Q.push_back(vector_of(in, in.around(d_k[group_of(h)])));
  if (biases & 2)
    for (index g = 0, n = in.around(kv); g < n; ++g) l.b_K.push_back(vector_of(in, in.around(d_k[group_of(g * group)])));
  if (biases & 4)
    for (index g = 0, n = in.around(kv); g < n; ++g) l.b_V.push_back(vector_of(in, in.around(d_v[group_of(g * group)])));
  if (biases & 8) l.b_O = vector_of(in, in.around(p));
  const int rope = in.below(4);
  l.rope_theta = rope < 2 ? 0.0 : rope == 2 ? 10000.0 : in.real();
  return l;
}

// Sequence sizes: N in 0..6, p in 0..4.
struct sizes {
  index N, p;
};
sizes sizes_of(input& in) { return {in.below(7), in.below(5)}; }

// ---- checking ----------------------------------------------------------------------------------

// Whether `argument` matches one of the allowed names; a name ending in '*' is a prefix.
bool allowed(const std::string& argument, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    if (!n.empty() && n.back() == '*') {
      if (argument.compare(0, n.size() - 1, n, 0, n.size() - 1) == 0) return true;
    } else if (argument == n) {
      return true;
    }
  }
  return false;
}

// With VALIDATION_FUZZ_REPORT_NAMES set in the environment, an error naming an argument the entry
// point does not have is printed (once per entry point and name) instead of failing: a survey of
// every such name in one run.
bool report_names() {
  static const bool report = std::getenv("VALIDATION_FUZZ_REPORT_NAMES") != nullptr;
  return report;
}

// Runs f; a suptok::error must be well formed and name one of `names`. Returns whether f returned.
template <class F>
bool run(const char* entry, const std::vector<std::string>& names, F&& f) {
  try {
    f();
    return true;
  } catch (const suptok::error& e) {
    const std::string what = e.what(), head = "suptok: " + e.argument() + ": ";
    if (e.argument().empty() || what.compare(0, head.size(), head) != 0 || what.size() == head.size())
      SUPTOK_FUZZ_FAIL(std::string(entry) + ": malformed error message: " + what);
    if (!allowed(e.argument(), names)) {
      const std::string finding = std::string(entry) + ": error names '" + e.argument() + "', not an argument of it: " + what;
      if (!report_names()) SUPTOK_FUZZ_FAIL(finding);
      static std::vector<std::string> seen;
      const std::string key = std::string(entry) + " " + e.argument();
      if (std::find(seen.begin(), seen.end(), key) == seen.end()) {
        seen.push_back(key);
        std::fprintf(stderr, "validation_fuzz: name finding: %s\n", finding.c_str());
      }
    }
    return false;
  }
}

void require(bool ok, const char* entry, const char* what) {
  if (!ok) SUPTOK_FUZZ_FAIL(std::string(entry) + ": " + what);
}

bool same(const M& a, const M& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0);
}

// The names each family of entry points may report.
const std::vector<std::string> heads_names{"params.*", "U", "heads", "heads[*"};
const std::vector<std::string> layer_names{"params.*", "U", "layer.*"};
std::vector<std::string> plus(std::vector<std::string> names, std::initializer_list<const char*> more) {
  names.insert(names.end(), more.begin(), more.end());
  return names;
}
const std::vector<std::string> barrier_heads_names{"barrier.*", "attention.*", "U", "heads", "heads[*"};
const std::vector<std::string> barrier_layer_names{"barrier.*", "attention.*", "U", "layer.*"};

// ---- entry points ------------------------------------------------------------------------------

// attention_forward / backward with a head stack, value and cpu forms (outputs untouched on error).
void attention_heads(input& in) {
  const sizes s = sizes_of(in);
  const view U(in, s.N, s.p);
  const H hs = heads_of(in, s.p);
  const auto ap = attention_of(in);
  const index dN = in.around(s.N), dp = in.around(s.p);
  const view dMu(in, dN, dp);
  const bool keep = in.byte() & 1;
  run("attention_forward", heads_names, [&] {
    const auto out = suptok::attention_forward<double>(U.ref(), hs, ap, keep);
    require(out.mu.rows() == U.rows() && out.mu.cols() == U.cols() && out.lse.size() == hs.size() &&
                out.weights.size() == (keep ? hs.size() : std::size_t{0}),
            "attention_forward", "result shape");
  });
  suptok::attention_output<double> out;
  out.mu = M::Constant(2, 3, 7.0);
  if (!run("attention_forward(cpu)", heads_names, [&] { suptok::attention_forward<double>(suptok::cpu{}, out, U.ref(), hs, ap); }))
    require(same(out.mu, M::Constant(2, 3, 7.0)) && out.lse.empty(), "attention_forward(cpu)", "output changed by a failed call");
  const auto names = plus(heads_names, {"dMu"});
  run("attention_backward", names, [&] {
    const auto g = suptok::attention_backward<double>(dMu.ref(), U.ref(), hs, ap);
    require(g.dU.rows() == U.rows() && g.dU.cols() == U.cols() && g.dW.size() == hs.size(), "attention_backward",
            "result shape");
  });
  suptok::attention_gradients<double> grads;
  grads.dU = M::Constant(1, 2, 5.0);
  if (!run("attention_backward(cpu)", names,
           [&] { suptok::attention_backward<double>(suptok::cpu{}, grads, dMu.ref(), U.ref(), hs, ap); }))
    require(same(grads.dU, M::Constant(1, 2, 5.0)) && grads.dW.empty(), "attention_backward(cpu)",
            "output changed by a failed call");
}

// The batch forms of the attention and of the residuals.
void attention_batch(input& in) {
  const index p = in.below(5);
  std::vector<M> Us, dMus;
  for (int b = in.below(4); b > 0; --b) {
    const index N = in.below(5), cols = in.around(p);
    Us.push_back(matrix_of(in, N, cols));
  }
  for (index b = 0, n = in.around(static_cast<index>(Us.size())); b < n; ++b) {
    const index N = in.around(b < static_cast<index>(Us.size()) ? Us[static_cast<std::size_t>(b)].rows() : 2);
    const index cols = in.around(p);
    dMus.push_back(matrix_of(in, N, cols));
  }
  const H hs = heads_of(in, p);
  const auto ap = attention_of(in);
  const std::vector<std::string> names{"Us", "Us[*", "params.*", "heads", "heads[*"};
  run("attention_forward_batch", names, [&] {
    require(suptok::attention_forward_batch<double>(Us, hs, ap).size() == Us.size(), "attention_forward_batch", "result size");
  });
  run("attention_backward_batch", plus(names, {"dMus", "dMus[*"}), [&] {
    require(suptok::attention_backward_batch<double>(dMus, Us, hs, ap).dU.size() == Us.size(), "attention_backward_batch",
            "result size");
  });
  run("residuals_batch", names, [&] { suptok::residuals_batch<double>(Us, hs, ap); });
}

// attention_forward / backward with a layer.
void attention_layer(input& in) {
  const sizes s = sizes_of(in);
  const view U(in, s.N, s.p);
  const L l = layer_of(in, s.p);
  const auto ap = attention_of(in);
  const index dN = in.around(s.N), dp = in.around(s.p);
  const view dMu(in, dN, dp);
  run("attention_forward(layer)", layer_names, [&] {
    const auto out = suptok::attention_forward<double>(U.ref(), l, ap, true);
    require(out.mu.rows() == s.N && out.weights.size() == l.W_Q.size(), "attention_forward(layer)", "result shape");
  });
  run("attention_backward(layer)", plus(layer_names, {"dMu"}), [&] {
    const auto g = suptok::attention_backward<double>(dMu.ref(), U.ref(), l, ap);
    require(g.dU.rows() == s.N && g.dW.W_Q.size() == l.W_Q.size(), "attention_backward(layer)", "result shape");
  });
}

// jacobian_blocks, residuals and their backward, with a head stack or a layer; projected_blocks.
void jacobians(input& in) {
  const sizes s = sizes_of(in);
  const view U(in, s.N, s.p);
  const bool with_layer = in.byte() & 1;
  const auto ap = attention_of(in);
  std::vector<M> dJ;
  const index blocks = in.around(s.N);
  const H hs = with_layer ? H() : heads_of(in, s.p);
  const L l = with_layer ? layer_of(in, s.p) : L();
  for (index t = 0; t < blocks; ++t) {
    const index rows = in.around(s.p), cols = in.around(s.p);
    dJ.push_back(matrix_of(in, rows, cols));
  }
  const auto& names = with_layer ? layer_names : heads_names;
  const auto blocks_ok = [&](const std::vector<M>& J) {
    require(static_cast<index>(J.size()) == s.N, "jacobian_blocks", "block count");
    for (const M& b : J) require(b.rows() == s.p && b.cols() == s.p, "jacobian_blocks", "block shape");
  };
  if (with_layer) {
    run("jacobian_blocks(layer)", names, [&] { blocks_ok(suptok::jacobian_blocks<double>(U.ref(), l, ap)); });
    run("residuals(layer)", names, [&] { suptok::residuals<double>(U.ref(), l, ap); });
    run("projected_blocks", names, [&] {
      require(static_cast<index>(suptok::projected_blocks<double>(U.ref(), l, ap).size()) == s.N, "projected_blocks",
              "block count");
    });
    run("jacobian_blocks_backward(layer)", plus(names, {"dJ", "dJ[*"}),
        [&] { suptok::jacobian_blocks_backward<double>(dJ, U.ref(), l, ap); });
  } else {
    run("jacobian_blocks", names, [&] { blocks_ok(suptok::jacobian_blocks<double>(U.ref(), hs, ap)); });
    run("residuals", names, [&] { suptok::residuals<double>(U.ref(), hs, ap); });
    run("jacobian_blocks_backward", plus(names, {"dJ", "dJ[*"}),
        [&] { suptok::jacobian_blocks_backward<double>(dJ, U.ref(), hs, ap); });
  }
}

// log_likelihood and its backward (which may also throw "U" for a singular J_t).
void likelihood(input& in) {
  const sizes s = sizes_of(in);
  const view U(in, s.N, s.p);
  const H hs = heads_of(in, s.p);
  const auto ap = attention_of(in);
  suptok::noise_covariance<double> Psi;
  const int kind = in.below(5);
  Psi.kind = kind < 4 ? static_cast<suptok::noise_kind>(kind % 2) : static_cast<suptok::noise_kind>(in.signed_byte());
  Psi.variance = vector_of(in, in.around(Psi.kind == suptok::noise_kind::diagonal ? s.p : 1)).cwiseAbs();
  if (in.byte() & 1) Psi.variance = -Psi.variance;
  const auto names = plus(heads_names, {"Psi.kind", "Psi.variance"});
  run("log_likelihood", names, [&] { suptok::log_likelihood<double>(U.ref(), hs, Psi, ap); });
  run("log_likelihood_backward", names, [&] { suptok::log_likelihood_backward<double>(U.ref(), hs, Psi, ap); });
}

// barrier_per_token / penalty / backward with a head stack or a layer.
void barrier(input& in) {
  const sizes s = sizes_of(in);
  const view U(in, s.N, s.p);
  const bool with_layer = in.byte() & 1;
  const H hs = with_layer ? H() : heads_of(in, s.p);
  const L l = with_layer ? layer_of(in, s.p) : L();
  const auto bp = barrier_of(in);
  const auto ap = attention_of(in);
  if (with_layer) {
    run("barrier_per_token(layer)", barrier_layer_names, [&] {
      require(static_cast<index>(suptok::barrier_per_token<double>(U.ref(), l, bp, ap).size()) == s.N,
              "barrier_per_token(layer)", "result size");
    });
    run("barrier_penalty(layer)", barrier_layer_names, [&] { suptok::barrier_penalty<double>(U.ref(), l, bp, ap); });
    run("barrier_penalty_backward(layer)", barrier_layer_names,
        [&] { suptok::barrier_penalty_backward<double>(U.ref(), l, bp, ap); });
  } else {
    run("barrier_per_token", barrier_heads_names, [&] {
      require(static_cast<index>(suptok::barrier_per_token<double>(U.ref(), hs, bp, ap).size()) == s.N,
              "barrier_per_token", "result size");
    });
    run("barrier_penalty", barrier_heads_names, [&] { suptok::barrier_penalty<double>(U.ref(), hs, bp, ap); });
    run("barrier_penalty_backward", barrier_heads_names,
        [&] { suptok::barrier_penalty_backward<double>(U.ref(), hs, bp, ap); });
  }
}

// The batch and layer-stack penalties and their backward.
void barrier_stacks(input& in) {
  const index p = in.below(5);
  std::vector<M> Us;
  std::vector<H> stacks;
  for (int b = in.below(4); b > 0; --b) {
    const index N = in.below(5), cols = in.around(p);
    Us.push_back(matrix_of(in, N, cols));
    stacks.push_back(heads_of(in, in.around(p)));
  }
  const H hs = heads_of(in, p);
  const auto bp = barrier_of(in);
  const auto ap = attention_of(in);
  const std::vector<std::string> batch_names{"barrier.*", "attention.*", "Us", "Us[*", "heads", "heads[*"};
  run("barrier_penalty_batch", batch_names, [&] { suptok::barrier_penalty_batch<double>(Us, hs, bp, ap); });
  run("barrier_penalty_batch_backward", batch_names, [&] { suptok::barrier_penalty_batch_backward<double>(Us, hs, bp, ap); });
  std::vector<suptok::barrier_layer<double>> layers;
  for (std::size_t b = 0; b < Us.size(); ++b) layers.push_back({Us[b], stacks[b]});
  const std::vector<std::string> layer_names{"barrier.*", "attention.*", "layers", "layers[*"};
  run("barrier_penalty_layers", layer_names, [&] { suptok::barrier_penalty_layers<double>(layers, bp, ap); });
  run("barrier_penalty_layers_backward", layer_names, [&] {
    require(suptok::barrier_penalty_layers_backward<double>(layers, bp, ap).grad.size() == layers.size(),
            "barrier_penalty_layers_backward", "result size");
  });
}

// One block and the scalar forms of the barrier.
void blocks(input& in) {
  const index rows = in.below(5), cols = in.around(rows);
  const view J(in, rows, cols);
  const auto bp = barrier_of(in);
  run("barrier_block", {"barrier.*", "J"}, [&] { suptok::barrier_block<double>(J.ref(), bp); });
  run("barrier_block_backward", {"barrier.*", "J"}, [&] { suptok::barrier_block_backward<double>(J.ref(), bp); });
  run("cofactor", {"J"}, [&] { suptok::cofactor<double>(J.ref()); });
  run("block_margin", {"J"}, [&] { suptok::block_margin<double>(J.ref()); });
  const suptok::signed_log_det<double> ld{in.below(8) - 3, in.real()};
  run("barrier_from_log_det", {"barrier.*", "ld"}, [&] { suptok::barrier_from_log_det(ld, bp); });
  const double z = in.real();
  run("barrier_value", {"barrier.*", "z"}, [&] { suptok::barrier_value(z, bp); });
  run("barrier_slope", {"barrier.*", "z"}, [&] { suptok::barrier_slope(z, bp); });
}

// token_margins, then the support rules on its signed margins.
void margins(input& in) {
  const sizes s = sizes_of(in);
  const view U(in, s.N, s.p);
  const H hs = heads_of(in, s.p);
  const auto ap = attention_of(in);
  const index k = in.signed_byte() / 16;
  std::vector<suptok::token_margin<double>> ms;
  if (!run("token_margins", heads_names, [&] { ms = suptok::token_margins<double>(U.ref(), hs, ap); })) return;
  require(static_cast<index>(ms.size()) == s.N, "token_margins", "result size");
  const std::vector<double> m = suptok::margins_of(ms);
  const index first = suptok::first_nontrivial(ap.causal_mask) < s.N ? suptok::first_nontrivial(ap.causal_mask) : s.N;
  run("support_smallest", {"margins[*", "first", "k"}, [&] { suptok::support_smallest(m, k, first); });
}

// The support rules on any margins, b, k, delta, q and first.
void support(input& in) {
  std::vector<double> m(static_cast<std::size_t>(in.below(8))), b(static_cast<std::size_t>(in.around(static_cast<index>(m.size()))));
  fill(in, m.data(), m.size());
  fill(in, b.data(), b.size());
  const index k = in.signed_byte() / 16, first = in.signed_byte() / 16;
  const double delta = in.real(), q = in.real();
  const auto check = [&](const suptok::support_set<double>& r) {
    require(r.positions.size() == r.margins.size(), "support", "positions and margins differ in length");
    for (index t : r.positions) require(t >= first && t < static_cast<index>(m.size()), "support", "position out of range");
  };
  run("support_smallest", {"margins[*", "first", "k"}, [&] { check(suptok::support_smallest(m, k, first)); });
  run("support_within", {"margins[*", "first", "delta"}, [&] { check(suptok::support_within(m, delta, first)); });
  run("support_barrier_fraction", {"margins[*", "first", "b", "b[*", "q"},
      [&] { check(suptok::support_barrier_fraction(m, b, q, first)); });
}

// analyse on a layer or a head stack, with any options.
void analysis(input& in) {
  const sizes s = sizes_of(in);
  const view U(in, s.N, s.p);
  const bool with_layer = in.byte() & 1;
  const H hs = with_layer ? H() : heads_of(in, s.p);
  const L l = with_layer ? layer_of(in, s.p) : L();
  suptok::analysis_options o;
  o.attention = attention_of(in);
  o.barrier = barrier_of(in);
  o.form = static_cast<suptok::jacobian_form>(in.below(4));
  o.margins = static_cast<suptok::margin_method>(in.below(3));
  o.iteration.max_iterations = in.below(24) - 2;
  o.iteration.tolerance = in.positive(1e-10);
  o.support.rule = static_cast<suptok::support_rule::kind>(in.below(4));
  o.support.k = in.signed_byte() / 16;
  o.support.delta = in.real();
  o.support.q = in.real();
  o.include_trivial = in.byte() & 1;
  const std::vector<std::string> names{"options.*", "U", "layer.*", "heads", "heads[*"};
  run("analyse", names, [&] {
    const auto r = with_layer ? suptok::analyse<double>(U.ref(), l, o) : suptok::analyse<double>(U.ref(), hs, o);
    require(static_cast<index>(r.tokens.size()) == s.N && r.support_count <= s.N && r.infeasible_count <= s.N, "analyse",
            "result shape");
  });
}

// sample and all_roots_1d.
void sampler(input& in) {
  const sizes s{in.below(5), in.below(4)};  // at most 4 tokens of p <= 3: Newton steps are the cost
  const view eps(in, s.N, s.p);
  const H hs = heads_of(in, in.around(s.p));
  const auto ap = attention_of(in);
  suptok::sampler_options o;
  o.max_iterations = in.below(7) - 2;
  o.tolerance = in.below(2) ? 0.0 : in.real();
  run("sample", {"params.*", "heads", "heads[*", "options.*", "eps"}, [&] {
    const auto r = suptok::sample<double>(eps.ref(), hs, ap, o);
    require(r.U.rows() == s.N && static_cast<index>(r.tokens.size()) == s.N, "sample", "result shape");
  });
  const index past_rows = in.below(4), past_cols = in.around(1);
  const view past(in, past_rows, past_cols);
  const double eps_t = in.real(), lo = in.real(), hi = in.real();
  const int grid = in.below(20) - 2;
  run("all_roots_1d", {"params.*", "heads", "heads[*", "past", "eps_t", "lo", "grid"}, [&] {
    const auto roots = suptok::all_roots_1d<double>(past.ref(), eps_t, hs, lo, hi, ap, grid);
    require(std::is_sorted(roots.begin(), roots.end()), "all_roots_1d", "roots not in increasing order");
  });
}

// p1_jacobian and p1_residual (the normalisation integral itself is too slow to fuzz).
void p1(input& in) {
  const index past_rows = in.below(4), past_cols = in.around(1);
  const view past(in, past_rows, past_cols);
  const H hs = heads_of(in, in.around(1));
  const auto ap = attention_of(in);
  const double u = in.real();
  const std::vector<std::string> names{"params.*", "past", "heads", "heads[*", "u"};
  run("p1_jacobian", names, [&] { suptok::p1_jacobian(past.ref(), hs, u, ap); });
  run("p1_residual", names, [&] { suptok::p1_residual(past.ref(), hs, u, ap); });
}

// index_set, a Markov chain and the enumeration on it.
void process(input& in) {
  const int a = in.signed_byte(), b = in.signed_byte(), c = in.signed_byte();
  run("index_set{...}", {"positions"}, [&] { (void)suptok::index_set{a, b, c}; });
  run("index_set::single", {"i"}, [&] { (void)suptok::index_set::single(a); });
  run("index_set::first", {"n"}, [&] { (void)suptok::index_set::first(b); });
  std::uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits = bits << 8 | in.byte();
  const auto S = suptok::index_set::from_bits(bits);
  if (S.size() <= 8) {  // 256 subsets at most
    std::uint64_t count = 0;
    const auto order = in.byte() & 1 ? suptok::subset_order::increasing : suptok::subset_order::decreasing;
    for (suptok::index_set sub : suptok::subsets(S, order)) {
      require(sub.subset_of(S), "subsets", "not a subset");
      ++count;
    }
    require(count == std::uint64_t{1} << S.size(), "subsets", "wrong number of subsets");
  }
  const index K = in.around(1 + in.below(3));
  V pi = vector_of(in, K);
  const index T_rows = in.around(K), T_cols = in.around(K);
  M T = matrix_of(in, T_rows, T_cols);
  if (in.byte() & 1) {  // make it a distribution (most of the time a valid chain)
    pi = pi.cwiseAbs();
    if (pi.sum() > 0) pi /= pi.sum();
    T = T.cwiseAbs();
    for (index r = 0; r < T.rows(); ++r)
      if (T.row(r).sum() > 0) T.row(r) /= T.row(r).sum();
  }
  std::optional<suptok::markov_chain<double>> chain;
  if (!run("markov_chain", {"pi", "T", "T.row(*"}, [&] { chain.emplace(pi, T); })) return;
  std::vector<suptok::token> prefix(static_cast<std::size_t>(in.below(4)));
  for (auto& t : prefix) t = in.signed_byte() / 32;
  V out;
  run("next_log_probs", {"prefix"}, [&] { chain->next_log_probs(out, prefix); });
  const auto positions = suptok::index_set::from_bits(bits & 0x3f);
  const std::uint64_t budget = 1 + in.byte();
  run("log_fdd", {"positions", "n"}, [&] { suptok::log_fdd(*chain, positions, budget); });
  run("enumerate_prefixes", {"n"}, [&] { suptok::enumerate_prefixes(*chain, in.below(8) - 1, budget); });
}

using entry = void (*)(input&);
constexpr entry entries[] = {attention_heads, attention_batch, attention_layer, jacobians, likelihood, barrier,
                             barrier_stacks,  blocks,          margins,         support,   analysis,   sampler,
                             p1,              process};

}  // namespace validation_fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  constexpr std::size_t n = sizeof(validation_fuzz::entries) / sizeof(validation_fuzz::entries[0]);
  validation_fuzz::input in(data + 1, size - 1);
  validation_fuzz::entries[data[0] % n](in);
  return 0;
}
