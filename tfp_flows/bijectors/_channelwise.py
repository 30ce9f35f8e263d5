"""`ChannelwiseBijector`: the base of the constant-Jacobian maps over an image's channel axis.

ActNorm and the invertible 1x1 convolution apply the same map at each of the `N` positions of
an `[..., C]` event (`N = H * W` for `[H, W, C]` images, 1 for `[C]` vectors), so their
log-determinant is `N` times that of the per-position map, and both check the channel count.
"""

from __future__ import annotations

import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.bijectors._base import FlowBijector

__all__ = ["ChannelwiseBijector"]


class ChannelwiseBijector(FlowBijector):
    """A bijector applying one map of `C` channels at every position: `log|det J| = N * l`.

    Subclasses create their variables after `super().__init__` and call
    `self._positions_log_det(x, l)` with `l` the per-position log-determinant.
    """

    def __init__(self, num_channels, event_ndims, validate_args, dtype, parameters, name):
        num_channels = check.integer(num_channels, "num_channels")
        event_ndims = check.integer(event_ndims, "event_ndims")
        super().__init__(
            forward_min_event_ndims=int(event_ndims),
            is_constant_jacobian=True,
            validate_args=validate_args,
            dtype=dtype,
            parameters=parameters,
            name=name,
        )
        self._num_channels = int(num_channels)

    @property
    def num_channels(self) -> int:
        return self._num_channels

    def _check_event_shape(self, shape, what):
        super()._check_event_shape(shape, what)
        if shape.rank is not None and shape[-1] is not None and shape[-1] != self._num_channels:
            raise ValueError(
                f"{self.name}: expected {self._num_channels} channels on the last axis of the "
                f"{what} input; got shape {shape}."
            )

    def _positions_log_det(self, x: tf.Tensor, per_position: tf.Tensor) -> tf.Tensor:
        """`N * per_position` for each batch member of `x` (N positions per channel)."""
        shape = tf.shape(x)
        split = tf.rank(x) - self.forward_min_event_ndims
        positions = tf.cast(tf.reduce_prod(shape[split:-1]), x.dtype)
        return tf.fill(shape[:split], positions * per_position)
