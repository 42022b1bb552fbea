// Explicit instantiation definitions: see instances_errors.hpp.
#include "instances_errors.hpp"

SUPTOK_ERRORS_INSTANCES()
