// Explicit instantiation definitions: see instances.hpp.
#include "instances.hpp"

SUPTOK_ATTENTION_INSTANCES(, suptok::float50)
