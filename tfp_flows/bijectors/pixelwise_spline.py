"""A learned monotone spline per element of the event: a flexible marginal transform."""

from __future__ import annotations

import tensorflow as tf

from tfp_flows.bijectors._base import FlowBijector
from tfp_flows.bijectors.transformers import RationalQuadratic

__all__ = ["PixelwiseSpline"]


class PixelwiseSpline(FlowBijector):
    r"""A learned monotone rational-quadratic spline per pixel: a flexible marginal transform.

    Elementwise, with its own spline `g_d` for every dimension `d` of the event (no parameter
    sharing, no conditioning):

        y_d = g_d(x_d),   x_d = g_d^{-1}(y_d),   log|det J_forward| = sum_d log g_d'(x_d)

    Each `g_d` is the `transformers.RationalQuadratic` map on `[-bound, bound]` (the identity
    outside) with `num_bins` bins whose width and height logits and knot-slope pre-activations
    are trainable variables (`bin_widths`, `bin_heights`: `event_shape + [K]`; `knot_slopes`:
    `event_shape + [K - 1]`). At initialisation every spline is the identity. Placed at the
    data end of an image flow, after the logit pre-transform, it lets each pixel have a
    non-Gaussian (e.g. bimodal: background or ink) marginal that affine couplings cannot
    produce, while the couplings model the dependence. With `alpha = 0.05` the logit of data
    in `[0, 1]` lies in `[-2.95, 2.95]`, inside the default `bound = 3`.

    Args:
      event_shape: the event shape, e.g. `[H, W, C]`.
      num_bins: spline bins per dimension, `K >= 2`.
      bound: the spline acts on `[-bound, bound]`.
      dtype: float dtype of the parameters.
      name: name of the bijector.

    References:
      Durkan et al. (2019), Neural Spline Flows, https://arxiv.org/abs/1906.04032

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.bijectors import PixelwiseSpline
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
        self._spline = RationalQuadratic(num_bins, bound)
        self.num_bins, self.bound = self._spline.num_bins, self._spline.bound
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

    def _params(self) -> tf.Tensor:
        """The spline's params, `event_shape + [3K - 1]`: width, height and slope logits."""
        return tf.concat([self._widths, self._heights, self._slopes], axis=-1)

    def _sum_event(self, values):
        return tf.reduce_sum(values, axis=list(range(-len(self.event_shape_), 0)))

    def _forward_and_log_det(self, x):
        y, log_det = self._spline.forward_and_log_det(x, self._params())
        return y, self._sum_event(log_det)

    def _inverse_and_log_det(self, y):
        x, log_det = self._spline.inverse_and_log_det(y, self._params())
        return x, self._sum_event(log_det)
