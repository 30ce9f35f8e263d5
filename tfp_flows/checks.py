"""The one data validator: checks data against a flow before any loss or update sees it.

* `check_data(dist, x)`: converts `x` to the flow's dtype and runs all the checks below.
* `check_dtype`: floating data of the flow's precision (integer images must be dequantised).
* `check_event_shape`: a shape `[..., *event_shape]`.
* `check_values`: concrete values that are finite, fit the flow's dtype and lie in the domain of
  a logit pre-transform (`data_domain`).

The losses (`tfp_flows.losses`) and the Keras models (`tfp_flows.keras`) call these.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["check_data", "check_dtype", "check_event_shape", "check_values", "data_domain"]


def _data_end_bijector(dist):
    """The bijector applied last when sampling (first on data), looking into chains."""
    bijector = getattr(dist, "bijector", None)
    while isinstance(bijector, tfp.bijectors.Composition) and bijector.bijectors:
        from tfp_flows.images import LogitTransform  # a Chain subclass; stop at it

        if isinstance(bijector, LogitTransform):
            break
        bijector = bijector.bijectors[0]
    return bijector


def check_data(dist: tfd.Distribution, x, *, name: str = "x") -> tf.Tensor:
    """Converts `x` to the flow's dtype and checks it; returns the tensor.

    Static checks (also when traced in a `tf.function`):

    * `TypeError` for data of the wrong dtype (see `check_dtype`);
    * `ValueError` for a shape that is not `[..., *dist.event_shape]`.

    Value checks, when `x` is concrete (eager tensors, NumPy arrays): see `check_values`.
    """
    check_dtype(dist, x, name=name)
    concrete = None if tf.is_symbolic_tensor(x) else x  # values known now (eager, NumPy)
    if concrete is not None:
        check_values(dist, concrete, name=name)
    x = tf.convert_to_tensor(x, dtype=dist.dtype)
    check_event_shape(dist, x.shape, name=name)
    return x


def check_dtype(dist: tfd.Distribution, x, *, name: str = "x") -> None:
    """Raises `TypeError` unless `x` is floating-point data the flow takes (a static check).

    Refused: `None`, non-numeric (object, string) data, integer and bool data (images must be
    dequantised first), and a float *tensor* of another precision than the flow's (NumPy arrays
    and lists are cast).
    """
    if x is None:
        raise TypeError(f"{name} is None; pass data of shape [..., {_event_text(dist)}].")
    x_dtype = getattr(x, "dtype", None)
    try:
        x_dtype = tf.as_dtype(np.asarray(x).dtype if x_dtype is None else x_dtype)
    except TypeError:  # object or str arrays: None inside, ragged lists, a generator
        x_dtype = None
    if x_dtype is None or x_dtype == tf.string:
        raise TypeError(
            f"{name} must be numeric data of shape [..., {_event_text(dist)}]; got "
            f"{type(x).__name__} of dtype {getattr(x, 'dtype', '?')}."
        )
    if x_dtype.is_integer or x_dtype == tf.bool:
        raise TypeError(
            f"{name} has integer dtype {x_dtype.name}; flows model continuous "
            f"({dist.dtype.name}) data. Integer images must be dequantised first "
            "(tfp_flows.images.dequantize: (k + uniform noise) / num_bins)."
        )
    if not x_dtype.is_floating:
        raise TypeError(f"{name} has dtype {x_dtype.name}; the flow needs {dist.dtype.name} data.")
    if tf.is_tensor(x) and x_dtype != dist.dtype:
        raise TypeError(
            f"{name} is a {x_dtype.name} tensor; the flow computes in {dist.dtype.name}. Cast it "
            "(tf.cast) or build the flow with the matching `dtype=`."
        )


def _event_text(dist) -> str:
    return ", ".join(map(str, dist.event_shape))


def data_domain(dist: tfd.Distribution) -> tuple[float, float] | None:
    """The interval the flow's data must lie in (`(0, 1)`-style bounds of a logit pre-transform
    as `(0.0, 1.0)`), or `None` for data on the whole real line."""
    from tfp_flows.images import LogitTransform

    return (0.0, 1.0) if isinstance(_data_end_bijector(dist), LogitTransform) else None


def check_values(dist: tfd.Distribution, values, *, name: str = "x") -> None:
    """Raises `ValueError` naming the problem unless the concrete data `values` fit the flow.

    * NaN or inf values (counted, the first one located);
    * float64 values that overflow the flow's float32 (e.g. 1e39 becomes inf when cast);
    * values outside `[0, 1]` when the flow starts with a `LogitTransform` (e.g. raw pixel
      levels that were not scaled).
    """
    values = np.asarray(values)
    if values.dtype.kind != "f" or not values.size:
        return
    finite = np.isfinite(values)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name} has {int((~finite).sum())} non-finite values (NaN or inf), the first at "
            f"index {index}."
        )
    low, high = float(values.min()), float(values.max())
    limit = float(np.finfo(dist.dtype.as_numpy_dtype).max)
    if max(-low, high) > limit:
        raise ValueError(
            f"{name} has values in [{low:g}, {high:g}], beyond the largest {dist.dtype.name} "
            f"({limit:g}): they become inf when cast. Rescale (standardise) the data."
        )
    domain = data_domain(dist)
    if domain is not None and (low < domain[0] or high > domain[1]):
        raise ValueError(
            f"{name} has values in [{low:g}, {high:g}], but this flow's logit pre-transform "
            f"needs data in [{domain[0]:g}, {domain[1]:g}]: dequantise and scale pixel levels "
            "with tfp_flows.images.dequantize(pixels, num_bins)."
        )


def check_event_shape(dist: tfd.Distribution, shape, *, name: str = "x") -> None:
    """Raises `ValueError` unless `shape` is `[..., *dist.event_shape]`."""
    shape = tf.TensorShape(shape)
    event_shape = dist.event_shape
    rank = event_shape.rank
    if rank is None or shape.rank is None:
        return
    if shape.rank < rank or not shape[shape.rank - rank :].is_compatible_with(event_shape):
        raise ValueError(
            f"{name} has shape {shape}; the flow's events have shape {event_shape}, so "
            f"{name} must have shape [..., {', '.join(map(str, event_shape))}]."
        )
