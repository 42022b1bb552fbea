// Explicit instantiation definitions: see instances.hpp.
#include "instances.hpp"

SUPTOK_MODEL_INSTANCES(, suptok::float50)
