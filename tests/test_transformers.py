"""The elementwise transformers of the autoregressive flows: the spline against TFP's, and the
spline MAF against the affine one where the spline should win."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import datasets, flows, losses, nn
from tfp_flows.bijectors import MaskedAutoregressiveFlow, transformers


def _params(shape, num_bins, scale, seed):
    shape = [*shape, 3 * num_bins - 1]
    return tf.random.stateless_normal(shape, [seed, 1], dtype=tf.float64) * scale


@pytest.mark.parametrize("num_bins", [2, 5, 16])
def test_spline_matches_tfp_rational_quadratic_spline(num_bins):
    """Value and log-derivative, both directions, against `tfb.RationalQuadraticSpline`
    built from the same parameters; points inside, outside and exactly on the bounds."""
    spline = transformers.RationalQuadratic(num_bins, bound=2.5)
    params = _params([400, 3], num_bins, 1.5, seed=num_bins)
    x = tf.random.stateless_normal([400, 3], [7, num_bins], dtype=tf.float64) * 1.8
    x = tf.tensor_scatter_nd_update(
        x, [[0, 0], [1, 1], [2, 2]], tf.constant([2.5, -2.5, 0.0], x.dtype)
    )
    reference = spline.spline(params)
    assert float(tf.reduce_mean(tf.cast(tf.abs(x) > 2.5, tf.float64))) > 0.1  # tails exercised

    y, log_det = spline.forward_and_log_det(x, params)
    np.testing.assert_allclose(y, reference.forward(x), atol=1e-12)
    np.testing.assert_allclose(
        log_det, reference.forward_log_det_jacobian(x, event_ndims=0), atol=1e-10
    )
    y = tf.identity(y)  # no bijector cache between the directions
    x_back, inverse_log_det = spline.inverse_and_log_det(y, params)
    np.testing.assert_allclose(x_back, reference.inverse(y), atol=1e-9)
    np.testing.assert_allclose(x_back, x, atol=1e-9)
    np.testing.assert_allclose(inverse_log_det, -log_det, atol=1e-9)


def test_spline_is_monotone_identity_outside_and_at_zero_params():
    spline = transformers.RationalQuadratic(8, bound=3.0)
    x = tf.linspace(tf.constant(-5.0, tf.float64), 5.0, 2001)[:, None]
    params = _params([1, 1], 8, 2.0, seed=3) + tf.zeros([2001, 1, 23], tf.float64)
    y, _ = spline.forward_and_log_det(x, params)
    assert np.all(np.diff(y.numpy()[:, 0]) > 0)
    outside = np.abs(x.numpy()[:, 0]) >= 3.0
    np.testing.assert_array_equal(y.numpy()[outside], x.numpy()[outside])
    y0, log_det0 = spline.forward_and_log_det(x, tf.zeros_like(params))
    np.testing.assert_allclose(y0, x, atol=1e-12)
    np.testing.assert_allclose(log_det0, 0.0, atol=1e-12)


def test_spline_gradients_are_finite_at_and_beyond_the_bounds():
    spline = transformers.RationalQuadratic(4, bound=1.0)
    x = tf.constant([[-3.0], [-1.0], [-0.999], [0.0], [1.0], [7.0]], tf.float32)
    params = tf.Variable(tf.random.stateless_normal([6, 1, 11], [0, 2]))
    for direction in (spline.forward_and_log_det, spline.inverse_and_log_det):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, log_det = direction(x, params)
            total = tf.reduce_sum(y) + tf.reduce_sum(log_det)
        grads = tape.gradient(total, [x, params])
        assert all(bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads)


def test_bad_transformer_arguments_are_named():
    with pytest.raises(ValueError, match="transformer"):
        transformers.get("cubic")
    with pytest.raises(ValueError, match="num_bins"):
        transformers.RationalQuadratic(num_bins=1)
    with pytest.raises(ValueError, match="bound"):
        transformers.RationalQuadratic(bound=-1.0)
    with pytest.raises(ValueError, match="num_params"):  # an affine MADE for a spline
        MaskedAutoregressiveFlow(nn.MADE(3, (8,), num_params=2), transformer="spline")
    with pytest.raises(ValueError, match="transformer"):
        flows.maf(2, transformer="quadratic")


@pytest.mark.filterwarnings("ignore::tfp_flows.bijectors.PerformanceWarning")
def test_spline_iaf_samples_with_their_log_prob_in_one_pass():
    """`experimental_sample_and_log_prob` (one pass per layer) against `log_prob` of the same
    points through the D-pass inverse, on a trained-looking (perturbed) spline IAF."""
    from tfp_flows.testing import perturb_variables

    dist = flows.iaf(3, num_layers=2, hidden_units=(16,), transformer="spline", num_bins=6)
    perturb_variables(dist, 0.2, seed=4)
    samples, log_prob = dist.experimental_sample_and_log_prob(256, seed=(1, 2))
    np.testing.assert_allclose(log_prob, dist.log_prob(tf.identity(samples)), atol=2e-4)
    assert float(tf.math.reduce_std(log_prob)) > 0.1  # not the identity flow


def test_spline_maf_beats_affine_maf_on_rings_in_the_same_steps():
    """Four concentric rings: an affine MAF of the same depth and width cannot fold the plane
    into rings, a spline MAF can. Same data, steps, seeds and optimizer; held-out gap to the
    true entropy (the data's log-density is known)."""
    toy = datasets.TOY_DENSITIES["rings"]
    data = tf.constant(toy.sample(20_000, seed=1))
    test = toy.sample(5_000, seed=2)
    gaps = {}
    for transformer in ("affine", "spline"):
        tf.random.set_seed(0)
        dist = flows.maf(
            2,
            num_layers=3,
            hidden_units=(64, 64),
            transformer=transformer,
            num_bins=16,
            spline_bound=4.0,
        )

        def loss(dist=dist):
            idx = tf.random.uniform([256], 0, data.shape[0], tf.int32)
            return -tf.reduce_mean(dist.log_prob(tf.gather(data, idx)))

        losses.minimize(loss, dist.trainable_variables, steps=400, learning_rate=3e-3)
        gaps[transformer] = float(np.mean(toy.log_prob(test) - dist.log_prob(test).numpy()))
    print("rings gap after 400 steps:", gaps)
    assert np.isfinite(gaps["spline"])
    assert gaps["spline"] < 0.6 * gaps["affine"]
