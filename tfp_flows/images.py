"""Image data for flows: uniform dequantisation, the logit pre-transform, and bits per dimension.

Discrete pixels with `K` levels are made continuous by `dequantize`: `x = (k + u) / K` with
`u ~ U[0, 1)`, a point in `[0, 1)`. A flow's density `q(x)` on `[0, 1]^D` then bounds the
discrete likelihood, and

    bits/dim = (-log q(x) + D * log K) / (D * log 2),

which is what papers report. With the logit pre-transform (`LogitTransform` at the data end of
the chain, as `real_nvp(..., logit_alpha=0.05)` builds it), its log-det is part of `log q(x)`, so
the figure stays comparable. `PixelwiseSpline` adds a learned monotone spline per pixel after
the logit (`pixel_spline_bins=` in `flows.glow` / `flows.real_nvp`), for non-Gaussian marginals.

Example:

>>> import numpy as np
>>> from tfp_flows.images import bits_per_dim
>>> # a uniform density on [0, 1]^D is worth exactly log2(K) bits per dimension
>>> bits_per_dim(np.zeros(3), num_dims=64, num_bins=256).numpy().tolist()
[8.0, 8.0, 8.0]
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors import FlowBijector
from tfp_flows.bijectors.transformers import rational_quadratic_spline

tfb = tfp.bijectors

__all__ = ["LogitTransform", "PixelwiseSpline", "bits_per_dim", "dequantize"]


class LogitTransform(tfb.Chain):
    r"""Real NVP's logit pre-transform for data in `[0, 1]`, built from TFP primitives.

    Forward (latent to data) and inverse (data to latent), elementwise:

        x = (sigmoid(z) - alpha) / (1 - 2 alpha)
        z = logit(alpha + (1 - 2 alpha) x)

    `alpha` keeps the logit away from 0 and 1, where it diverges. The log-det is TFP's (Sigmoid,
    Shift, Scale), so `log_prob` counts it.

    Args:
      alpha: the margin, in `[0, 0.5)`; Real NVP used 0.05 on CIFAR-10.
      validate_args: let TFP check its inputs at run time.
      dtype: float dtype of the constants (that of the flow).
      name: name of the bijector.

    References:
      Dinh et al. (2017), Density estimation using Real NVP, https://arxiv.org/abs/1605.08803
    """

    def __init__(
        self,
        alpha: float = 0.05,
        *,
        validate_args: bool = False,
        dtype=tf.float32,
        name: str = "logit",
    ):
        if not 0.0 <= float(alpha) < 0.5:
            raise ValueError(f"`alpha` must be in [0, 0.5); got {alpha}.")
        self.alpha = float(alpha)
        super().__init__(
            [
                tfb.Scale(tf.constant(1.0 / (1.0 - 2.0 * self.alpha), dtype)),
                tfb.Shift(tf.constant(-self.alpha, dtype)),
                tfb.Sigmoid(),
            ],
            validate_args=validate_args,
            name=name,
        )


class PixelwiseSpline(FlowBijector):
    r"""A learned monotone rational-quadratic spline per pixel: a flexible marginal transform.

    Elementwise, with its own spline `g_d` for every dimension `d` of the event (no parameter
    sharing, no conditioning):

        y_d = g_d(x_d),   x_d = g_d^{-1}(y_d),   log|det J_forward| = sum_d log g_d'(x_d)

    Each `g_d` is TFP's `RationalQuadraticSpline` on `[-bound, bound]` (the identity outside)
    with `num_bins` bins whose widths, heights and knot slopes are trainable. At
    initialisation every spline is the identity. Placed at the data end of an image flow, after
    the logit pre-transform, it lets each pixel have a non-Gaussian (e.g. bimodal: background or
    ink) marginal that affine couplings cannot produce, while the couplings model the
    dependence. With `alpha = 0.05` the logit of data in `[0, 1]` lies in `[-2.95, 2.95]`, inside
    the default `bound = 3`.

    Args:
      event_shape: the event shape, e.g. `[H, W, C]`.
      num_bins: spline bins per dimension.
      bound: the spline acts on `[-bound, bound]`.
      dtype: float dtype of the parameters.
      name: name of the bijector.

    References:
      Durkan et al. (2019), Neural Spline Flows, https://arxiv.org/abs/1906.04032

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.images import PixelwiseSpline
    >>> bij = PixelwiseSpline([2, 2, 1], num_bins=4)
    >>> x = tf.fill([3, 2, 2, 1], 0.5)
    >>> round(float(tf.reduce_max(tf.abs(bij.forward(x) - x))), 6)  # the identity at init
    0.0
    """

    def __init__(
        self,
        event_shape,
        *,
        num_bins: int = 16,
        bound: float = 3.0,
        dtype=tf.float32,
        name: str = "pixelwise_spline",
    ):
        parameters = dict(locals())
        self.event_shape_ = tuple(int(d) for d in event_shape)
        if int(num_bins) < 2 or float(bound) <= 0:
            raise ValueError(f"need `num_bins` >= 2 and `bound` > 0; got {num_bins}, {bound}.")
        self.num_bins, self.bound = int(num_bins), float(bound)
        super().__init__(
            forward_min_event_ndims=len(self.event_shape_),
            dtype=dtype,
            parameters=parameters,
            name=name,
        )
        shape = [*self.event_shape_, self.num_bins]
        self._widths = self._add_variable("bin_widths", tf.zeros(shape, dtype))
        self._heights = self._add_variable("bin_heights", tf.zeros(shape, dtype))
        slopes_shape = [*self.event_shape_, self.num_bins - 1]  # interior knots
        self._slopes = self._add_variable("knot_slopes", tf.zeros(slopes_shape, dtype))

    def _spline(self) -> tfb.RationalQuadraticSpline:
        return rational_quadratic_spline(self._widths, self._heights, self._slopes, self.bound)

    def _log_det(self, spline, x):
        return tf.reduce_sum(
            spline.forward_log_det_jacobian(x, event_ndims=0),
            axis=list(range(-len(self.event_shape_), 0)),
        )

    def _forward_and_log_det(self, x):
        spline = self._spline()
        return spline.forward(x), self._log_det(spline, x)

    def _inverse_and_log_det(self, y):
        spline = self._spline()
        x = spline.inverse(y)
        return x, -self._log_det(spline, x)


def dequantize(pixels, num_bins: int, *, seed=None, dtype=tf.float32) -> tf.Tensor:
    """Uniform dequantisation: integer levels `k` in `[0, num_bins)` to `(k + u) / num_bins`.

    Raises `ValueError` for values outside `[0, num_bins)` or non-integer values (data that
    looks already dequantised).
    """
    values = np.asarray(pixels)
    if values.size and (values.min() < 0 or values.max() >= num_bins):
        raise ValueError(
            f"pixel levels must be in [0, {num_bins}); got values in "
            f"[{values.min()}, {values.max()}]."
        )
    if np.issubdtype(values.dtype, np.floating) and not np.all(values == np.round(values)):
        raise ValueError("dequantize expects integer pixel levels; got non-integer values.")
    k = tf.convert_to_tensor(values, dtype=dtype)
    if seed is None:
        noise = tf.random.uniform(tf.shape(k), dtype=dtype)
    else:
        noise = tf.random.stateless_uniform(tf.shape(k), seed=seed, dtype=dtype)
    return (k + noise) / num_bins


def bits_per_dim(log_prob, *, num_dims: int, num_bins: int):
    """Bits per dimension of dequantised data in `[0, 1)^D` with `num_bins` levels per pixel.

    `(-log q(x) + D log K) / (D log 2)`: `log q(x)` is the flow's log-density of the scaled data
    (a logit pre-transform's log-det included, as `log_prob` computes it), and `D log K` converts
    it to the density of the unscaled levels `K x`, i.e. a bound on the discrete log-likelihood.

    Args:
      log_prob: `log q(x)` in nats, any shape (one value per image).
      num_dims: `D`, the number of dimensions per image (`H * W * C`).
      num_bins: `K`, the levels per dimension (256 for 8-bit images).

    Returns:
      Bits per dimension, the shape of `log_prob`.
    """
    log_prob = tf.convert_to_tensor(log_prob)
    num_dims = tf.cast(num_dims, log_prob.dtype)
    return (-log_prob + num_dims * math.log(num_bins)) / (num_dims * math.log(2.0))
