// suptok/likelihood.hpp: the latent-noise likelihood (docs/math.md sections 2 and 6): residuals,
// Jacobian blocks and their backward, log-determinants, the noise covariance, the log-likelihood
// with gradients, and the sampler.
#pragma once

#include "likelihood/jacobian.hpp"
#include "likelihood/jacobian_backward.hpp"
#include "likelihood/layer_jacobian.hpp"
#include "likelihood/layer_jacobian_backward.hpp"
#include "likelihood/logdet.hpp"
#include "likelihood/loglik.hpp"
#include "likelihood/noise.hpp"
#include "likelihood/projected.hpp"
#include "likelihood/projected_backward.hpp"
#include "likelihood/residuals.hpp"
#include "likelihood/sampler.hpp"
