"""Image data for flows: uniform dequantisation, the logit pre-transform, and bits per dimension.

Discrete pixels with `K` levels are made continuous by `dequantize`: `x = (k + u) / K` with
`u ~ U[0, 1)`, a point in `[0, 1)`. A flow's density `q(x)` on `[0, 1]^D` then bounds the
discrete likelihood, and

    bits/dim = (-log q(x) + D * log K) / (D * log 2),

which is what papers report. With the logit pre-transform (`LogitTransform` at the data end of
the chain, as `real_nvp(..., logit_alpha=0.05)` builds it), its log-det is part of `log q(x)`, so
the figure stays comparable.

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

tfb = tfp.bijectors

__all__ = ["LogitTransform", "bits_per_dim", "dequantize"]


class LogitTransform(tfb.Chain):
    r"""Real NVP's logit pre-transform for data in `[0, 1]`, built from TFP primitives.

    Forward (latent to data) and inverse (data to latent), elementwise:

        x = (sigmoid(z) - alpha) / (1 - 2 alpha)
        z = logit(alpha + (1 - 2 alpha) x)

    `alpha` keeps the logit away from 0 and 1, where it diverges. The log-det is TFP's (Sigmoid,
    Shift, Scale), so `log_prob` counts it.

    Args:
      alpha: the margin, in `[0, 0.5)`; Real NVP used 0.05 on CIFAR-10.
      name: name of the bijector.

    References:
      Dinh et al. (2017), Density estimation using Real NVP, https://arxiv.org/abs/1605.08803
    """

    def __init__(self, alpha: float = 0.05, *, validate_args: bool = False, name: str = "logit"):
        if not 0.0 <= float(alpha) < 0.5:
            raise ValueError(f"`alpha` must be in [0, 0.5); got {alpha}.")
        self.alpha = float(alpha)
        super().__init__(
            [
                tfb.Scale(1.0 / (1.0 - 2.0 * self.alpha)),
                tfb.Shift(-self.alpha),
                tfb.Sigmoid(),
            ],
            validate_args=validate_args,
            name=name,
        )


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
    """Bits per dimension of dequantised data in `[0, 1)^D` with `num_bins` levels per pixel."""
    log_prob = tf.convert_to_tensor(log_prob)
    num_dims = tf.cast(num_dims, log_prob.dtype)
    return (-log_prob + num_dims * math.log(num_bins)) / (num_dims * math.log(2.0))
