// suptok/core/config.hpp: the only header that defines macros.
//
//   SUPTOK_HD            marks per-element maths shared by host and device code
//                        (__host__ __device__ under nvcc, nothing elsewhere).
//   SUPTOK_VERSION_*     library version.
//   SUPTOK_HAS_CUDA      1 when compiled by nvcc (CUDA headers may be used).
#pragma once

#define SUPTOK_VERSION_MAJOR 0
#define SUPTOK_VERSION_MINOR 1
#define SUPTOK_VERSION_PATCH 0

#if defined(__CUDACC__)
#define SUPTOK_HD __host__ __device__
#define SUPTOK_HAS_CUDA 1
#else
#define SUPTOK_HD
#define SUPTOK_HAS_CUDA 0
#endif
