// python/src/barrier_reference.cpp: the barrier operator on the library's reference path
// (barrier/penalty.hpp), float and double.
#include "to_library.hpp"

namespace suptok_python {

template <class S>
barrier_result<S> barrier_reference(const std::vector<matrix<S>>& Us, bool batch, const weights<S>& w,
                                    const settings& s, bool gradients) {
  return barrier_on<S>(Us, batch, w, s, gradients);
}

template barrier_result<float> barrier_reference<float>(const std::vector<matrix<float>>&, bool,
                                                        const weights<float>&, const settings&, bool);
template barrier_result<double> barrier_reference<double>(const std::vector<matrix<double>>&, bool,
                                                          const weights<double>&, const settings&, bool);

}  // namespace suptok_python
