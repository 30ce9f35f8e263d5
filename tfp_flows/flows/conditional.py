"""Conditional flows `p(x | c)`: pass the condition `c` to every conditional layer of a flow.

`tfb.Chain` routes keyword arguments by sub-bijector name; `conditional_kwargs` builds that
nested dict, and `condition` binds it, giving a distribution whose `log_prob` and `sample` take
no condition.

Example:

>>> import tensorflow as tf
>>> from tfp_flows import flows
>>> dist = flows.maf(2, num_layers=1, hidden_units=(4,), conditional_size=3)
>>> flows.condition(dist, tf.zeros([5, 3])).sample(2, seed=(1, 2)).shape
TensorShape([2, 5, 2])
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import bijectors as fb

tfb, tfd = tfp.bijectors, tfp.distributions

__all__ = ["condition", "conditional_kwargs"]


def _takes_condition(bijector) -> bool:
    return getattr(bijector, "conditional_size", None) is not None


def _route(bijector, kwargs) -> dict | None:
    """The nested kwargs that deliver `kwargs` to every conditional bijector under `bijector`."""
    if _takes_condition(bijector):
        return dict(kwargs)
    if isinstance(bijector, tfb.Composition):  # tfb.Chain (or its non-composite `_Chain`)
        routed = {b.name: _route(b, kwargs) for b in bijector.bijectors}
        routed = {k: v for k, v in routed.items() if v is not None}
        return routed or None
    inner = getattr(bijector, "bijector", None)  # tfb.Invert, FactorOut
    return _route(inner, kwargs) if isinstance(inner, tfb.Bijector) else None


def conditional_kwargs(dist_or_bijector, conditional) -> dict:
    """`bijector_kwargs` that pass `conditional` to every conditional layer of a flow.

    `tfb.Chain` routes keyword arguments by sub-bijector name; this builds that nested dict.
    Raises `ValueError` if the flow has no conditional layer, so a condition is never ignored.
    """
    bijector = getattr(dist_or_bijector, "bijector", dist_or_bijector)
    routed = _route(bijector, {"conditional": conditional})
    if routed is None:
        raise ValueError(
            "This flow has no conditional layers (build it with `conditional_size=...`); "
            "refusing to ignore the condition."
        )
    return routed


class _Conditioned(fb.FlowBijector):
    """A bijector with its keyword arguments bound (used by `condition`).

    A `FlowBijector`, so the log-det computed with each transform is cached: the inner chain's
    layers cache theirs too, and `experimental_sample_and_log_prob` runs each network once.
    Inputs whose batch shape does not broadcast with the condition's are refused, with both
    shapes named: statically where they are known, else by a run-time assertion.
    """

    def __init__(
        self, bijector: tfb.Bijector, kwargs: dict, conditional, name: str = "conditioned"
    ):
        parameters = dict(locals())
        super().__init__(
            forward_min_event_ndims=bijector.forward_min_event_ndims,
            inverse_min_event_ndims=bijector.inverse_min_event_ndims,
            is_constant_jacobian=bijector.is_constant_jacobian,
            dtype=bijector.dtype,
            parameters=parameters,
            name=name,
        )
        self.bijector = bijector
        self._kwargs = kwargs
        self._conditional = conditional

    # TFP's cache hashes a bijector by its parameters, recursively: for a whole flow and a nested
    # dict of tensors, on every lookup. A bound flow is only ever equal to itself.
    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def _check_batch_shape(self, x, what):
        """`x`, checked: its batch shape must broadcast with the condition's."""
        c = self._conditional
        ndims = self.forward_min_event_ndims if what == "forward" else self.inverse_min_event_ndims
        if x.shape.rank is not None:
            x_batch, c_batch = x.shape[: x.shape.rank - ndims], c.shape[:-1]
            try:
                tf.broadcast_static_shape(x_batch, c_batch)
            except ValueError:
                raise ValueError(
                    f"{self.name}: the batch shape {x_batch} of the {what} input does not "
                    f"broadcast with the batch shape {c_batch} of the condition."
                ) from None
            if x_batch.is_fully_defined() and c_batch.is_fully_defined():
                return x
        x_batch, c_batch = tf.shape(x)[: tf.rank(x) - ndims], tf.shape(c)[:-1]
        message = [
            f"{self.name}: the batch shape",
            x_batch,
            f"of the {what} input does not broadcast with the batch shape",
            c_batch,
            "of the condition.",
        ]
        ok = _broadcastable(x_batch, c_batch)
        with tf.control_dependencies([tf.debugging.Assert(ok, message)]):
            return tf.identity(x)

    def _forward_and_log_det(self, x):
        x = self._check_batch_shape(x, "forward")
        y = self.bijector.forward(x, **self._kwargs)
        ndims = self.forward_min_event_ndims
        return y, self.bijector.forward_log_det_jacobian(x, event_ndims=ndims, **self._kwargs)

    def _inverse_and_log_det(self, y):
        y = self._check_batch_shape(y, "inverse")
        x = self.bijector.inverse(y, **self._kwargs)
        ndims = self.inverse_min_event_ndims
        return x, self.bijector.inverse_log_det_jacobian(y, event_ndims=ndims, **self._kwargs)

    def _forward_event_shape(self, input_shape):
        return self.bijector.forward_event_shape(input_shape)

    def _inverse_event_shape(self, output_shape):
        return self.bijector.inverse_event_shape(output_shape)

    def _forward_event_shape_tensor(self, input_shape):
        return self.bijector.forward_event_shape_tensor(input_shape)

    def _inverse_event_shape_tensor(self, output_shape):
        return self.bijector.inverse_event_shape_tensor(output_shape)


def _broadcastable(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Whether the shapes `a` and `b` (1-D int32 tensors) broadcast, aligned on the right."""
    size = tf.maximum(tf.size(a), tf.size(b))
    a = tf.concat([tf.ones([size - tf.size(a)], tf.int32), a], 0)
    b = tf.concat([tf.ones([size - tf.size(b)], tf.int32), b], 0)
    return tf.reduce_all((a == b) | (a == 1) | (b == 1))


def condition(dist: tfd.TransformedDistribution, conditional) -> tfd.TransformedDistribution:
    """The flow `p(x | c)` with `c = conditional` bound: use its `log_prob` and `sample` as usual.

    `conditional` has shape `[*batch, conditional_size]`; the result has batch shape `batch`, so
    `sample(n)` draws `[n, *batch, *event]` (one draw per condition) and `log_prob(x)` takes
    `x` of shape `[..., *batch, *event]`.

    Raises `ValueError` if the flow has no conditional layers.
    """
    kwargs = conditional_kwargs(dist, conditional)
    conditional = tf.convert_to_tensor(conditional, dtype=dist.dtype)
    batch = conditional.shape[:-1]
    if not batch.is_fully_defined():
        batch = tf.shape(conditional)[:-1]
    base = dist.distribution
    if not (isinstance(batch, tf.TensorShape) and batch.rank == 0):
        base = tfd.BatchBroadcast(base, with_shape=batch)
    return tfd.TransformedDistribution(
        base, _Conditioned(dist.bijector, kwargs, conditional), name=f"{dist.name}_given_c"
    )
