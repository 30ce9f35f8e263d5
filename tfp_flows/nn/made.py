"""MADE: a masked dense network whose outputs are autoregressive in its inputs."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.nn._made_degrees import check_order, make_degrees, make_masks
from tfp_flows.nn._made_sequential import SequentialPasses

__all__ = ["MADE"]


@keras.saving.register_keras_serializable(package="tfp_flows")
class MADE(SequentialPasses, keras.layers.Layer):
    r"""Masked Autoencoder for Distribution Estimation: an autoregressive dense network.

    Each input dimension `i` gets a degree `m(i)` in `1..D` (its position in `input_order`).
    Hidden unit `k` of a layer gets a degree `m(k)` in `[min degree of the layer below, D - 1]`,
    and the kernels are multiplied by constant 0/1 masks:

        hidden mask   M[i, k] = 1  if  m(k) >= m(i)
        output mask   M[k, d] = 1  if  m(d) >  m(k)

    so output `d` depends only on the inputs `i` with `m(i) < m(d)`: the Jacobian of the outputs
    with respect to the inputs is strictly triangular under the ordering. Each layer is one matmul
    with `kernel * mask`; the output kernel's columns are ordered `(dimension, param)` so the
    reshape to `[..., D, num_params]` is free. The output layer starts at zero, so a flow built on
    a new MADE is the identity.

    A conditional input `c` of size `conditional_size` is concatenated, unmasked, to the input of
    every layer (hidden and output): every output may depend on all of `c`.

    Args:
      event_size: number of input dimensions `D`.
      hidden_units: sizes of the hidden layers.
      num_params: outputs per input dimension (2 for a shift and a log-scale).
      input_order: `"left-to-right"`, `"right-to-left"`, `"random"` (drawn with `seed`), or an
        explicit array of shape `[D]`: a permutation of `1..D` giving each dimension's degree
        (the dimension with degree 1 comes first and depends on nothing).
      hidden_degrees: `"equal"` (degrees spread evenly over the allowed range) or `"random"`.
      activation: hidden activation, any name or callable `keras.activations.get` accepts.
      conditional_size: size `C` of a conditional input, or `None` for none.
      kernel_initializer: initializer of the hidden kernels (the output layer is zero).
      seed: seed of the random orderings; drawn at construction if `None` and kept in the config.
      dtype: float dtype of the weights and computation.
      name: name of the layer.

    Call:
      `made(x, conditional=None)` with `x` of shape `[..., D]` and `conditional` of shape
      `[..., C]` (leading dims broadcast with those of `x`); returns `[..., D, num_params]`.
      `weights=(kernels, biases)` replaces the layer's masked weights (the sequential passes
      of a MAF: `sequential_blocks`, from `sequential_weights`, `sequential_plan` and
      `truncated_weights`).

    References:
      Germain et al. (2015), MADE: Masked Autoencoder for Distribution Estimation,
      https://arxiv.org/abs/1502.03509

    Example:

    >>> import numpy as np
    >>> from tfp_flows.nn import MADE
    >>> made = MADE(3, hidden_units=(8,), num_params=2)
    >>> made(np.zeros([5, 3], np.float32)).shape
    TensorShape([5, 3, 2])
    >>> connectivity = made.masks[0] @ made.masks[1]  # paths from input i to output d
    >>> (connectivity > 0).astype(int)
    array([[0, 1, 1],
           [0, 0, 1],
           [0, 0, 0]])
    """

    def __init__(
        self,
        event_size: int,
        hidden_units: Sequence[int] = (64, 64),
        num_params: int = 2,
        *,
        input_order: str | Sequence[int] = "left-to-right",
        hidden_degrees: str = "equal",
        activation="relu",
        conditional_size: int | None = None,
        kernel_initializer="glorot_uniform",
        seed: int | None = None,
        dtype=None,
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(dtype=dtype, name=name, **kwargs)
        event_size = check.integer(event_size, "event_size")
        hidden_units = check.positive_ints(hidden_units, "hidden_units")
        num_params = check.integer(num_params, "num_params")
        if hidden_degrees not in ("equal", "random"):
            raise ValueError(
                f"`hidden_degrees` must be 'equal' or 'random'; got {hidden_degrees!r}."
            )
        conditional_size = check.integer(conditional_size, "conditional_size", allow_none=True)
        self.event_size = int(event_size)
        self.hidden_units = tuple(hidden_units)
        self.num_params = int(num_params)
        self.conditional_size = None if conditional_size is None else int(conditional_size)
        self.hidden_degrees = hidden_degrees
        self.seed = int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        rng = np.random.default_rng(self.seed)
        self._input_order_arg = check_order(input_order, self.event_size)
        self.degrees = make_degrees(
            self.event_size, self.hidden_units, self._input_order_arg, hidden_degrees, rng
        )
        self.masks = make_masks(self.degrees)
        self.build((None, self.event_size))

    @property
    def input_order(self) -> np.ndarray:
        """The degree (1..D) of each input; output `d` sees the inputs of degree `< m(d)`."""
        return self.degrees[0]

    def build(self, input_shape):
        if getattr(self, "_kernels", None):  # built in __init__; Keras may call build again
            return
        p, c = self.num_params, self.conditional_size or 0
        # Kernel masks: the autoregressive masks with ones for the conditional rows, and the
        # output mask repeated per param so column d * P + j belongs to dimension d, param j.
        kernel_masks = [*self.masks[:-1], np.repeat(self.masks[-1], p, axis=1)]
        self._kernels, self._biases, self._kernel_masks = [], [], []
        for i, mask in enumerate(kernel_masks):
            mask = np.concatenate([mask, np.ones([c, mask.shape[1]])], axis=0)
            last = i == len(kernel_masks) - 1
            fan_in, fan_out = mask.shape
            self._kernels.append(
                self.add_weight(
                    shape=(fan_in, fan_out),
                    initializer="zeros" if last else self.kernel_initializer,
                    name=f"kernel_{i}",
                )
            )
            self._biases.append(
                self.add_weight(shape=(fan_out,), initializer="zeros", name=f"bias_{i}")
            )
            self._kernel_masks.append(tf.constant(mask, dtype=self.compute_dtype))

    def masked_kernels(self) -> list[tf.Tensor]:
        """The kernels times their masks, what each layer multiplies by."""
        return [
            tf.cast(kernel, self.compute_dtype) * mask
            for kernel, mask in zip(self._kernels, self._kernel_masks)
        ]

    def call(self, x, conditional=None, weights=None):
        x = tf.convert_to_tensor(x, dtype=self.compute_dtype)
        d = self.event_size
        if x.shape.rank is None or x.shape.rank < 1 or x.shape[-1] != d:
            raise ValueError(
                f"MADE '{self.name}': expected inputs of shape [..., {d}]; got {x.shape}."
            )
        if self.conditional_size is None and conditional is not None:
            raise ValueError(
                f"MADE '{self.name}' was built without a conditional input (conditional_size=None) "
                "but was called with `conditional`."
            )
        if self.conditional_size is not None:
            if conditional is None:
                raise ValueError(
                    f"MADE '{self.name}' was built with conditional_size={self.conditional_size} "
                    "and needs a `conditional` input of shape [..., "
                    f"{self.conditional_size}]; none was given."
                )
            conditional = tf.convert_to_tensor(conditional, dtype=self.compute_dtype)
            c = self.conditional_size
            if (
                conditional.shape.rank is None
                or conditional.shape.rank < 1
                or conditional.shape[-1] != c
            ):
                raise ValueError(
                    f"MADE '{self.name}': expected a `conditional` input of shape [..., {c}]; "
                    f"got {conditional.shape}."
                )
            if not (x.shape[:-1].is_fully_defined() and x.shape[:-1] == conditional.shape[:-1]):
                lead = tf.broadcast_dynamic_shape(tf.shape(x)[:-1], tf.shape(conditional)[:-1])
                x = tf.broadcast_to(x, tf.concat([lead, [d]], 0))
                conditional = tf.broadcast_to(conditional, tf.concat([lead, [c]], 0))
            conditional = tf.reshape(conditional, [-1, c])

        static_lead = x.shape[:-1].is_fully_defined()
        lead_shape = x.shape[:-1].as_list() if static_lead else tf.shape(x)[:-1]
        h = x if x.shape.rank == 2 else tf.reshape(x, [-1, d])
        last = len(self._kernels) - 1
        kernels, biases = (self.masked_kernels(), self._biases) if weights is None else weights
        for i, (kernel, bias) in enumerate(zip(kernels, biases)):
            if conditional is not None:
                h = tf.concat([h, conditional], axis=-1)
            h = tf.nn.bias_add(tf.matmul(h, kernel), bias)
            if i < last:
                h = self.activation(h)
        if static_lead:  # a static reshape: no shape ops in the graph
            return tf.reshape(h, [*lead_shape, d, self.num_params])
        return tf.reshape(h, tf.concat([lead_shape, [d, self.num_params]], 0))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.event_size, self.num_params)

    def get_config(self) -> dict:
        config = super().get_config()
        order = self._input_order_arg
        config.update(
            event_size=self.event_size,
            hidden_units=list(self.hidden_units),
            num_params=self.num_params,
            input_order=order if isinstance(order, str) else [int(v) for v in order],
            hidden_degrees=self.hidden_degrees,
            activation=keras.activations.serialize(self.activation),
            conditional_size=self.conditional_size,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            seed=self.seed,
        )
        return config
