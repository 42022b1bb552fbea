// suptok/attention.hpp: causal multi-head attention (docs/math.md section 1), forward and backward.
#pragma once

#include "attention/backward.hpp"
#include "attention/forward.hpp"
#include "attention/layer.hpp"
#include "attention/layer_attention.hpp"
#include "attention/mask.hpp"
#include "attention/params.hpp"
