// suptok-analyze: per-token barrier, signed margins and support tokens of one attention layer of a
// checkpoint, on embeddings from a .npy file, written as JSON and/or CSV.
//
//   suptok-analyze --embeddings U.npy --weights model.safetensors [--config config.json]
//                  [--format suptok|gpt2|llama] [--layer L] [--apply-norm] [--mask strict|inclusive]
//                  [--tau T] [--policy exact|clamp|extended] [--support k=N|delta=X|mass=Q]
//                  [--margins estimate|exact] [--backend reference] [--precision float|double]
//                  [--json FILE] [--csv FILE]
//
// U is (N, p) or (B, N, p), the input of the attention sub-layer (after the layer's input norm;
// --apply-norm applies the checkpoint's norm to a residual-stream input first). The computation
// runs in the precision of the embeddings file (float32 -> float, float64 -> double) unless
// --precision says otherwise. Exit codes: 0 on success, 2 on any bad input (one line on stderr).
#include <suptok/barrier.hpp>
#include <suptok/io.hpp>
#include <suptok/models.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

struct cli_options {
  std::string embeddings, weights, config, format, mask = "strict", policy = "extended", support = "delta=0.1",
                                               margins = "estimate", backend = "reference", precision, json, csv;
  long layer = 0;
  double tau = 0;
  bool apply_norm = false;
};

// A value outside the accepted set: the same one-line error as the library's.
[[noreturn]] void bad(const std::string& argument, const std::string& what) { throw suptok::error(argument, what); }

suptok::support_rule parse_support(const std::string& s) {
  const auto eq = s.find('=');
  if (eq == std::string::npos) bad("--support", "expected k=N, delta=X or mass=Q, got '" + s + "'");
  const std::string key = s.substr(0, eq), value = s.substr(eq + 1);
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size()) bad("--support", "'" + value + "' is not a number");
  if (key == "k") {
    if (v < 0 || v != double(long(v))) bad("--support", "k must be a non-negative integer, got " + value);
    return suptok::support_rule::smallest(suptok::index(v));
  }
  if (key == "delta") return suptok::support_rule::within(v);
  if (key == "mass") return suptok::support_rule::barrier_fraction(v);
  bad("--support", "unknown rule '" + key + "' (k, delta or mass)");
}

suptok::analysis_options analysis_options_of(const cli_options& o, const suptok::attention_params& family) {
  suptok::analysis_options a;
  a.attention = family;
  if (o.mask == "strict") a.attention.causal_mask = suptok::mask::strict;
  else if (o.mask == "inclusive") a.attention.causal_mask = suptok::mask::inclusive;
  else bad("--mask", "expected strict or inclusive, got '" + o.mask + "'");
  if (o.tau != 0) a.attention.temperature = o.tau;
  if (o.policy == "exact") a.barrier.policy = suptok::extension::exact;
  else if (o.policy == "clamp") a.barrier.policy = suptok::extension::clamp;
  else if (o.policy == "extended") a.barrier.policy = suptok::extension::extended;
  else bad("--policy", "expected exact, clamp or extended, got '" + o.policy + "'");
  if (o.margins == "estimate") a.margins = suptok::margin_method::estimate;
  else if (o.margins == "exact") a.margins = suptok::margin_method::exact;
  else bad("--margins", "expected estimate or exact, got '" + o.margins + "'");
  a.support = parse_support(o.support);
  return a;
}

// float for a float32 file, double for a float64 one (the header alone is read).
std::string precision_of_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad("--embeddings", "cannot open '" + path + "'");
  return suptok::io::detail::read_npy_header(in, "'" + path + "': ").elem_size == 4 ? "float" : "double";
}

// Progress on stderr, once the run has taken more than a second.
class progress {
 public:
  explicit progress(std::size_t total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  void done(std::size_t k) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (s < 1.0) return;
    shown_ = true;
    std::fprintf(stderr, "\rsuptok-analyze: sequence %zu of %zu analysed, %.1f s", k, total_, s);
    std::fflush(stderr);
  }
  ~progress() {
    if (shown_) std::fprintf(stderr, "\n");
  }

 private:
  std::size_t total_;
  std::chrono::steady_clock::time_point start_;
  bool shown_ = false;
};

// The per-token columns of one or more sequences' analyses, as the JSON and the CSV write them.
struct token_columns {
  std::vector<long> sequence, position, sign;
  std::vector<double> log_det, b, signed_margin, sigma_min, kappa;
  std::vector<bool> support;

  template <class S>
  void append(long seq, const suptok::analysis<S>& r) {
    for (const suptok::token_analysis<S>& row : r.tokens) {
      sequence.push_back(seq);
      position.push_back(long(row.position));
      sign.push_back(row.sign);
      log_det.push_back(double(row.log_abs_det));
      b.push_back(double(row.b));
      signed_margin.push_back(double(row.signed_margin));
      sigma_min.push_back(double(row.sigma_min));
      kappa.push_back(double(row.kappa));
      support.push_back(row.support);
    }
  }

  void add_to(suptok::io::table& t, bool with_sequence) const {
    if (with_sequence) t.add_column("sequence", sequence);
    t.add_column("position", position);
    t.add_column("sign", sign);
    t.add_column("log_det", log_det);
    t.add_column("b", b);
    t.add_column("signed_margin", signed_margin);
    t.add_column("sigma_min", sigma_min);
    t.add_column("kappa", kappa);
    t.add_column("support", support);
  }
};

template <class S>
int run(const cli_options& o) {
  namespace io = suptok::io;
  namespace models = suptok::models;
  models::adapter_options ao;
  if (!o.format.empty()) {
    ao.format = models::parse_format(o.format);
    if (!ao.format) bad("--format", "expected suptok, gpt2 or llama, got '" + o.format + "'");
  }
  if (o.layer < 0) bad("--layer", "must be non-negative, got " + std::to_string(o.layer));
  ao.layer = o.layer;
  const models::checkpoint_layer<S> ck = models::load_layer<S>(o.weights, o.config, ao);
  const suptok::analysis_options opts = analysis_options_of(o, ck.params);
  const io::tensor<S> U_file = io::read_npy<S>(o.embeddings);
  if (U_file.shape.size() != 2 && U_file.shape.size() != 3)
    bad("--embeddings", "expected shape (N, p) or (B, N, p), got rank " + std::to_string(U_file.shape.size()));
  std::vector<suptok::matrix<S>> Us = io::as_matrices(U_file);
  const suptok::index p = ck.attention.W_Q.front().cols();  // the model width of the layer
  if (U_file.shape.back() != std::size_t(p))
    bad("--embeddings", "tokens of width " + std::to_string(U_file.shape.back()) + ", the layer's width is " +
                            std::to_string(p));
  if (o.apply_norm)
    for (suptok::matrix<S>& U : Us) U = models::apply_norm<S>(U, ck.norm);

  token_columns all;  // every sequence, for the CSV
  double penalty_sum = 0;
  long counted = 0, support_count = 0, infeasible = 0;
  nlohmann::ordered_json sequences = nlohmann::ordered_json::array();
  progress bar(Us.size());
  for (std::size_t i = 0; i < Us.size(); ++i) {
    const suptok::analysis<S> r = suptok::analyse<S>(Us[i], ck.attention, opts);
    token_columns one;
    one.append(long(i), r);
    all.append(long(i), r);
    io::table t;
    one.add_to(t, false);
    t.add_total("penalty", double(r.penalty));
    t.add_total("support_count", long(r.support_count));
    t.add_total("infeasible_count", long(r.infeasible_count));
    nlohmann::ordered_json j = t.to_json();
    j["form"] = suptok::to_string(r.form);  // the Jacobian form used: general or projected
    sequences.push_back(j);
    const long n = long(suptok::detail::counted_tokens(Us[i].rows(), opts.attention.causal_mask));
    penalty_sum += double(r.penalty) * double(n);  // the batch penalty: mean over all counted tokens
    counted += n;
    support_count += long(r.support_count);
    infeasible += long(r.infeasible_count);
    bar.done(i + 1);
  }
  if (!o.csv.empty()) {
    io::table t;
    all.add_to(t, true);
    t.write_csv(o.csv);
  }
  const double penalty = counted == 0 ? 0.0 : penalty_sum / double(counted);
  nlohmann::ordered_json doc;
  doc["weights"] = o.weights;
  doc["format"] = models::to_string(ck.format);
  doc["layer"] = long(ck.layer_index);
  doc["precision"] = sizeof(S) == 4 ? "float" : "double";
  doc["mask"] = o.mask;
  doc["policy"] = o.policy;
  doc["support_rule"] = o.support;
  doc["totals"] = {{"penalty", penalty}, {"support_count", support_count}, {"infeasible_count", infeasible},
                   {"counted_tokens", counted}};
  doc["sequences"] = sequences;
  if (!o.json.empty()) {
    std::ofstream f(o.json);
    if (!f) bad("--json", "cannot write '" + o.json + "'");
    f << doc.dump(1) << "\n";
  }
  std::printf("suptok-analyze: %zu sequence(s), %ld counted tokens, penalty %.9g, %ld support tokens, %ld infeasible\n",
              Us.size(), counted, penalty, support_count, infeasible);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Per-token log-barrier, signed stability margins and support tokens of one attention layer "
               "(Agarwal et al., arXiv:2602.22271; docs/math.md)."};
  app.footer(
      "Example (a GPT-2 layer 0 on 64 residual-stream tokens, the layer's LayerNorm applied first):\n"
      "  suptok-analyze --embeddings resid.npy --weights model.safetensors --config config.json \\\n"
      "                 --layer 0 --apply-norm --support k=5 --json out.json --csv out.csv\n"
      "JSON: {\"totals\": {...}, \"sequences\": [{\"rows\": N, \"columns\": {\"position\", \"sign\", \"log_det\", "
      "\"b\",\n\"signed_margin\", \"sigma_min\", \"kappa\", \"support\"}, \"totals\": {...}}]}; CSV: one row per "
      "(sequence, token).\nExit code 2 on any bad input.");
  cli_options o;
  app.add_option("--embeddings", o.embeddings, "U as .npy, (N, p) or (B, N, p), float32 or float64")->required();
  app.add_option("--weights", o.weights, "safetensors checkpoint")->required();
  app.add_option("--config", o.config, "config.json (GPT-2: n_head; Llama: heads, rope_theta)");
  app.add_option("--format", o.format, "tensor naming: suptok, gpt2 or llama (detected when omitted)");
  app.add_option("--layer", o.layer, "layer index (default 0)");
  app.add_flag("--apply-norm", o.apply_norm, "apply the layer's input norm to U first (U is a residual stream)");
  app.add_option("--mask", o.mask, "strict or inclusive (default strict)");
  app.add_option("--tau", o.tau, "softmax temperature (default sqrt(d_k))");
  app.add_option("--policy", o.policy, "barrier policy: exact, clamp or extended (default extended)");
  app.add_option("--support", o.support, "support rule: k=N smallest, delta=X margins <= X, mass=Q (default delta=0.1)");
  app.add_option("--margins", o.margins, "estimate (inverse iteration, default) or exact (SVD)");
  app.add_option("--backend", o.backend, "reference (the only backend for layers so far)");
  app.add_option("--precision", o.precision, "float or double (default: that of the embeddings file)");
  app.add_option("--json", o.json, "write the per-token table and totals as JSON");
  app.add_option("--csv", o.csv, "write the per-token table as CSV");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "suptok-analyze: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    if (o.backend != "reference")
      bad("--backend", "only 'reference' analyses layers (biases, grouped heads, rotary positions) so far, got '" +
                           o.backend + "'");
    const std::string precision = o.precision.empty() ? precision_of_file(o.embeddings) : o.precision;
    if (precision == "float") return run<float>(o);
    if (precision == "double") return run<double>(o);
    bad("--precision", "expected float or double, got '" + precision + "'");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "suptok-analyze: error: %s\n", e.what());
    return 2;
  }
}
