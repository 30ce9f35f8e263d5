"""Image helpers: logit pre-transform, dequantisation, bits per dimension with known answers."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import flows, losses
from tfp_flows.images import LogitTransform, bits_per_dim, dequantize
from tfp_flows.testing import autodiff_log_det_jacobian

tfd = tfp.distributions


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_logit_transform_round_trip_and_log_det(dtype):
    bij = LogitTransform(0.05, dtype=dtype)
    x = tf.random.stateless_uniform([4, 3], seed=[1, 2], dtype=dtype)
    z = bij.inverse(x)
    np.testing.assert_allclose(bij.forward(tf.identity(z)), x, rtol=1e-5, atol=1e-6)
    expected = autodiff_log_det_jacobian(lambda t: bij.inverse(tf.identity(t)), x, event_ndims=1)
    got = bij.inverse_log_det_jacobian(tf.identity(x), event_ndims=1)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_bits_per_dim_known_answer(alpha):
    # A logistic base through the logit transform is uniform on an interval of length
    # 1 / (1 - 2 alpha) per dimension, so log q(x) = D log(1 - 2 alpha) and
    # bits/dim = log2(K) - log2(1 - 2 alpha) for every dequantised image.
    num_bins, shape = 16, [4, 4, 2]
    dist = tfd.TransformedDistribution(
        tfd.Sample(tfd.Logistic(tf.constant(0.0, tf.float64), 1.0), shape),
        LogitTransform(alpha, dtype=tf.float64),
    )
    pixels = np.random.default_rng(0).integers(0, num_bins, size=(8, *shape))
    x = dequantize(pixels, num_bins, seed=[3, 4], dtype=tf.float64)
    bpd = bits_per_dim(dist.log_prob(x), num_dims=math.prod(shape), num_bins=num_bins)
    expected = math.log2(num_bins) - math.log2(1.0 - 2.0 * alpha)
    np.testing.assert_allclose(bpd, np.full(8, expected), rtol=1e-9)


def test_dequantize_range_and_errors():
    pixels = np.array([[0, 3], [2, 1]])
    x = dequantize(pixels, 4, seed=[1, 1])
    assert x.dtype == tf.float32
    assert np.all(np.floor(x.numpy() * 4) == pixels)  # each level keeps its bin
    with pytest.raises(ValueError, match="levels must be in"):
        dequantize(np.array([0, 4]), 4)
    with pytest.raises(ValueError, match="non-integer"):
        dequantize(np.array([0.5]), 4)


def test_logit_flow_rejects_raw_pixels():
    dist = flows.real_nvp((4, 4, 1), num_scales=1, steps_per_scale=1, filters=4, logit_alpha=0.05)
    raw = np.random.default_rng(0).integers(0, 256, size=(2, 4, 4, 1))
    with pytest.raises(TypeError, match="dequantis"):
        losses.forward_kl(dist, raw)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.forward_kl(dist, raw.astype(np.float32))
    assert np.isfinite(float(losses.forward_kl(dist, dequantize(raw, 256, seed=[0, 0]))))


def test_the_image_bijectors_live_in_bijectors_and_are_re_exported():
    from tfp_flows import bijectors, images

    assert images.LogitTransform is bijectors.LogitTransform
    assert images.PixelwiseSpline is bijectors.PixelwiseSpline


def test_pixelwise_spline_matches_tfp_and_keeps_its_variables():
    """Its own spline code against `tfb.RationalQuadraticSpline` with the same knots; the
    variable names and shapes of saved models are unchanged."""
    from tfp_flows.bijectors import PixelwiseSpline, transformers
    from tfp_flows.testing import perturb_variables

    bij = PixelwiseSpline([2, 3], num_bins=4, bound=2.0, dtype=tf.float64)
    perturb_variables(bij, 0.7)
    names = [(v.name, tuple(v.shape)) for v in bij.keras_variables]
    assert names == [
        ("bin_widths", (2, 3, 4)),
        ("bin_heights", (2, 3, 4)),
        ("knot_slopes", (2, 3, 3)),
    ]
    widths, heights, slopes = (v.value for v in bij.keras_variables)
    reference = transformers.rational_quadratic_spline(widths, heights, slopes, 2.0)
    x = tf.random.stateless_normal([5, 2, 3], seed=[4, 4], dtype=tf.float64) * 1.5
    np.testing.assert_allclose(bij.forward(x), reference.forward(x), atol=1e-12)
    expected = tf.reduce_sum(reference.forward_log_det_jacobian(x, event_ndims=0), [-2, -1])
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=2), expected, atol=1e-10)
    np.testing.assert_allclose(bij.inverse(tf.identity(x)), reference.inverse(x), atol=1e-9)
