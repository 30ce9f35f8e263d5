"""Squeeze: space-to-depth on image events, the reshaping step of multi-scale flows."""

from __future__ import annotations

import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.bijectors._base import FlowBijector

__all__ = ["Squeeze"]


class Squeeze(FlowBijector):
    r"""Space-to-depth: `[H, W, C] -> [H/f, W/f, C*f*f]` forward, depth-to-space inverse.

    Each `f x f` block of pixels becomes one pixel with `f*f*C` channels, in the channel order of
    `tf.nn.space_to_depth` (output channel `(dy * f + dx) * C + c` holds input pixel
    `(f*i + dy, f*j + dx)`, channel `c`):

        y[..., i, j, (dy*f + dx)*C + c] = x[..., f*i + dy, f*j + dx, c]
        x = depth_to_space(y)
        log|det J_forward| = 0                (a permutation; zeros of the full batch shape)

    Any number of leading batch dimensions works (a reshape and a transpose, no rank-4
    restriction). Use `tfb.Invert(Squeeze())` to un-squeeze, e.g. to return to the original
    shape at the end of a multi-scale level (see `FactorOut`).

    Args:
      factor: block size `f` (default 2); `H` and `W` must be divisible by it (a `ValueError`
        for static sizes, a run-time assertion for sizes known only inside a `tf.function`).
      validate_args: check inputs for NaN and inf at run time.
      dtype: dtype of the inputs, or `None` (default) for any.
      name: name of the bijector.

    References:
      Dinh, Sohl-Dickstein & Bengio (2017), Density estimation using Real NVP, section 3.6
      (the squeezing operation), https://arxiv.org/abs/1605.08803

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.bijectors import Squeeze
    >>> x = tf.reshape(tf.range(16.0), [1, 4, 4, 1])
    >>> y = Squeeze().forward(x)
    >>> y.shape
    TensorShape([1, 2, 2, 4])
    >>> [int(v) for v in y[0, 0, 0]]  # the top-left 2x2 block
    [0, 1, 4, 5]
    >>> bool(tf.reduce_all(Squeeze().inverse(y) == x))
    True
    """

    def __init__(
        self,
        factor: int = 2,
        *,
        validate_args: bool = False,
        dtype=None,
        name: str = "squeeze",
    ):
        parameters = dict(locals())
        factor = check.integer(factor, "factor")
        with tf.name_scope(name) as name:
            super().__init__(
                forward_min_event_ndims=3,
                inverse_min_event_ndims=3,
                is_constant_jacobian=True,
                validate_args=validate_args,
                dtype=dtype,
                parameters=parameters,
                name=name,
            )
            self._factor = int(factor)

    @property
    def factor(self) -> int:
        return self._factor

    # -- static checks and event shapes -----------------------------------------------------

    def _check_event_shape(self, shape, what):
        super()._check_event_shape(shape, what)
        if shape.rank is None:
            return
        f = self._factor
        h, w, c = shape[-3:]
        if what == "forward":
            for axis, size in (("height", h), ("width", w)):
                if size is not None and size % f:
                    raise ValueError(
                        f"{self.name}: the {axis} {size} of the forward input (shape {shape}) is "
                        f"not divisible by the squeeze factor {f}."
                    )
        elif c is not None and c % (f * f):
            raise ValueError(
                f"{self.name}: the {c} channels of the inverse input (shape {shape}) are not "
                f"divisible by factor**2 = {f * f}."
            )

    def _forward_event_shape(self, input_shape):
        h, w, c = input_shape[-3:]
        f = self._factor
        return input_shape[:-3].concatenate(
            [None if h is None else h // f, None if w is None else w // f, _mul(c, f * f)]
        )

    def _inverse_event_shape(self, output_shape):
        h, w, c = output_shape[-3:]
        f = self._factor
        return output_shape[:-3].concatenate(
            [_mul(h, f), _mul(w, f), None if c is None else c // (f * f)]
        )

    def _forward_event_shape_tensor(self, input_shape):
        f = self._factor
        return tf.concat([input_shape[:-3], input_shape[-3:-1] // f, input_shape[-1:] * f * f], 0)

    def _inverse_event_shape_tensor(self, output_shape):
        f = self._factor
        return tf.concat(
            [output_shape[:-3], output_shape[-3:-1] * f, output_shape[-1:] // (f * f)], 0
        )

    # -- the transform ----------------------------------------------------------------------

    def _assert_divisible(self, x, what, sizes: dict, divisor, reason):
        """`x`, after run-time checks that the `sizes` not known statically divide by `divisor`.

        Static sizes are checked in `_check_event_shape`. XLA drops run-time assertions: under
        `jit_compile=True` a bad size gives the reshape's own error instead.
        """
        checks = [
            tf.debugging.Assert(
                size % divisor == 0,
                [f"{self.name}: the {name}", size, f"of the {what} input {reason}"],
            )
            for name, size in sizes.items()
            if not isinstance(size, int)
        ]
        if not checks:
            return x
        with tf.control_dependencies(checks):
            return tf.identity(x)

    def _forward_and_log_det(self, x):
        f = self._factor
        shape = tf.shape(x)
        batch, (h, w, c) = shape[:-3], _event_dims(x)
        reason = f"is not divisible by the squeeze factor {f}"
        x = self._assert_divisible(x, "forward", {"height": h, "width": w}, f, reason)
        blocks = tf.reshape(x, [-1, h // f, f, w // f, f, c])
        y = tf.transpose(blocks, [0, 1, 3, 2, 4, 5])  # [B, h/f, w/f, dy, dx, c]
        y = tf.reshape(y, tf.concat([batch, [h // f, w // f, c * f * f]], 0))
        return y, tf.zeros(batch, x.dtype)

    def _inverse_and_log_det(self, y):
        f = self._factor
        shape = tf.shape(y)
        batch, (h, w, c) = shape[:-3], _event_dims(y)
        reason = f"are not divisible by factor**2 = {f * f}"
        y = self._assert_divisible(y, "inverse", {"channels": c}, f * f, reason)
        blocks = tf.reshape(y, [-1, h, w, f, f, c // (f * f)])
        x = tf.transpose(blocks, [0, 1, 3, 2, 4, 5])  # [B, h, dy, w, dx, c]
        x = tf.reshape(x, tf.concat([batch, [h * f, w * f, c // (f * f)]], 0))
        return x, tf.zeros(batch, y.dtype)


def _event_dims(x: tf.Tensor) -> list:
    """The last three dimensions, as Python ints where static, else as scalar tensors."""
    static, dynamic = x.shape[-3:], tf.shape(x)[-3:]
    return [static[i] if static[i] is not None else dynamic[i] for i in range(3)]


def _mul(size, k):
    return None if size is None else size * k
