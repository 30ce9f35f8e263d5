"""A convolutional ResNet coupling conditioner for image events."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.nn._conditioner_base import Conditioner, positive_int

__all__ = ["ConvConditioner"]


@keras.saving.register_keras_serializable(package="tfp_flows")
class ConvConditioner(Conditioner):
    """A small convolutional ResNet returning a transformer's params for image coupling layers.

    `h = relu(conv3x3(x))`, then `num_blocks` residual blocks
    `h = relu(h + conv3x3(relu(conv3x3(h))))`, then a zero-initialised `conv3x3` to
    `P * output_channels` channels, reshaped to `[..., H, W, output_channels, P]`; with
    `num_params=None`, `P = 2` split in two halves `(shift, log_scale)`. A conditional vector
    is broadcast over the `H x W` positions and concatenated to the input as channels.

    Args:
      input_shape: `(H, W, C_in)`, the event shape of the input.
      output_channels: channels `C_out` of `shift` and `log_scale`.
      filters: channels of the hidden convolutions.
      num_blocks: number of residual blocks.
      conditional_size: size of a conditional vector input `c`; its leading dims must
        broadcast to the input's. `None`: no conditional input.
      num_params: params per transformed element `P` (`transformer.num_params`), or `None`
        for the pair `(shift, log_scale)`.
      dtype: float dtype of the weights and computation.
      **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Call: `layer(x, conditional=None)` with `x: [..., H, W, C_in]`, `conditional: [..., C]`;
    returns params `[..., H, W, C_out, P]`, or `shift, log_scale`, each `[..., H, W, C_out]`.

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
        num_params: int | None = None,
        dtype=None,
        **kwargs,
    ):
        super().__init__(dtype=dtype, **kwargs)
        self._per_element = self._init_num_params(num_params)
        self.image_shape = check.shape(input_shape, "input_shape", rank=3)  # (H, W, C_in)
        self.output_channels = positive_int(output_channels, "output_channels")
        self.filters = positive_int(filters, "filters")
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
            self._per_element * self.output_channels,
            "shift_and_log_scale" if num_params is None else "params",
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
        leading = tf.concat([leading, self.image_shape[:2]], 0)
        # The channel count is explicit: with an empty batch a -1 could not be inferred.
        out = tf.reshape(out, tf.concat([leading, [self._per_element * self.output_channels]], 0))
        return self._split_output(out, leading, self.output_channels)

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
            channels = self._per_element * self.output_channels
            return tf.zeros([0, *self.image_shape[:2], channels], h.dtype)
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
