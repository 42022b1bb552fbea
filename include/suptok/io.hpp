// suptok/io.hpp: files in and out (opt-in; not included by <suptok/suptok.hpp>).
//
//   io/tensor.hpp       io::tensor<T> (shape + data) and its bridges to suptok::matrix<T>
//   io/half.hpp         exact binary16 / bfloat16 -> float
//   io/npy.hpp          NumPy .npy read/write (float32, float64)
//   io/safetensors.hpp  safetensors reader (header first, tensors on demand) and writer
//   io/table.hpp        per-token tables written as CSV and JSON
//
// io/npy.hpp needs only the core library (Eigen); io/safetensors.hpp and io/table.hpp need
// nlohmann-json (Debian nlohmann-json3-dev; CMake: find_package(nlohmann_json 3) and link
// nlohmann_json::nlohmann_json). This umbrella includes all of them.
#pragma once

#include "io/half.hpp"
#include "io/npy.hpp"
#include "io/safetensors.hpp"
#include "io/table.hpp"
#include "io/tensor.hpp"
