"""What coupling and autoregressive layers share about their conditioner: the Keras-layer checks,
the call (with or without a conditional input), and turning its output into a transformer's params.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from tfp_flows.bijectors._base import FlowBijector

__all__ = ["ConditionedBijector", "call_conditioner", "check_conditioner", "conditioner_params"]


def check_conditioner(conditioner, dtype=None) -> tuple[tf.DType | None, list]:
    """`(dtype, keras_layers)` for a layer calling `conditioner`; `ValueError`s name the problem.

    A Keras layer must be built (its variables must exist, to be tracked) and its variable dtype
    is the layer's dtype (`dtype`, when given, must match it). Under a mixed policy (bfloat16
    compute, float32 variables) the layer computes in float32.
    """
    if not callable(conditioner):
        raise ValueError(f"`conditioner` must be callable; got {conditioner!r}.")
    if not isinstance(conditioner, keras.layers.Layer):
        return dtype, []
    if not conditioner.built or not conditioner.weights:
        raise ValueError(
            f"`conditioner` {conditioner.name!r} is an unbuilt Keras layer, so its variables "
            "do not exist yet. Build it first (call it once on a batch of its input, or call "
            "`conditioner.build(shape)`), or use the networks of `tfp_flows.nn`, which are "
            "built at construction."
        )
    layer_dtype = tf.as_dtype(conditioner.dtype_policy.variable_dtype)
    if dtype is None:
        dtype = layer_dtype
    elif tf.as_dtype(dtype) != layer_dtype:
        raise ValueError(
            f"`dtype` {tf.as_dtype(dtype).name} differs from the conditioner's variable "
            f"dtype {layer_dtype.name}; build the conditioner with `dtype=`."
        )
    return dtype, [conditioner]


def call_conditioner(conditioner, inputs, conditional, name: str, **call_kwargs):
    """`conditioner(inputs[, conditional=c], **call_kwargs)`; a missing condition is named."""
    if conditional is not None:
        return conditioner(inputs, conditional=conditional, **call_kwargs)
    size = getattr(conditioner, "conditional_size", None)
    if size is not None:
        raise ValueError(
            f"{name}: the conditioner takes a conditional input of size {size}; pass "
            "`conditional=...` to the bijector (through a distribution: "
            "`bijector_kwargs={'conditional': c}`)."
        )
    return conditioner(inputs, **call_kwargs)


def conditioner_params(
    output, transformer, reference: tf.Tensor, event_ndims: int, name: str, *, none_is_zero: bool
) -> tf.Tensor:
    """A conditioner's `output` as the transformer's params, `[..., *event_shape, P]`.

    `output` is params of that shape (cast to `reference`'s dtype: a mixed-precision network
    computes in bfloat16), or, for a transformer with `P = 2`, a tuple `(shift, log_scale)`
    (stacked on a new last axis), or for `P = 1` a tuple `(shift, ignored)`. `reference` is the
    transformed part (its event shape and dtype); leading dims may broadcast against it. A
    `None` in a tuple is zero when `none_is_zero`, else only an ignored log-scale may be None.
    """
    p = transformer.num_params
    event = reference.shape[reference.shape.rank - event_ndims :]
    dims = ", ".join(str(d) for d in event)
    if isinstance(output, tuple | list):
        if len(output) != 2 or p not in (1, 2):
            raise ValueError(
                f"{name}: a conditioner may return a tuple (shift, log_scale) only for a "
                f"transformer with 1 or 2 params; got a {type(output).__name__} of length "
                f"{len(output)} for {type(transformer).__name__} (num_params={p}). Return "
                f"params of shape [..., {dims}, {p}] (e.g. `num_params={p}` in `tfp_flows.nn`)."
            )
        values = []
        for what, value in zip(("shift", "log_scale"), output):
            if value is None and not (none_is_zero or (p == 1 and what == "log_scale")):
                raise ValueError(
                    f"{name}: the conditioner returned no {what}; only a 1-param transformer "
                    "(additive) allows a None log_scale."
                )
            value = tf.zeros_like(reference) if value is None else tf.cast(value, reference.dtype)
            if value.shape.rank is not None and (
                value.shape.rank < event_ndims
                or not value.shape[value.shape.rank - event_ndims :].is_compatible_with(event)
            ):
                raise ValueError(
                    f"{name}: the conditioner's {what} must have shape [..., {dims}] for the "
                    f"transformed part: expected {reference.shape}, got {value.shape}."
                )
            values.append(value)
        if p == 1:
            return values[0][..., None]
        shift, log_scale = values
        if not (shift.shape.is_fully_defined() and shift.shape == log_scale.shape):
            shape = tf.broadcast_dynamic_shape(tf.shape(shift), tf.shape(log_scale))
            shift, log_scale = tf.broadcast_to(shift, shape), tf.broadcast_to(log_scale, shape)
        return tf.stack([shift, log_scale], axis=-1)
    params = tf.cast(output, reference.dtype)
    rank = params.shape.rank
    if rank is not None and (
        rank < event_ndims + 1
        or not params.shape[rank - event_ndims - 1 :].is_compatible_with([*event, p])
    ):
        expected = "(shift, log_scale) or params" if p == 2 else "params"
        raise ValueError(
            f"{name}: the conditioner must return {expected} of shape [..., {dims}, {p}] for "
            f"input shape {reference.shape}; got shape {params.shape}."
        )
    return params


class ConditionedBijector(FlowBijector):
    """The base of `Coupling` and `MaskedAutoregressiveFlow`: a conditioner (the network) and a
    transformer (the elementwise map whose params it predicts), kept apart.

    Checks the conditioner (`check_conditioner`), tracks a Keras conditioner's variables and
    makes the bijector constant-Jacobian when the transformer is (`Additive`).
    """

    def __init__(self, conditioner, transformer, *, event_ndims: int, dtype, **kwargs):
        dtype, keras_layers = check_conditioner(conditioner, dtype)
        super().__init__(
            forward_min_event_ndims=event_ndims,
            is_constant_jacobian=bool(getattr(transformer, "is_constant_jacobian", False)),
            dtype=dtype,
            keras_layers=keras_layers,
            **kwargs,
        )
        self._conditioner, self._transformer = conditioner, transformer
        # tf.Module does not look inside Keras layers; list their variables so that
        # `trainable_variables` (and checkpoints, tapes, tfp.vi) see them.
        self._layer_variables = [w.value for layer in keras_layers for w in layer.weights]

    @property
    def conditioner(self) -> Callable:
        """The network that returns the transformer's params."""
        return self._conditioner

    @property
    def transformer(self):
        """The elementwise map (a `transformers.Transformer` or a user object)."""
        return self._transformer
