"""Coupling conditioners: Keras 3 networks that map the kept part to `(shift, log_scale)`.

Both networks are built in `__init__` (their variables exist right after construction), have a
zero-initialised last layer (so a new coupling layer is the identity), accept any number of
leading batch dimensions, and can take a conditional vector input.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from tfp_flows import _validation as check

__all__ = ["ConvConditioner", "MLPConditioner"]


def _positive_int(value, name: str) -> int:
    return check.integer(value, name)


class _Conditioner(keras.layers.Layer):
    """Shared input checks and conditional-input handling."""

    def _init_conditional(self, conditional_size):
        self.conditional_size = (
            None
            if conditional_size is None
            else _positive_int(conditional_size, "conditional_size")
        )

    def _check_last_dim(self, tensor: tf.Tensor, expected: int, what: str) -> None:
        got = tensor.shape[-1] if tensor.shape.rank else None
        if tensor.shape.rank == 0 or (got is not None and got != expected):
            raise ValueError(
                f"{self.name}: the {what} must have last dimension {expected}; "
                f"got shape {tensor.shape}."
            )

    def _conditional_input(self, inputs: tf.Tensor, conditional, event_ndims: int):
        """Checks `conditional` and broadcasts it to the leading (batch) dims of `inputs`."""
        if self.conditional_size is None:
            if conditional is not None:
                raise ValueError(
                    f"{self.name}: got a `conditional` input, but the layer was built with "
                    "`conditional_size=None`."
                )
            return None
        if conditional is None:
            raise ValueError(
                f"{self.name}: a `conditional` input of size {self.conditional_size} is "
                "required (the layer was built with `conditional_size`)."
            )
        conditional = tf.convert_to_tensor(conditional, dtype=self.compute_dtype)
        self._check_last_dim(conditional, self.conditional_size, "`conditional` input")
        shape = tf.concat([tf.shape(inputs)[:-event_ndims], [self.conditional_size]], 0)
        return tf.broadcast_to(conditional, shape)

    def _base_config(self) -> dict:
        config = super().get_config()
        config["conditional_size"] = self.conditional_size
        return config


@keras.saving.register_keras_serializable(package="tfp_flows")
class MLPConditioner(_Conditioner):
    """A dense network returning `(shift, log_scale)` for vector coupling layers.

    `[x, c] -> Dense(hidden_units[0]) -> ... -> Dense(2 * output_size)`, the last layer
    zero-initialised, its output split in two halves `shift, log_scale`.

    Args:
      input_size: size `D_in` of the input's last axis (the kept part).
      output_size: size `D_out` of `shift` and `log_scale` (the transformed part).
      hidden_units: widths of the hidden layers.
      activation: activation of the hidden layers.
      conditional_size: size of a conditional vector input `c`, concatenated to the input; its
        leading dims must broadcast to the input's. `None`: no conditional input.
      dtype: float dtype of the weights and computation.
      **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Call: `layer(x, conditional=None)` with `x: [..., D_in]`, `conditional: [..., C]`; returns
    `shift, log_scale`, each `[..., D_out]`.

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.nn import MLPConditioner
    >>> net = MLPConditioner(2, 3, hidden_units=(8,))
    >>> shift, log_scale = net(tf.ones([5, 4, 2]))
    >>> shift.shape, float(tf.reduce_max(tf.abs(log_scale)))  # zero-initialised last layer
    (TensorShape([5, 4, 3]), 0.0)
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        hidden_units: Sequence[int] = (64, 64),
        activation: str = "relu",
        conditional_size: int | None = None,
        dtype=None,
        **kwargs,
    ):
        super().__init__(dtype=dtype, **kwargs)
        self.input_size = _positive_int(input_size, "input_size")
        self.output_size = _positive_int(output_size, "output_size")
        self.hidden_units = check.positive_ints(hidden_units, "hidden_units")
        self.activation = activation
        self._init_conditional(conditional_size)
        policy = self.dtype_policy
        self.hidden_layers = [
            keras.layers.Dense(units, activation=activation, dtype=policy, name=f"hidden_{i}")
            for i, units in enumerate(self.hidden_units)
        ]
        self.output_layer = keras.layers.Dense(
            2 * self.output_size,
            kernel_initializer="zeros",
            bias_initializer="zeros",
            dtype=policy,
            name="shift_and_log_scale",
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
        out = tf.reshape(self.output_layer(h), tf.concat([leading, [2 * self.output_size]], 0))
        return out[..., : self.output_size], out[..., self.output_size :]

    def get_config(self) -> dict:
        config = self._base_config()
        config.update(
            input_size=self.input_size,
            output_size=self.output_size,
            hidden_units=list(self.hidden_units),
            activation=self.activation,
        )
        return config


@keras.saving.register_keras_serializable(package="tfp_flows")
class ConvConditioner(_Conditioner):
    """A small convolutional ResNet returning `(shift, log_scale)` for image coupling layers.

    `h = relu(conv3x3(x))`, then `num_blocks` residual blocks
    `h = relu(h + conv3x3(relu(conv3x3(h))))`, then a zero-initialised `conv3x3` to
    `2 * output_channels` channels, split in two halves `shift, log_scale`. A conditional vector
    is broadcast over the `H x W` positions and concatenated to the input as channels.

    Args:
      input_shape: `(H, W, C_in)`, the event shape of the input.
      output_channels: channels `C_out` of `shift` and `log_scale`.
      filters: channels of the hidden convolutions.
      num_blocks: number of residual blocks.
      conditional_size: size of a conditional vector input `c`; its leading dims must
        broadcast to the input's. `None`: no conditional input.
      dtype: float dtype of the weights and computation.
      **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Call: `layer(x, conditional=None)` with `x: [..., H, W, C_in]`, `conditional: [..., C]`;
    returns `shift, log_scale`, each `[..., H, W, C_out]`.

    References:
      Dinh, Sohl-Dickstein & Bengio (2016), Density estimation using Real NVP,
      https://arxiv.org/abs/1605.08803

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.nn import ConvConditioner
    >>> net = ConvConditioner((4, 4, 2), 2, filters=8, num_blocks=1)
    >>> shift, log_scale = net(tf.ones([3, 4, 4, 2]))
    >>> shift.shape
    TensorShape([3, 4, 4, 2])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        output_channels: int,
        *,
        filters: int = 64,
        num_blocks: int = 2,
        conditional_size: int | None = None,
        dtype=None,
        **kwargs,
    ):
        super().__init__(dtype=dtype, **kwargs)
        self.image_shape = check.shape(input_shape, "input_shape", rank=3)  # (H, W, C_in)
        self.output_channels = _positive_int(output_channels, "output_channels")
        self.filters = _positive_int(filters, "filters")
        self.num_blocks = check.integer(num_blocks, "num_blocks", minimum=0)
        self._init_conditional(conditional_size)

        def conv(channels, name, **kw):
            return keras.layers.Conv2D(
                channels, 3, padding="same", dtype=self.dtype_policy, name=name, **kw
            )

        self.input_conv = conv(self.filters, "input_conv")
        self.block_convs_a = [conv(self.filters, f"block_{i}_a") for i in range(self.num_blocks)]
        self.block_convs_b = [conv(self.filters, f"block_{i}_b") for i in range(self.num_blocks)]
        self.output_conv = conv(
            2 * self.output_channels,
            "shift_and_log_scale",
            kernel_initializer="zeros",
            bias_initializer="zeros",
        )
        height, width, channels = self.image_shape
        self.input_conv.build((None, height, width, channels + (self.conditional_size or 0)))
        for layer in [*self.block_convs_a, *self.block_convs_b, self.output_conv]:
            layer.build((None, height, width, self.filters))
        self.built = True

    def build(self, input_shape=None):  # Built in __init__; kept for Keras' loading protocol.
        self.built = True

    def call(self, inputs, conditional=None):
        inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        if inputs.shape.rank is not None and (
            inputs.shape.rank < 3 or not inputs.shape[-3:].is_compatible_with(self.image_shape)
        ):
            raise ValueError(
                f"{self.name}: the input must have event shape {list(self.image_shape)} "
                f"(H, W, C_in); got shape {inputs.shape}."
            )
        c = self._conditional_input(inputs, conditional, 3)
        leading = tf.shape(inputs)[:-3]
        h = tf.reshape(inputs, [-1, *self.image_shape])  # Conv2D expects rank 4
        if c is not None:
            c = tf.reshape(c, [-1, 1, 1, self.conditional_size])
            c = tf.broadcast_to(c, [tf.shape(h)[0], *self.image_shape[:2], self.conditional_size])
            h = tf.concat([h, c], axis=-1)
        out = self._network(h)
        out = tf.reshape(
            out, tf.concat([leading, [*self.image_shape[:2], 2 * self.output_channels]], 0)
        )
        return out[..., : self.output_channels], out[..., self.output_channels :]

    def _network(self, h):
        """The convolutions on `h: [N, H, W, C]`, for any `N`, the empty batch `N = 0` included.

        TensorFlow's oneDNN `Conv2D` kernel (on by default on x86 CPUs) returns a tensor of its
        *input's* shape for an empty batch, so the next bias add fails with "Incompatible shapes"
        (or, with as many output as input channels, the result has the wrong shape). So the
        convolutions never see an empty batch: a batch that is empty when traced gets zeros
        without running them, and one whose size is unknown until run time is padded with one
        zero row when empty (`tf.pad` by 0 rows forwards its input, and so does the full
        slice: no copy for a non-empty batch; under XLA the batch size is static).
        """
        n = h.shape[0]
        if n == 0:
            return tf.zeros([0, *self.image_shape[:2], 2 * self.output_channels], h.dtype)
        if n is None:
            n = tf.shape(h)[0]
            h = tf.pad(h, [[0, tf.maximum(1 - n, 0)], [0, 0], [0, 0], [0, 0]])
        h = tf.nn.relu(self.input_conv(h))
        for conv_a, conv_b in zip(self.block_convs_a, self.block_convs_b):
            h = tf.nn.relu(h + conv_b(tf.nn.relu(conv_a(h))))
        out = self.output_conv(h)
        return out if isinstance(n, int) else out[:n]

    def get_config(self) -> dict:
        config = self._base_config()
        config.update(
            input_shape=list(self.image_shape),
            output_channels=self.output_channels,
            filters=self.filters,
            num_blocks=self.num_blocks,
        )
        return config
