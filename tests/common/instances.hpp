// Explicit instantiations of the library's workhorse templates for the test scalar types.
//
// Each of them instantiates a dozen Eigen products, which for the multiprecision and autodiff
// scalars costs tens of seconds of compile time. The test translation units see them as
// `extern template` (this header, through test_support.hpp) and the instances are compiled once,
// in parallel, by tests/common/instances_*.cpp into the suptok_test_instances library. The public
// wrappers (validation, defaults) are still instantiated where they are used.
#pragma once

#include <suptok/suptok.hpp>
#include <suptok/support/autodiff.hpp>
#include <suptok/support/multiprecision.hpp>

// The attention forward and backward.
#define SUPTOK_ATTENTION_INSTANCES(EXTERN, S)                                                                \
  EXTERN template void suptok::detail::head_forward<S>(suptok::detail::head_pass<S>&,                        \
                                                       const Eigen::Ref<const suptok::matrix<S>>&,            \
                                                       const suptok::head<S>&, const suptok::attention_params&); \
  EXTERN template void suptok::detail::attention_forward_unchecked<S>(                                       \
      suptok::attention_output<S>&, const Eigen::Ref<const suptok::matrix<S>>&, const suptok::heads<S>&,     \
      const suptok::attention_params&, bool);                                                                 \
  EXTERN template void suptok::detail::attention_backward_accumulate<S>(                                     \
      suptok::matrix<S>&, suptok::heads<S>&, const Eigen::Ref<const suptok::matrix<S>>&,                     \
      const Eigen::Ref<const suptok::matrix<S>>&, const suptok::heads<S>&, const suptok::attention_params&);

// The Jacobian blocks, their backward, the barrier of one sequence and the log-likelihood.
#define SUPTOK_MODEL_INSTANCES(EXTERN, S)                                                                    \
  EXTERN template std::vector<suptok::matrix<S>> suptok::jacobian_blocks<S>(                                 \
      suptok::const_ref<S>, const suptok::heads<S>&, const suptok::attention_params&);                       \
  EXTERN template suptok::attention_gradients<S> suptok::detail::jacobian_blocks_backward_unchecked<S>(      \
      const std::vector<suptok::matrix<S>>&, const Eigen::Ref<const suptok::matrix<S>>&,                     \
      const suptok::heads<S>&, const suptok::attention_params&);                                              \
  EXTERN template suptok::detail::sequence_barrier<S>                                                        \
  suptok::detail::sequence_barrier_forward<S, suptok::heads<S>>(                                             \
      const Eigen::Ref<const suptok::matrix<S>>&, const suptok::heads<S>&, const suptok::barrier_params&,    \
      const suptok::attention_params&, const std::string&, suptok::jacobian_form);                            \
  EXTERN template suptok::attention_gradients<S>                                                             \
  suptok::detail::sequence_barrier_backward<S, suptok::heads<S>>(                                            \
      const suptok::detail::sequence_barrier<S>&, const S&, const Eigen::Ref<const suptok::matrix<S>>&,      \
      const suptok::heads<S>&, const suptok::barrier_params&, const suptok::attention_params&,               \
      const std::string&);                                                                                    \
  EXTERN template suptok::log_likelihood_value<S> suptok::log_likelihood<S>(                                 \
      suptok::const_ref<S>, const suptok::heads<S>&, const suptok::noise_covariance<S>&,                     \
      const suptok::attention_params&);                                                                       \
  EXTERN template suptok::log_likelihood_gradients<S> suptok::log_likelihood_backward<S>(                    \
      suptok::const_ref<S>, const suptok::heads<S>&, const suptok::noise_covariance<S>&,                     \
      const suptok::attention_params&);

// The layer (grouped-query heads, biases, rotary embeddings): attention, the blocks of both forms
// and their backward, the barrier and the analysis. Defined for double in instances_layer_double.cpp
// (the layer tests, test_errors); float and long double, which only the simd tests compare with, in
// tests/simd (instances_simd.hpp declares them).
#define SUPTOK_LAYER_INSTANCES(EXTERN, S)                                                                    \
  EXTERN template suptok::attention_output<S> suptok::attention_forward<S>(                                  \
      suptok::const_ref<S>, const suptok::layer<S>&, const suptok::attention_params&, bool);                 \
  EXTERN template suptok::layer_gradients<S> suptok::attention_backward<S>(                                  \
      suptok::const_ref<S>, suptok::const_ref<S>, const suptok::layer<S>&, const suptok::attention_params&); \
  EXTERN template std::vector<suptok::matrix<S>> suptok::jacobian_blocks<S>(                                 \
      suptok::const_ref<S>, const suptok::layer<S>&, const suptok::attention_params&);                       \
  EXTERN template std::vector<suptok::matrix<S>> suptok::projected_blocks<S>(                                \
      suptok::const_ref<S>, const suptok::layer<S>&, const suptok::attention_params&);                       \
  EXTERN template suptok::layer_gradients<S> suptok::jacobian_blocks_backward<S>(                            \
      const std::vector<suptok::matrix<S>>&, suptok::const_ref<S>, const suptok::layer<S>&,                  \
      const suptok::attention_params&);                                                                       \
  EXTERN template suptok::layer_gradients<S> suptok::projected_blocks_backward<S>(                           \
      const std::vector<suptok::matrix<S>>&, suptok::const_ref<S>, const suptok::layer<S>&,                  \
      const suptok::attention_params&);                                                                       \
  EXTERN template std::vector<S> suptok::barrier_per_token<S>(suptok::const_ref<S>, const suptok::layer<S>&, \
                                                              const suptok::barrier_params&,                 \
                                                              const suptok::attention_params&,               \
                                                              suptok::jacobian_form);                        \
  EXTERN template S suptok::barrier_penalty<S>(suptok::const_ref<S>, const suptok::layer<S>&,                \
                                               const suptok::barrier_params&, const suptok::attention_params&, \
                                               suptok::jacobian_form);                                        \
  EXTERN template suptok::barrier_gradients<S, suptok::layer_gradients<S>> suptok::barrier_penalty_backward<S>( \
      suptok::const_ref<S>, const suptok::layer<S>&, const suptok::barrier_params&,                          \
      const suptok::attention_params&, suptok::jacobian_form);                                                \
  EXTERN template suptok::analysis<S> suptok::analyse<S>(suptok::const_ref<S>, const suptok::layer<S>&,      \
                                                         const suptok::analysis_options&);                    \
  EXTERN template suptok::analysis<S> suptok::analyse<S>(suptok::const_ref<S>, const suptok::heads<S>&,      \
                                                         const suptok::analysis_options&);

#define SUPTOK_ALL_INSTANCES(EXTERN, S) \
  SUPTOK_ATTENTION_INSTANCES(EXTERN, S) \
  SUPTOK_MODEL_INSTANCES(EXTERN, S)

// Test targets compiled with other code-generation flags define SUPTOK_TEST_NO_EXTERN_INSTANCES
// (see suptok_add_test's NO_INSTANCES in tests/CMakeLists.txt).
#ifndef SUPTOK_TEST_NO_EXTERN_INSTANCES
SUPTOK_ALL_INSTANCES(extern, float)
SUPTOK_ALL_INSTANCES(extern, double)
SUPTOK_ALL_INSTANCES(extern, long double)
SUPTOK_ALL_INSTANCES(extern, suptok::float50)
SUPTOK_LAYER_INSTANCES(extern, double)
SUPTOK_ATTENTION_INSTANCES(extern, suptok::dual<double>)
SUPTOK_ATTENTION_INSTANCES(extern, suptok::dual<suptok::float50>)
#endif
