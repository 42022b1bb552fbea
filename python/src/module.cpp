// python/src/module.cpp: the extension module suptok._native (pybind11 and torch tensors); the
// Python package (python/suptok) checks dtypes, devices and ranks and calls it.
//
//   barrier(U, W_Q, W_K, W_V, W_O, settings..., backend, gradients)
//       -> (penalty, [dU, dW_Q, dW_K, dW_V, dW_O])   the list empty unless gradients
//   analyse(U, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, rope_theta, settings..., support, value,
//           margins, form, include_trivial) -> dict of per-token columns (B N rows) and totals
// Shapes: U (N, p) or (B, N, p) (rank 2: one sequence, barrier_penalty; rank 3: a batch,
// barrier_penalty_batch); W_Q (H, d_k, p), W_K (H_kv, d_k, p), W_V (H_kv, d_v, p), W_O (H, p, d_v);
// b_Q (H, d_k), b_K (H_kv, d_k), b_V (H_kv, d_v), b_O (p), each optional. Every tensor is a CPU
// tensor of U's dtype, float32 or float64 (read after .contiguous()). Gradients come back in the
// inputs' shapes, the penalty as a 0-dim tensor of U's dtype.
// Errors: suptok::error derives from std::invalid_argument, which pybind11 raises as ValueError
// with the library's message ("suptok: <argument>: ...").
#include <torch/extension.h>

#include <suptok/core/error.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "native.hpp"

namespace suptok_python {
namespace {

// The n slices (rows, cols) of a rank-3 tensor (n, rows, cols), or a rank-2 tensor as one slice.
template <class S>
std::vector<matrix<S>> matrices_of(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  const bool one = c.dim() == 2;
  const long n = one ? 1 : c.size(0), rows = c.size(one ? 0 : 1), cols = c.size(one ? 1 : 2);
  std::vector<matrix<S>> out;
  for (long i = 0; i < n; ++i)
    out.emplace_back(Eigen::Map<const matrix<S>>(c.data_ptr<S>() + i * rows * cols, rows, cols));
  return out;
}

// The rows of a rank-2 tensor (n, d) as n vectors, or none for an absent (None) bias.
template <class S>
std::vector<vector<S>> vectors_of(const c10::optional<at::Tensor>& t) {
  std::vector<vector<S>> out;
  if (!t) return out;
  for (const matrix<S>& m : matrices_of<S>(t->dim() == 1 ? t->unsqueeze(0) : *t))
    for (long r = 0; r < m.rows(); ++r) out.emplace_back(m.row(r).transpose());
  return out;
}

// A tensor (n, rows, cols) from n equal-shaped matrices (squeeze: one matrix, (rows, cols)).
template <class S>
at::Tensor tensor_of(const std::vector<matrix<S>>& ms, bool squeeze, at::ScalarType dtype) {
  const long rows = ms.front().rows(), cols = ms.front().cols();
  at::Tensor t = squeeze ? at::empty({rows, cols}, at::dtype(dtype))
                         : at::empty({long(ms.size()), rows, cols}, at::dtype(dtype));
  for (std::size_t i = 0; i < ms.size(); ++i)
    std::memcpy(t.data_ptr<S>() + i * rows * cols, ms[i].data(), sizeof(S) * std::size_t(rows * cols));
  return t;
}

template <class S>
weights<S> heads_of(const at::Tensor& W_Q, const at::Tensor& W_K, const at::Tensor& W_V, const at::Tensor& W_O) {
  return {matrices_of<S>(W_Q), matrices_of<S>(W_K), matrices_of<S>(W_V), matrices_of<S>(W_O), {}, {}, {}, {}, 0};
}

template <class S>
py::tuple barrier_typed(const at::Tensor& U, const at::Tensor& W_Q, const at::Tensor& W_K, const at::Tensor& W_V,
                        const at::Tensor& W_O, const settings& s, const std::string& backend, bool gradients) {
  suptok::detail::require(backend == "simd" || backend == "cpu", "backend", "expected 'simd' or 'cpu', got '",
                          backend, "'");
  const bool batch = U.dim() == 3;
  const std::vector<matrix<S>> Us = matrices_of<S>(U);
  const weights<S> w = heads_of<S>(W_Q, W_K, W_V, W_O);
  barrier_result<S> r;
  {
    py::gil_scoped_release unlocked;  // the library runs its own OpenMP threads
    r = backend == "simd" ? barrier_simd<S>(Us, batch, w, s, gradients) : barrier_reference<S>(Us, batch, w, s, gradients);
  }
  const at::ScalarType dtype = U.scalar_type();
  const at::Tensor penalty = at::scalar_tensor(double(r.penalty), at::dtype(dtype));
  py::list grads;
  if (gradients) {
    grads.append(tensor_of<S>(r.dU, !batch, dtype));
    for (const std::vector<matrix<S>>* dW : {&r.dW.W_Q, &r.dW.W_K, &r.dW.W_V, &r.dW.W_O})
      grads.append(tensor_of<S>(*dW, false, dtype));
  }
  return py::make_tuple(penalty, grads);
}

py::tuple barrier(const at::Tensor& U, const at::Tensor& W_Q, const at::Tensor& W_K, const at::Tensor& W_V,
                  const at::Tensor& W_O, const std::string& mask, const std::string& policy, double eps, double z0,
                  double temperature, const std::string& backend, bool gradients) {
  const settings s{mask, policy, eps, z0, temperature};
  if (U.scalar_type() == at::kFloat) return barrier_typed<float>(U, W_Q, W_K, W_V, W_O, s, backend, gradients);
  return barrier_typed<double>(U, W_Q, W_K, W_V, W_O, s, backend, gradients);
}

// A per-token column of B N values as a tensor (B, N), or (N) for one sequence; T has the size of
// dtype's elements (int64 for kLong, char holding 0 or 1 for kBool).
template <class T>
at::Tensor column(const std::vector<T>& values, at::ScalarType dtype, long B, bool batch) {
  at::Tensor t = at::empty({long(values.size())}, at::dtype(dtype));
  std::memcpy(t.data_ptr(), values.data(), sizeof(T) * values.size());
  return batch ? t.view({B, -1}) : t;
}

template <class S>
py::dict analyse_typed(const at::Tensor& U, const weights<S>& w, const analysis_settings& s) {
  const bool batch = U.dim() == 3;
  const std::vector<matrix<S>> Us = matrices_of<S>(U);
  const long B = long(Us.size());
  suptok::detail::require(B > 0, "U", "expected at least one sequence, got a batch of 0");
  analysis_table<S> t;
  {
    py::gil_scoped_release unlocked;
    t = analyse<S>(Us, w, s);
  }
  const at::ScalarType dtype = U.scalar_type();
  py::dict out;
  out["position"] = column(t.position, at::kLong, B, batch);
  out["sign"] = column(t.sign, at::kLong, B, batch);
  out["log_det"] = column(t.log_det, dtype, B, batch);
  out["b"] = column(t.b, dtype, B, batch);
  out["signed_margin"] = column(t.signed_margin, dtype, B, batch);
  out["sigma_min"] = column(t.sigma_min, dtype, B, batch);
  out["kappa"] = column(t.kappa, dtype, B, batch);
  out["support"] = column(t.support, at::kBool, B, batch);
  py::dict totals;
  totals["penalty"] = double(t.penalty);
  totals["support_count"] = t.support_count;
  totals["infeasible_count"] = t.infeasible_count;
  totals["counted_tokens"] = t.counted_tokens;
  out["totals"] = totals;
  out["form"] = t.form;
  return out;
}

template <class S>
py::dict analyse_layer(const at::Tensor& U, const at::Tensor& W_Q, const at::Tensor& W_K, const at::Tensor& W_V,
                       const at::Tensor& W_O, const c10::optional<at::Tensor>& b_Q,
                       const c10::optional<at::Tensor>& b_K, const c10::optional<at::Tensor>& b_V,
                       const c10::optional<at::Tensor>& b_O, double rope_theta, const analysis_settings& s) {
  weights<S> w = heads_of<S>(W_Q, W_K, W_V, W_O);
  w.b_Q = vectors_of<S>(b_Q);
  w.b_K = vectors_of<S>(b_K);
  w.b_V = vectors_of<S>(b_V);
  if (b_O) w.b_O = vectors_of<S>(b_O).front();
  w.rope_theta = rope_theta;
  return analyse_typed<S>(U, w, s);
}

py::dict analyse_tensors(const at::Tensor& U, const at::Tensor& W_Q, const at::Tensor& W_K, const at::Tensor& W_V,
                         const at::Tensor& W_O, const c10::optional<at::Tensor>& b_Q,
                         const c10::optional<at::Tensor>& b_K, const c10::optional<at::Tensor>& b_V,
                         const c10::optional<at::Tensor>& b_O, double rope_theta, const std::string& mask,
                         double temperature, const std::string& policy, double eps, double z0,
                         const std::string& support, double support_value, const std::string& margins,
                         const std::string& form, bool include_trivial) {
  const analysis_settings s{{mask, policy, eps, z0, temperature}, support, support_value, margins, form, include_trivial};
  if (U.scalar_type() == at::kFloat)
    return analyse_layer<float>(U, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, rope_theta, s);
  return analyse_layer<double>(U, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, rope_theta, s);
}

}  // namespace
}  // namespace suptok_python

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace pybind11::literals;
  m.doc() = "suptok's C++ library behind suptok.torch.barrier and suptok.analyse (docs/interop.md)";
  m.def("barrier", &suptok_python::barrier, "U"_a, "W_Q"_a, "W_K"_a, "W_V"_a, "W_O"_a, "mask"_a, "policy"_a, "eps"_a,
        "z0"_a, "temperature"_a, "backend"_a, "gradients"_a);
  m.def("analyse", &suptok_python::analyse_tensors, "U"_a, "W_Q"_a, "W_K"_a, "W_V"_a, "W_O"_a, "b_Q"_a, "b_K"_a,
        "b_V"_a, "b_O"_a, "rope_theta"_a, "mask"_a, "temperature"_a, "policy"_a, "eps"_a, "z0"_a, "support"_a,
        "support_value"_a, "margins"_a, "form"_a, "include_trivial"_a);
}
