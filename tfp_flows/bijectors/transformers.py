"""Elementwise transformers: the invertible scalar maps that autoregressive layers parametrise.

A transformer turns raw parameters `params` of shape `[..., D, num_params]` (what a MADE outputs,
one row per dimension) into a monotone map applied to each dimension:

    forward_and_log_det(x, params) -> (y, log g'(x))       elementwise, not summed
    inverse_and_log_det(y, params) -> (x, -log g'(x))

Zero parameters give the identity, so a flow whose conditioner's output layer starts at zero
starts as the identity. `MaskedAutoregressiveFlow` and `InverseAutoregressiveFlow` take one
(`transformer=`); any transformer plugs into any autoregressive conditioner.

Example:

>>> import tensorflow as tf
>>> from tfp_flows.bijectors.transformers import RationalQuadratic
>>> spline = RationalQuadratic(num_bins=4, bound=3.0)
>>> spline.num_params  # 4 widths, 4 heights, 3 interior knot slopes
11
>>> y, log_det = spline.forward_and_log_det(tf.constant([[0.5]]), tf.zeros([1, 1, 11]))
>>> round(float(y[0, 0]), 5), abs(round(float(log_det[0, 0]), 5))  # zero parameters: the identity
(0.5, 0.0)
"""

from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows.bijectors._base import soft_clamp

tfb = tfp.bijectors

__all__ = ["Affine", "RationalQuadratic", "get", "rational_quadratic_spline"]


class Affine:
    r"""`y = x exp(s) + shift`, with `(shift, s) = params[..., 0], params[..., 1]`.

    The log-scale is soft-clamped to `(-log_scale_clamp, log_scale_clamp)` (`None`: no clamp),
    so `log g'(x) = s` stays bounded however the conditioner drifts.
    """

    num_params = 2

    def __init__(self, log_scale_clamp: float | None = 3.0):
        self.log_scale_clamp = check.clamp_bound(log_scale_clamp)

    def shift_and_log_scale(self, params):
        return params[..., 0], soft_clamp(params[..., 1], self.log_scale_clamp)

    def forward_and_log_det(self, x, params):
        shift, log_scale = self.shift_and_log_scale(params)
        return x * tf.exp(log_scale) + shift, log_scale

    def inverse_and_log_det(self, y, params):
        shift, log_scale = self.shift_and_log_scale(params)
        return (y - shift) * tf.exp(-log_scale), -log_scale

    def get_config(self) -> dict:
        return {"name": "affine", "log_scale_clamp": self.log_scale_clamp}


_MIN_BIN = 1e-3  # smallest bin width and height, as a fraction of the range [-bound, bound]
_MIN_SLOPE = 1e-3
_SOFTPLUS_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_ONE) == 1


def rational_quadratic_spline(
    width_logits, height_logits, slope_logits, bound: float
) -> tfb.RationalQuadraticSpline:
    """TFP's `RationalQuadraticSpline` on `[-bound, bound]` from unconstrained parameters.

    Widths and heights are a softmax over the last axis (`K` bins), floored at `1e-3` of the
    range; the `K - 1` interior knot slopes are `softplus` shifted so that zero gives 1, floored at
    `1e-3`. All-zero parameters give the identity. Outside the range the spline is the identity.
    """
    k = width_logits.shape[-1]
    span = 2.0 * bound

    def bins(logits):
        return span * (_MIN_BIN + (1.0 - k * _MIN_BIN) * tf.nn.softmax(logits, axis=-1))

    slopes = _MIN_SLOPE + (1.0 - _MIN_SLOPE) * tf.nn.softplus(slope_logits + _SOFTPLUS_ONE)
    return tfb.RationalQuadraticSpline(
        bins(width_logits), bins(height_logits), slopes, range_min=-bound
    )


class RationalQuadratic:
    r"""A monotone rational-quadratic spline with `num_bins` bins on `[-bound, bound]`.

    `params[..., :K]` are the bin-width logits, `params[..., K:2K]` the bin-height logits and
    `params[..., 2K:]` the `K - 1` interior knot-slope pre-activations (`num_params = 3K - 1`);
    the slopes at `+-bound` are 1, so the map joins the identity tails outside the interval
    smoothly. Each dimension's map is a ratio of quadratics in every bin, with an analytic
    inverse (a root of a quadratic) and derivative. Being bounded-slope and identity-tailed,
    it cannot blow up the way an unclamped affine scale can.

    Args:
      num_bins: bins per dimension, `K >= 2`.
      bound: the spline acts on `[-bound, bound]`; choose it to cover the (standardised) data.

    References:
      Durkan et al. (2019), Neural Spline Flows, https://arxiv.org/abs/1906.04032
    """

    def __init__(self, num_bins: int = 8, bound: float = 5.0):
        self.num_bins = check.integer(num_bins, "num_bins", minimum=2)
        self.bound = check.clamp_bound(bound, "bound")
        if self.bound is None:
            raise TypeError("`bound` must be a positive number; got None.")
        self.num_params = 3 * self.num_bins - 1

    def spline(self, params) -> tfb.RationalQuadraticSpline:
        k = self.num_bins
        return rational_quadratic_spline(
            params[..., :k], params[..., k : 2 * k], params[..., 2 * k :], self.bound
        )

    def forward_and_log_det(self, x, params):
        spline = self.spline(params)
        return spline.forward(x), spline.forward_log_det_jacobian(x, event_ndims=0)

    def inverse_and_log_det(self, y, params):
        spline = self.spline(params)
        return spline.inverse(y), spline.inverse_log_det_jacobian(y, event_ndims=0)

    def get_config(self) -> dict:
        return {"name": "spline", "num_bins": self.num_bins, "bound": self.bound}


def get(transformer, *, log_scale_clamp: float | None = 3.0, num_bins: int = 8, bound=5.0):
    """A transformer from `"affine"`, `"spline"` or an instance (returned as is)."""
    if isinstance(transformer, Affine | RationalQuadratic):
        return transformer
    if transformer == "affine":
        return Affine(log_scale_clamp)
    if transformer == "spline":
        return RationalQuadratic(num_bins, bound)
    raise ValueError(
        f"`transformer` must be 'affine', 'spline' or a transformer instance; got {transformer!r}."
    )
