"""A dense coupling conditioner for vector events."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.nn._conditioner_base import Conditioner, positive_int

__all__ = ["MLPConditioner"]


@keras.saving.register_keras_serializable(package="tfp_flows")
class MLPConditioner(Conditioner):
    """A dense network returning a transformer's params for vector coupling layers.

    `[x, c] -> Dense(hidden_units[0]) -> ... -> Dense(P * output_size)`, the last layer
    zero-initialised (so the coupling starts as the identity for the affine, additive and
    spline transformers), its output reshaped to `[..., output_size, P]`; with
    `num_params=None`, `P = 2` and the output is split in two halves `(shift, log_scale)`.

    Args:
      input_size: size `D_in` of the input's last axis (the kept part).
      output_size: size `D_out` of `shift` and `log_scale` (the transformed part).
      hidden_units: widths of the hidden layers.
      activation: activation of the hidden layers.
      conditional_size: size of a conditional vector input `c`, concatenated to the input; its
        leading dims must broadcast to the input's. `None`: no conditional input.
      num_params: params per transformed element `P` (`transformer.num_params`), or `None`
        for the pair `(shift, log_scale)`.
      dtype: float dtype of the weights and computation.
      **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Call: `layer(x, conditional=None)` with `x: [..., D_in]`, `conditional: [..., C]`; returns
    params `[..., D_out, P]`, or `shift, log_scale`, each `[..., D_out]`.

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.nn import MLPConditioner
    >>> net = MLPConditioner(2, 3, hidden_units=(8,))
    >>> shift, log_scale = net(tf.ones([5, 4, 2]))
    >>> shift.shape, float(tf.reduce_max(tf.abs(log_scale)))  # zero-initialised last layer
    (TensorShape([5, 4, 3]), 0.0)
    >>> MLPConditioner(2, 3, hidden_units=(8,), num_params=11)(tf.ones([5, 2])).shape
    TensorShape([5, 3, 11])
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        hidden_units: Sequence[int] = (64, 64),
        activation: str = "relu",
        conditional_size: int | None = None,
        num_params: int | None = None,
        dtype=None,
        **kwargs,
    ):
        super().__init__(dtype=dtype, **kwargs)
        per_element = self._init_num_params(num_params)
        self.input_size = positive_int(input_size, "input_size")
        self.output_size = positive_int(output_size, "output_size")
        self.hidden_units = check.positive_ints(hidden_units, "hidden_units")
        self.activation = activation
        self._init_conditional(conditional_size)
        policy = self.dtype_policy
        self.hidden_layers = [
            keras.layers.Dense(units, activation=activation, dtype=policy, name=f"hidden_{i}")
            for i, units in enumerate(self.hidden_units)
        ]
        self.output_layer = keras.layers.Dense(
            per_element * self.output_size,
            kernel_initializer="zeros",
            bias_initializer="zeros",
            dtype=policy,
            name="shift_and_log_scale" if num_params is None else "params",
        )
        width = self.input_size + (self.conditional_size or 0)
        for layer in [*self.hidden_layers, self.output_layer]:
            layer.build((None, width))
            width = layer.units
        self.built = True

    def build(self, input_shape=None):  # Built in __init__; kept for Keras' loading protocol.
        self.built = True

    def call(self, inputs, conditional=None):
        inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        self._check_last_dim(inputs, self.input_size, "input")
        c = self._conditional_input(inputs, conditional, 1)
        h = inputs if c is None else tf.concat([inputs, c], axis=-1)
        leading = tf.shape(h)[:-1]
        h = tf.reshape(h, [-1, h.shape[-1]])  # Dense expects rank >= 2
        for layer in self.hidden_layers:
            h = layer(h)
        out = tf.reshape(self.output_layer(h), tf.concat([leading, [-1]], 0))
        return self._split_output(out, leading, self.output_size)

    def get_config(self) -> dict:
        config = self._base_config()
        config.update(
            input_size=self.input_size,
            output_size=self.output_size,
            hidden_units=list(self.hidden_units),
            activation=self.activation,
        )
        return config
