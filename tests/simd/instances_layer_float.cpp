// Explicit instantiation definitions of the reference layer for the simd tests: see
// tests/common/instances.hpp.
#include "instances.hpp"

SUPTOK_LAYER_INSTANCES(, float)
