"""The rational-quadratic spline transformer (neural spline flows)."""

from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows.bijectors.transformers.base import Transformer

tfb = tfp.bijectors

__all__ = ["RationalQuadratic", "rational_quadratic_spline"]


_MIN_BIN = 1e-3  # smallest bin width and height, as a fraction of the range [-bound, bound]
_MIN_SLOPE = 1e-3
_SOFTPLUS_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_ONE) == 1


def _bins_and_slopes(width_logits, height_logits, slope_logits, bound: float):
    """Bin widths and heights `[..., K]` and interior knot slopes `[..., K - 1]`.

    Widths and heights are a softmax over the last axis, floored at `1e-3` of the range; the
    slopes are `softplus` shifted so that zero gives 1, floored at `1e-3`. All-zero parameters
    give equal bins and unit slopes: the identity.
    """
    k = width_logits.shape[-1]
    span = 2.0 * bound

    def bins(logits):
        # A softmax of rank <= 2: TensorFlow's CPU kernel refuses float32 inputs of rank > 5.
        softmax = tf.reshape(tf.nn.softmax(tf.reshape(logits, [-1, k])), tf.shape(logits))
        return span * (_MIN_BIN + (1.0 - k * _MIN_BIN) * softmax)

    slopes = _MIN_SLOPE + (1.0 - _MIN_SLOPE) * tf.nn.softplus(slope_logits + _SOFTPLUS_ONE)
    return bins(width_logits), bins(height_logits), slopes


def rational_quadratic_spline(
    width_logits, height_logits, slope_logits, bound: float
) -> tfb.RationalQuadraticSpline:
    """TFP's `RationalQuadraticSpline` on `[-bound, bound]` from unconstrained parameters.

    Parametrised as in `_bins_and_slopes`; outside the range the spline is the identity.
    """
    widths, heights, slopes = _bins_and_slopes(width_logits, height_logits, slope_logits, bound)
    return tfb.RationalQuadraticSpline(widths, heights, slopes, range_min=-bound)


class RationalQuadratic(Transformer):
    r"""A monotone rational-quadratic spline with `num_bins` bins on `[-bound, bound]`.

    `params[..., :K]` are the bin-width logits, `params[..., K:2K]` the bin-height logits and
    `params[..., 2K:]` the `K - 1` interior knot-slope pre-activations (`num_params = 3K - 1`),
    mapped as in `rational_quadratic_spline`; the slopes at `+-bound` are 1, so the map joins the
    identity tails outside the interval smoothly. In bin `k`, with `xi = (x - x_k) / w_k`,
    `s_k = h_k / w_k` and knot slopes `d_k`, `d_{k+1}`:

        g(x)  = y_k + h_k (s_k xi^2 + d_k xi (1 - xi)) / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))
        g'(x) = s_k^2 (d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2)
                / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))^2

    and the inverse is the root of a quadratic in `xi`. Bounded slopes and identity tails mean it
    cannot blow up the way an unclamped affine scale can.

    Each direction computes the value and the log-derivative together from one bin search (a
    count of the knots below the point, then one batched gather of the bin's knot values);
    TFP's `tfb.RationalQuadraticSpline` (same map, `spline(params)` builds it) searches the bins
    again for the log-det, and once more for the log-det of the inverse. The two agree to
    rounding (tested).

    Args:
      num_bins: bins per dimension, `K >= 2`.
      bound: the spline acts on `[-bound, bound]`; choose it to cover the (standardised) data.

    References:
      Durkan et al. (2019), Neural Spline Flows, https://arxiv.org/abs/1906.04032

    Example:

    >>> import tensorflow as tf
    >>> spline = RationalQuadratic(num_bins=4, bound=3.0)
    >>> spline.num_params  # 4 widths, 4 heights, 3 interior knot slopes
    11
    >>> y, log_det = spline.forward_and_log_det(tf.constant([[0.5]]), tf.zeros([1, 1, 11]))
    >>> round(float(y[0, 0]), 5), abs(round(float(log_det[0, 0]), 5))  # zero params: identity
    (0.5, 0.0)
    """

    def __init__(self, num_bins: int = 8, bound: float = 5.0):
        self.num_bins = check.integer(num_bins, "num_bins", minimum=2)
        self.bound = check.clamp_bound(bound, "bound")
        if self.bound is None:
            raise TypeError("`bound` must be a positive number; got None.")
        self.num_params = 3 * self.num_bins - 1

    def spline(self, params) -> tfb.RationalQuadraticSpline:
        """The same map as TFP's `tfb.RationalQuadraticSpline` (batch shape `params.shape[:-1]`)."""
        k = self.num_bins
        return rational_quadratic_spline(
            params[..., :k], params[..., k : 2 * k], params[..., 2 * k :], self.bound
        )

    def _bin(self, value, params, inverse: bool):
        """The spline's knots, and the bin of each `value` (`x`, or `y` when `inverse`)."""
        k, bound = self.num_bins, self.bound
        widths, heights, slopes = _bins_and_slopes(
            params[..., :k], params[..., k : 2 * k], params[..., 2 * k :], bound
        )
        ones = tf.ones_like(slopes[..., :1])
        slopes = tf.concat([ones, slopes, ones], axis=-1)  # [..., K + 1], 1 at both ends
        x_knots = tf.cumsum(widths, axis=-1, exclusive=True) - bound  # left knots [..., K]
        y_knots = tf.cumsum(heights, axis=-1, exclusive=True) - bound
        knots = y_knots if inverse else x_knots
        inside = (value > -bound) & (value < bound)
        value = tf.clip_by_value(value, -bound, bound)  # the outside points take the identity
        index = tf.reduce_sum(tf.cast(value[..., None] >= knots[..., 1:], tf.int32), axis=-1)
        table = tf.stack(
            [x_knots, widths, y_knots, heights, slopes[..., :-1], slopes[..., 1:]], axis=-1
        )  # [..., K, 6]
        if not (index.shape.is_fully_defined() and index.shape == table.shape[:-2]):
            # `value` has more leading dims than `params` (e.g. one spline per pixel, shared by
            # a batch of images): the gather needs the table at every point.
            table = tf.broadcast_to(table, tf.concat([tf.shape(index), tf.shape(table)[-2:]], 0))
        picked = tf.gather(table, index, batch_dims=index.shape.rank)
        return (value, inside, *tf.unstack(picked, axis=-1))

    @staticmethod
    def _log_slope(xi, s, d0, d1):
        t = xi * (1.0 - xi)
        numerator = d1 * xi**2 + 2.0 * s * t + d0 * (1.0 - xi) ** 2
        return (
            2.0 * tf.math.log(s)
            + tf.math.log(numerator)
            - 2.0 * tf.math.log(s + (d1 + d0 - 2.0 * s) * t)
        )

    def forward_and_log_det(self, x, params):
        x_in, inside, x_k, w, y_k, h, d0, d1 = self._bin(x, params, inverse=False)
        s = h / w
        xi = (x_in - x_k) / w
        t = xi * (1.0 - xi)
        y = y_k + h * (s * xi**2 + d0 * t) / (s + (d1 + d0 - 2.0 * s) * t)
        log_det = self._log_slope(xi, s, d0, d1)
        return tf.where(inside, y, x), tf.where(inside, log_det, tf.zeros_like(log_det))

    def inverse_and_log_det(self, y, params):
        y_in, inside, x_k, w, y_k, h, d0, d1 = self._bin(y, params, inverse=True)
        s = h / w
        rel = y_in - y_k
        term = rel * (d1 + d0 - 2.0 * s)
        a = h * (s - d0) + term
        b = h * d0 - term
        c = -s * rel
        # 2c / (-b - sqrt(b^2 - 4ac)): the root in [0, 1], stable when 4ac is small.
        xi = (2.0 * c) / (-b - tf.sqrt(tf.maximum(b**2 - 4.0 * a * c, 0.0)))
        xi = tf.clip_by_value(xi, 0.0, 1.0)
        x = x_k + xi * w
        log_det = -self._log_slope(xi, s, d0, d1)
        return tf.where(inside, x, y), tf.where(inside, log_det, tf.zeros_like(log_det))

    def get_config(self) -> dict:
        return {"name": "spline", "num_bins": self.num_bins, "bound": self.bound}
