// suptok/process.hpp: the process view (docs/math.md section 5): index sets, token models (Markov
// chain, causal transformer LM, bidirectional counterexample), exact finite-dimensional
// distributions, the Kolmogorov consistency check, sampling, Monte-Carlo estimates and the
// goodness-of-fit test. statistics.hpp needs Boost.Math and is included when Boost is available.
#pragma once

#include "process/attention_lm.hpp"
#include "process/consistency.hpp"
#include "process/fdd.hpp"
#include "process/index_set.hpp"
#include "process/markov_chain.hpp"
#include "process/model.hpp"
#include "process/sampling.hpp"
#if __has_include(<boost/math/distributions/chi_squared.hpp>)
#include "process/statistics.hpp"
#endif
