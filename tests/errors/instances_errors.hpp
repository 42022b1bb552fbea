// Explicit instances of the heavy double-precision templates that several test_errors translation
// units (and the fuzz target replayed in fuzz_replay.cpp) call: the layer forms, the margins and
// SVD-based block functions, analyse and the sampler. Declared `extern` here and compiled once in
// instances_errors.cpp, as tests/common/instances.hpp does for the attention and the likelihood.
#pragma once

#include <suptok/suptok.hpp>

#define SUPTOK_ERRORS_INSTANCES(EXTERN)                                                                          \
  EXTERN template suptok::attention_output<double> suptok::attention_forward<double>(                            \
      suptok::const_ref<double>, const suptok::layer<double>&, const suptok::attention_params&, bool);           \
  EXTERN template suptok::layer_gradients<double> suptok::attention_backward<double>(                            \
      suptok::const_ref<double>, suptok::const_ref<double>, const suptok::layer<double>&,                        \
      const suptok::attention_params&);                                                                          \
  EXTERN template std::vector<suptok::matrix<double>> suptok::jacobian_blocks<double>(                           \
      suptok::const_ref<double>, const suptok::layer<double>&, const suptok::attention_params&);                 \
  EXTERN template suptok::matrix<double> suptok::residuals<double>(suptok::const_ref<double>,                     \
                                                                   const suptok::layer<double>&,                 \
                                                                   const suptok::attention_params&);             \
  EXTERN template std::vector<suptok::matrix<double>> suptok::projected_blocks<double>(                          \
      suptok::const_ref<double>, const suptok::layer<double>&, const suptok::attention_params&);                 \
  EXTERN template suptok::layer_gradients<double> suptok::jacobian_blocks_backward<double>(                      \
      const std::vector<suptok::matrix<double>>&, suptok::const_ref<double>, const suptok::layer<double>&,       \
      const suptok::attention_params&);                                                                          \
  EXTERN template std::vector<double> suptok::barrier_per_token<double>(                                         \
      suptok::const_ref<double>, const suptok::layer<double>&, const suptok::barrier_params&,                    \
      const suptok::attention_params&, suptok::jacobian_form);                                                   \
  EXTERN template double suptok::barrier_penalty<double>(suptok::const_ref<double>, const suptok::layer<double>&, \
                                                         const suptok::barrier_params&,                          \
                                                         const suptok::attention_params&,                        \
                                                         suptok::jacobian_form);                                 \
  EXTERN template suptok::barrier_gradients<double, suptok::layer_gradients<double>>                             \
  suptok::barrier_penalty_backward<double>(suptok::const_ref<double>, const suptok::layer<double>&,              \
                                           const suptok::barrier_params&, const suptok::attention_params&,       \
                                           suptok::jacobian_form);                                               \
  EXTERN template std::vector<suptok::token_margin<double>> suptok::token_margins<double>(                       \
      suptok::const_ref<double>, const suptok::heads<double>&, const suptok::attention_params&);                 \
  EXTERN template suptok::token_margin<double> suptok::block_margin<double>(                                     \
      const Eigen::Ref<const suptok::matrix<double>>&);                                                          \
  EXTERN template suptok::matrix<double> suptok::cofactor<double>(const Eigen::Ref<const suptok::matrix<double>>&); \
  EXTERN template double suptok::barrier_block<double>(const Eigen::Ref<const suptok::matrix<double>>&,          \
                                                       const suptok::barrier_params&);                           \
  EXTERN template suptok::matrix<double> suptok::barrier_block_backward<double>(                                 \
      const Eigen::Ref<const suptok::matrix<double>>&, const suptok::barrier_params&);                           \
  EXTERN template suptok::analysis<double> suptok::analyse<double>(                                              \
      suptok::const_ref<double>, const suptok::layer<double>&, const suptok::analysis_options&);                 \
  EXTERN template suptok::analysis<double> suptok::analyse<double>(                                              \
      suptok::const_ref<double>, const suptok::heads<double>&, const suptok::analysis_options&);                 \
  EXTERN template suptok::sample_result<double> suptok::sample<double>(                                          \
      suptok::const_ref<double>, const suptok::heads<double>&, const suptok::attention_params&,                  \
      const suptok::sampler_options&);                                                                           \
  EXTERN template std::vector<double> suptok::all_roots_1d<double>(                                              \
      suptok::const_ref<double>, const double&, const suptok::heads<double>&, const double&, const double&,      \
      const suptok::attention_params&, int);

// Targets without the shared instances (NO_INSTANCES: test_errors_simd) instantiate what they use.
#ifndef SUPTOK_TEST_NO_EXTERN_INSTANCES
SUPTOK_ERRORS_INSTANCES(extern)
#endif
