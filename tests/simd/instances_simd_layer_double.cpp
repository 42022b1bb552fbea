// Explicit instantiation definitions: see instances_simd.hpp.
#include "instances_simd.hpp"

SUPTOK_SIMD_LAYER_INSTANCES(, double)
