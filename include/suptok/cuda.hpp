// suptok/cuda.hpp: the CUDA backend (nvcc only; not included by suptok.hpp). docs/cuda.md
// describes the kernels, their launch geometry and what has been verified on a GPU.
#pragma once

#if !defined(__CUDACC__)
#error "<suptok/cuda.hpp> is compiled by nvcc only: put the code that includes it in a .cu file"
#endif

#include "cuda/attention_backward.cuh"
#include "cuda/attention_forward.cuh"
#include "cuda/barrier_backward.cuh"
#include "cuda/barrier_forward.cuh"
#include "cuda/margins.cuh"
