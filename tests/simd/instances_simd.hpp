// Explicit instantiations of the simd kernels for float and double (see tests/common/instances.hpp
// for the pattern). The simd barrier tests built for the default ISA link them from the
// suptok_test_simd_instances library (compiled once, with the same -march and -O2 as the tests);
// each test translation unit then instantiates only its own checks. Targets built for another ISA
// (test_simd_attention: x86-64-v3) define SUPTOK_TEST_NO_EXTERN_INSTANCES and instantiate their own.
#pragma once

#include <suptok/simd.hpp>

#include "instances.hpp"

#define SUPTOK_SIMD_INSTANCES(EXTERN, S)                                                                      \
  EXTERN template void suptok::detail::simd_forward_unchecked<S>(                                            \
      std::span<suptok::attention_output<S>>, std::span<const Eigen::Ref<const suptok::matrix<S>>>,         \
      const suptok::heads<S>&, const suptok::attention_params&, std::vector<suptok::detail::simd_head<S>>&);   \
  EXTERN template void suptok::detail::simd_backward_sequence<S>(                                            \
      suptok::matrix<S>&, suptok::heads<S>&, suptok::detail::simd_head<S>&, suptok::detail::simd_head_grad<S>&, \
      const Eigen::Ref<const suptok::matrix<S>>&, const Eigen::Ref<const suptok::matrix<S>>&,               \
      const suptok::heads<S>&, const suptok::attention_params&, const suptok::attention_output<S>*);        \
  EXTERN template void suptok::detail::simd_barrier_forward_sequence<S>(                                     \
      suptok::detail::simd_barrier_pass<S>&, const Eigen::Ref<const suptok::matrix<S>>&,                     \
      const suptok::heads<S>&, const suptok::barrier_params&, const suptok::attention_params&, bool,          \
      const std::string&);                                                                                    \
  EXTERN template void suptok::detail::simd_barrier_backward_sequence<S>(                                    \
      S&, suptok::matrix<S>&, suptok::heads<S>&, suptok::detail::simd_barrier_pass<S>&,                      \
      const Eigen::Ref<const suptok::matrix<S>>&, const suptok::heads<S>&, const S&,                          \
      const suptok::barrier_params&, const suptok::attention_params&, const std::string&);

// The layer on the fast path (projected form: moments, recursive LU, gradients, margins) and the
// kernels the tests call directly; in instances_simd_layer_<scalar>.cpp.
#define SUPTOK_SIMD_LAYER_INSTANCES(EXTERN, S)                                                                \
  EXTERN template std::vector<S> suptok::barrier_per_token<S>(suptok::simd, suptok::const_ref<S>,            \
                                                              const suptok::layer<S>&,                       \
                                                              const suptok::barrier_params&,                 \
                                                              const suptok::attention_params&);              \
  EXTERN template S suptok::barrier_penalty<S>(suptok::simd, suptok::const_ref<S>, const suptok::layer<S>&,  \
                                               const suptok::barrier_params&, const suptok::attention_params&); \
  EXTERN template suptok::barrier_gradients<S, suptok::layer_gradients<S>> suptok::barrier_penalty_backward<S>( \
      suptok::simd, suptok::const_ref<S>, const suptok::layer<S>&, const suptok::barrier_params&,            \
      const suptok::attention_params&);                                                                       \
  EXTERN template suptok::analysis<S> suptok::analyse<S>(suptok::simd, suptok::const_ref<S>,                 \
                                                         const suptok::layer<S>&, const suptok::analysis_options&); \
  EXTERN template suptok::analysis<S> suptok::analyse<S>(suptok::simd, suptok::const_ref<S>,                 \
                                                         const suptok::heads<S>&, const suptok::analysis_options&); \
  EXTERN template void suptok::detail::simd_projected_moments<S>(                                            \
      suptok::detail::simd_projected_pass<S>&, const Eigen::Ref<const suptok::matrix<S>>&,                   \
      const suptok::layer<S>&, const suptok::attention_params&);                                              \
  EXTERN template void suptok::detail::simd_projected_log_dets<S>(suptok::detail::simd_projected_pass<S>&,   \
                                                                  suptok::mask);                              \
  EXTERN template suptok::signed_log_det<S> suptok::detail::recursive_lu_log_det<S>(                         \
      suptok::detail::row_block<S>, std::vector<suptok::index>&);                                             \
  EXTERN template void suptok::detail::lu_inverse<S>(suptok::matrix<S>&, const std::vector<suptok::index>&, \
                                                     suptok::matrix<S>&);

#ifndef SUPTOK_TEST_NO_EXTERN_INSTANCES
SUPTOK_SIMD_INSTANCES(extern, float)
SUPTOK_SIMD_INSTANCES(extern, double)
SUPTOK_SIMD_LAYER_INSTANCES(extern, float)
SUPTOK_SIMD_LAYER_INSTANCES(extern, double)
// The reference layer one precision higher and in the same precision (double: instances.hpp).
SUPTOK_LAYER_INSTANCES(extern, float)
SUPTOK_LAYER_INSTANCES(extern, long double)
#endif
