"""Velocity fields `v(x, t[, c])`: the Keras 3 networks a continuous flow integrates.

A velocity field maps a state `x` of shape `[..., *event_shape]`, a time `t` in `[0, 1]` that
broadcasts to the batch shape `[...]`, and optionally a condition `c` of shape `[..., C]` to a
velocity of the shape of `x`. Any callable `v(x, t)` / `v(x, t, conditional=c)` with that
contract works in `ContinuousFlow`; a Keras layer is tracked and saved with the model.

Both networks here embed the time as Fourier features
`gamma(t) = [t, sin(pi k t), cos(pi k t)]_{k=1..K}` (Tancik et al. 2020,
https://arxiv.org/abs/2006.10739), use SiLU activations (smooth, so the trace of the Jacobian
is smooth in `x` too), and zero-initialise their last layer: a new field is `v = 0`, whose flow
is the identity.

Example:

>>> import tensorflow as tf
>>> from tfp_flows.continuous import VelocityMLP
>>> v = VelocityMLP(2, hidden_units=(8,))
>>> v(tf.ones([5, 3, 2]), tf.constant(0.5)).shape
TensorShape([5, 3, 2])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import tensorflow as tf

from tfp_flows import _validation as check

__all__ = ["VelocityConv", "VelocityMLP", "time_features"]


def time_features(t: tf.Tensor, num_frequencies: int) -> tf.Tensor:
    """`[t, sin(pi k t), cos(pi k t)]` for `k = 1..K`: shape `[..., 1 + 2K]` for `t` `[...]`."""
    k = tf.range(1, num_frequencies + 1, dtype=t.dtype) * math.pi
    angles = t[..., None] * k
    return tf.concat([t[..., None], tf.sin(angles), tf.cos(angles)], axis=-1)


class _Velocity(keras.layers.Layer):
    """Shared: input checks, the broadcast time and condition, flattening the batch dims."""

    event_ndims = 1

    def _init_common(self, event_shape, num_frequencies, conditional_size, activation):
        self.event_shape = check.shape(event_shape, "event_shape", rank=self.event_ndims)
        self.num_frequencies = check.integer(num_frequencies, "num_frequencies", minimum=0)
        self.conditional_size = check.integer(conditional_size, "conditional_size", allow_none=True)
        self.activation = activation
        self._extra = 1 + 2 * self.num_frequencies + (self.conditional_size or 0)

    def _inputs(self, x, t, conditional):
        """`(x [N, *event], features [N, F], batch shape)` with the batch flattened to `N`."""
        x = tf.convert_to_tensor(x, dtype=self.compute_dtype)
        event = list(self.event_shape)
        if x.shape.rank is not None and (
            x.shape.rank < len(event) or not x.shape[x.shape.rank - len(event) :] == event
        ):
            raise ValueError(f"{self.name}: x must have shape [..., {event}]; got {x.shape}.")
        batch = tf.shape(x)[: tf.rank(x) - len(event)]
        t = tf.broadcast_to(tf.cast(t, x.dtype), batch)
        parts = [time_features(t, self.num_frequencies)]
        if (conditional is None) != (self.conditional_size is None):
            raise ValueError(
                f"{self.name}: built with conditional_size={self.conditional_size}; got "
                f"{'no' if conditional is None else 'a'} `conditional` input."
            )
        if conditional is not None:
            c = tf.convert_to_tensor(conditional, dtype=x.dtype)
            if c.shape.rank is not None and c.shape[-1] != self.conditional_size:
                raise ValueError(
                    f"{self.name}: the condition must have last dimension "
                    f"{self.conditional_size}; got shape {c.shape}."
                )
            parts.append(tf.broadcast_to(c, tf.concat([batch, [self.conditional_size]], 0)))
        features = tf.reshape(tf.concat(parts, -1), [-1, self._extra])
        return tf.reshape(x, [-1, *event]), features, batch

    def _build_stack(self, input_shape) -> None:
        """Builds the hidden layers and the output layer in turn from `input_shape`."""
        for layer in [*self.hidden_layers, self.output_layer]:
            layer.build(input_shape)
            input_shape = layer.compute_output_shape(input_shape)
        self.built = True

    def build(self, input_shape=None):  # Built in __init__; kept for Keras' loading protocol.
        self.built = True

    def call(self, x, t, conditional=None):
        flat, features, batch = self._inputs(x, t, conditional)
        h = self._join(flat, features)  # the network's input: x with the time (and c) features
        for layer in self.hidden_layers:
            h = layer(h)
        return tf.reshape(self.output_layer(h), tf.concat([batch, self.event_shape], 0))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "event_shape": list(self.event_shape),
            "num_frequencies": self.num_frequencies,
            "conditional_size": self.conditional_size,
            "activation": self.activation,
        }


@keras.saving.register_keras_serializable(package="tfp_flows")
class VelocityMLP(_Velocity):
    """A dense velocity field for vector events: `v(x, t, c) = MLP([x, gamma(t), c])`.

    Args:
      event_size: `D`, the size of `x`'s last axis (an int, or a shape `[D]`).
      hidden_units: widths of the hidden layers.
      num_frequencies: `K`, Fourier features of the time (`1 + 2K` inputs).
      fourier_features: `M` random Fourier features of `x`, `sin(2 pi x B)` and
        `cos(2 pi x B)` with fixed `B ~ N(0, fourier_scale^2)` of shape `[D, M]` (Tancik et
        al. 2020), beside `x` itself: they let the network draw sharp structure (thin rings)
        that a plain MLP of `x` learns slowly. 0 (default): none.
      fourier_scale: the frequencies' standard deviation (in cycles per unit of `x`).
      conditional_size: size `C` of a condition `c` concatenated to the input, or `None`.
      activation: of the hidden layers.
      dtype: float dtype of the weights and computation.

    Call: `layer(x, t, conditional=None)`, `x: [..., D]`, `t` broadcasting to `[...]`,
    `conditional: [..., C]`; returns `[..., D]`.
    """

    def __init__(
        self,
        event_size,
        *,
        hidden_units: Sequence[int] = (128, 128, 128),
        num_frequencies: int = 4,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        conditional_size: int | None = None,
        activation: str = "silu",
        dtype=None,
        **kwargs,
    ):
        super().__init__(dtype=dtype, **kwargs)
        size = event_size if isinstance(event_size, Sequence) else [event_size]
        self._init_common(size, num_frequencies, conditional_size, activation)
        self.hidden_units = check.positive_ints(hidden_units, "hidden_units")
        self.fourier_features = check.integer(fourier_features, "fourier_features", minimum=0)
        if not (isinstance(fourier_scale, int | float) and fourier_scale > 0):
            raise ValueError(f"`fourier_scale` must be a positive number; got {fourier_scale!r}.")
        self.fourier_scale = float(fourier_scale)
        policy = self.dtype_policy
        if self.fourier_features:  # fixed (saved, not trained): B ~ N(0, scale^2)
            self._frequencies = self.add_weight(
                shape=(size[0], self.fourier_features),
                initializer=keras.initializers.RandomNormal(stddev=self.fourier_scale, seed=0),
                trainable=False,
                name="fourier_frequencies",
            )
        self.hidden_layers = [
            keras.layers.Dense(n, activation=activation, dtype=policy, name=f"hidden_{i}")
            for i, n in enumerate(self.hidden_units)
        ]
        (d,) = self.event_shape
        self.output_layer = keras.layers.Dense(
            d, kernel_initializer="zeros", dtype=policy, name="velocity"
        )
        self._build_stack((None, d + 2 * self.fourier_features + self._extra))

    def _join(self, flat, features):
        if not self.fourier_features:
            return tf.concat([flat, features], -1)
        angles = 2.0 * math.pi * tf.matmul(flat, tf.cast(self._frequencies, flat.dtype))
        return tf.concat([flat, tf.sin(angles), tf.cos(angles), features], -1)

    def get_config(self) -> dict:
        config = super().get_config()
        config["event_size"] = config.pop("event_shape")[0]
        return {
            **config,
            "hidden_units": list(self.hidden_units),
            "fourier_features": self.fourier_features,
            "fourier_scale": self.fourier_scale,
        }


@keras.saving.register_keras_serializable(package="tfp_flows")
class VelocityConv(_Velocity):
    """A small convolutional velocity field for images `[H, W, C]`.

    `[x, gamma(t), c]` (time features and condition as constant channels) ->
    `num_layers` 3x3 convolutions of `filters` channels (SiLU) -> a zero-initialised 3x3
    convolution to `C` channels.

    Args:
      image_shape: `[H, W, C]`.
      filters: channels of the hidden convolutions.
      num_layers: hidden convolutions.
      num_frequencies, conditional_size, activation, dtype: as in `VelocityMLP`.

    Call: `layer(x, t, conditional=None)`, `x: [..., H, W, C]`, `t` broadcasting to `[...]`;
    returns `[..., H, W, C]`.
    """

    event_ndims = 3

    def __init__(
        self,
        image_shape,
        *,
        filters: int = 32,
        num_layers: int = 3,
        num_frequencies: int = 4,
        conditional_size: int | None = None,
        activation: str = "silu",
        dtype=None,
        **kwargs,
    ):
        super().__init__(dtype=dtype, **kwargs)
        self._init_common(image_shape, num_frequencies, conditional_size, activation)
        self.filters = check.integer(filters, "filters")
        self.num_layers = check.integer(num_layers, "num_layers")
        policy, (h, w, c) = self.dtype_policy, self.event_shape

        self.hidden_layers = [
            keras.layers.Conv2D(
                self.filters,
                3,
                padding="same",
                activation=activation,
                dtype=policy,
                name=f"conv_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.output_layer = keras.layers.Conv2D(
            c, 3, padding="same", kernel_initializer="zeros", dtype=policy, name="velocity"
        )
        self._build_stack((None, h, w, c + self._extra))

    def _join(self, flat, features):
        h, w, _ = self.event_shape
        planes = tf.broadcast_to(features[:, None, None, :], [tf.shape(flat)[0], h, w, self._extra])
        return tf.concat([flat, planes], -1)

    def get_config(self) -> dict:
        config = super().get_config()
        config["image_shape"] = config.pop("event_shape")
        return {**config, "filters": self.filters, "num_layers": self.num_layers}
