"""A whole multi-scale Glow chain over one 8x8x1 event, checked against autodiff."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import bijectors as fb
from tfp_flows import flows
from tfp_flows.testing import autodiff_log_det_jacobian, check_bijector, perturb_variables


@pytest.fixture(scope="module")
def glow_flow():
    dist = flows.glow((8, 8, 1), levels=2, steps_per_level=2, filters=8, dtype=tf.float64)
    data = tf.random.stateless_uniform([32, 8, 8, 1], seed=[1, 2], dtype=tf.float64)
    fb.initialize_actnorm(dist, data)
    perturb_variables(dist.bijector, 0.05, seed=3)
    return dist, data


def test_chain_has_every_piece(glow_flow):
    dist, _ = glow_flow
    kinds = {type(b).__name__ for b in flows.flow_bijectors(dist)}
    assert {"Squeeze", "ActNorm", "Invertible1x1Conv", "AffineCoupling", "FactorOut"} <= kinds
    levels = [b for b in flows.flow_bijectors(dist) if b.name.startswith("level_")]
    assert len(levels) == 2


def test_log_prob_is_base_log_prob_plus_autodiff_log_det(glow_flow):
    dist, data = glow_flow
    x = data[:6]
    inverse = dist.bijector.inverse
    z = inverse(tf.identity(x))
    expected = dist.distribution.log_prob(z) + autodiff_log_det_jacobian(
        lambda t: inverse(tf.identity(t)), x, event_ndims=3
    )
    np.testing.assert_allclose(dist.log_prob(tf.identity(x)), expected, rtol=1e-9, atol=1e-8)
    assert np.all(np.isfinite(expected.numpy()))


def test_sample_has_the_image_shape(glow_flow):
    dist, _ = glow_flow
    samples, log_prob = dist.experimental_sample_and_log_prob(3, seed=4)
    assert samples.shape == (3, 8, 8, 1)
    np.testing.assert_allclose(log_prob, dist.log_prob(tf.identity(samples)), rtol=1e-8)


def test_whole_chain_passes_the_property_suite(glow_flow):
    dist, data = glow_flow
    check_bijector(dist.bijector, data[:6], modes=("eager", "function"), strict_log_det_shape=True)
