// Explicit instantiation definitions: see instances.hpp.
#include "instances.hpp"

SUPTOK_LAYER_INSTANCES(, double)
