"""`continuous_flow`: a standard normal pushed through a `ContinuousFlow`, as a distribution.

Registered as the flow factory `"continuous_flow"` (`tfp_flows.flows.FACTORIES`), so Keras
models rebuild it from their config.

Example:

>>> import tensorflow as tf
>>> from tfp_flows.continuous import continuous_flow
>>> dist = continuous_flow([2], hidden_units=(8,), num_steps=4)
>>> dist.log_prob(tf.zeros([3, 2])).shape
TensorShape([3])
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows.continuous.bijector import ContinuousFlow
from tfp_flows.continuous.velocity import VelocityConv, VelocityMLP
from tfp_flows.flows import bases, register_factory

tfd = tfp.distributions

__all__ = ["continuous_flow"]


def _velocity(shape, dtype, num_frequencies, conditional_size, **options):
    """A `VelocityMLP` for `[D]`, a `VelocityConv` for `[H, W, C]`."""
    common = dict(num_frequencies=num_frequencies, conditional_size=conditional_size)
    common["dtype"] = dtype.name
    if len(shape) == 1:
        mlp = {k: options[k] for k in ("hidden_units", "fourier_features", "fourier_scale")}
        return VelocityMLP(shape[0], **mlp, **common)
    if len(shape) == 3:
        conv = {k: options[k] for k in ("filters", "num_layers")}
        return VelocityConv(shape, **conv, **common)
    raise ValueError(f"`event_shape` must be [D] or [H, W, C]; got {list(shape)}.")


@register_factory("continuous_flow")
def continuous_flow(
    event_shape,
    *,
    velocity=None,
    hidden_units: Sequence[int] = (128, 128, 128),
    fourier_features: int = 0,
    fourier_scale: float = 1.0,
    filters: int = 32,
    num_layers: int = 3,
    num_frequencies: int = 4,
    conditional_size: int | None = None,
    dtype=tf.float32,
    name: str = "continuous_flow",
    **solver_options,
) -> tfd.Distribution:
    """A continuous normalizing flow `x = F(z)`, `z ~ N(0, I)`, `F` the ODE map of a field.

    Args:
      event_shape: `[D]` (a `VelocityMLP`) or `[H, W, C]` (a `VelocityConv`).
      velocity: a field of your own instead (see `ContinuousFlow`); then the network options
        below are unused and the distribution cannot be rebuilt from a config.
      hidden_units: `VelocityMLP` widths (vectors).
      fourier_features, fourier_scale: `VelocityMLP`'s random Fourier features of `x` (none
        by default, a plain MLP: smooth fields, which reverse-KL fitting through the solver
        needs; `FlowMatchingModel`, fitting data, uses 64: on the rings toy set 300 CPU-s of
        flow matching reached 0.027 nats from the entropy with them and 0.51 without).
      filters, num_layers: `VelocityConv` size (images).
      num_frequencies, conditional_size: of the field (see `VelocityMLP`).
      dtype: float dtype.
      name: name of the distribution.
      **solver_options: `ContinuousFlow`'s `solver`, `num_steps`, `rtol`, `atol`, `trace`,
        `exact_trace_max_dims`, `hutchinson_samples` and `seed`, with its defaults (the full
        signature is `continuous_flow.__signature__`).

    Returns:
      A TFP distribution with `.bijector` the `ContinuousFlow` and `.distribution` the base.
    """
    _SIGNATURE.bind(event_shape, **solver_options)  # a TypeError names a wrong argument
    shape, dtype = check.shape(event_shape, "event_shape"), tf.as_dtype(dtype)
    if velocity is None:
        options = dict(hidden_units=hidden_units, filters=filters, num_layers=num_layers)
        options.update(fourier_features=fourier_features, fourier_scale=fourier_scale)
        velocity = _velocity(shape, dtype, num_frequencies, conditional_size, **options)
    bijector = ContinuousFlow(velocity, event_ndims=len(shape), dtype=dtype, **solver_options)
    return tfd.TransformedDistribution(bases.standard_normal(shape, dtype), bijector, name=name)


_SIGNATURE = check.derived_signature(
    ContinuousFlow.__init__,
    continuous_flow,
    drop=("velocity", "event_ndims", "validate_args"),
    name="continuous_flow",
)
continuous_flow.__signature__ = _SIGNATURE
