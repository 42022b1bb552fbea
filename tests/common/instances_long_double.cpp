// Explicit instantiation definitions: see instances.hpp.
#include "instances.hpp"

SUPTOK_ALL_INSTANCES(, long double)
