// suptok/barrier.hpp: the log-barrier penalty with its extension policies and gradients, stability
// margins and support tokens (docs/math.md section 3), reference path. See docs/barrier.md.
// barrier/normalisation.hpp (the p = 1 normalisation integral) needs Boost.Math and is included
// when its headers are available.
#pragma once

#include "barrier/analysis.hpp"
#include "barrier/block.hpp"
#include "barrier/margins.hpp"
#include "barrier/penalty.hpp"
#include "barrier/policy.hpp"
#include "barrier/singular_values.hpp"
#include "barrier/support_tokens.hpp"

#if __has_include(<boost/math/quadrature/exp_sinh.hpp>)
#include "barrier/normalisation.hpp"
#endif
