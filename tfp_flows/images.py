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

# Re-exported: both bijectors live in `tfp_flows.bijectors` now.
from tfp_flows.bijectors.logit import LogitTransform
from tfp_flows.bijectors.pixelwise_spline import PixelwiseSpline

__all__ = ["LogitTransform", "PixelwiseSpline", "bits_per_dim", "dequantize"]


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
