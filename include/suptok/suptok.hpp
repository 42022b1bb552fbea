// suptok/suptok.hpp: the umbrella header. Opt-in scalar support (multiprecision, autodiff) and
// the fast paths (simd, cuda) have their own headers under support/, simd/ and cuda/.
#pragma once

#include "attention.hpp"
#include "barrier.hpp"
#include "core/backend.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/scalar_traits.hpp"
#include "core/view.hpp"
#include "likelihood.hpp"
#include "process.hpp"
