// python/src/barrier_simd.cpp: the barrier operator on the library's xsimd fast path
// (simd/barrier_forward.hpp, simd/barrier_backward.hpp), float and double. Compiled with the ISA
// of suptok::simd (python/CMakeLists.txt), like every translation unit of the extension.
#include <suptok/simd/barrier_backward.hpp>

#include "to_library.hpp"

namespace suptok_python {

template <class S>
barrier_result<S> barrier_simd(const std::vector<matrix<S>>& Us, bool batch, const weights<S>& w, const settings& s,
                               bool gradients) {
  return barrier_on<S>(Us, batch, w, s, gradients, suptok::simd{});
}

template barrier_result<float> barrier_simd<float>(const std::vector<matrix<float>>&, bool, const weights<float>&,
                                                   const settings&, bool);
template barrier_result<double> barrier_simd<double>(const std::vector<matrix<double>>&, bool,
                                                     const weights<double>&, const settings&, bool);

}  // namespace suptok_python
