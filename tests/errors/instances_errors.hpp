// Explicit instances of the heavy double-precision templates that several test_errors translation
// units (and the fuzz target replayed in fuzz_replay.cpp) call and the shared instances
// (tests/common/instances.hpp: attention, likelihood, the layer's blocks, barrier and analysis) do
// not hold: the layer's residuals, the margins and SVD-based block functions and the sampler.
// Declared `extern` here and compiled once in instances_errors.cpp.
#pragma once

#include <suptok/suptok.hpp>

#include "instances.hpp"

#define SUPTOK_ERRORS_INSTANCES(EXTERN)                                                                          \
  EXTERN template suptok::matrix<double> suptok::residuals<double>(suptok::const_ref<double>,                     \
                                                                   const suptok::layer<double>&,                 \
                                                                   const suptok::attention_params&);             \
  EXTERN template std::vector<suptok::token_margin<double>> suptok::token_margins<double>(                       \
      suptok::const_ref<double>, const suptok::heads<double>&, const suptok::attention_params&);                 \
  EXTERN template suptok::token_margin<double> suptok::block_margin<double>(                                     \
      const Eigen::Ref<const suptok::matrix<double>>&);                                                          \
  EXTERN template suptok::matrix<double> suptok::cofactor<double>(const Eigen::Ref<const suptok::matrix<double>>&); \
  EXTERN template double suptok::barrier_block<double>(const Eigen::Ref<const suptok::matrix<double>>&,          \
                                                       const suptok::barrier_params&);                           \
  EXTERN template suptok::matrix<double> suptok::barrier_block_backward<double>(                                 \
      const Eigen::Ref<const suptok::matrix<double>>&, const suptok::barrier_params&);                           \
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
