"""Pixel data for `DensityModel(dequantize=True)`: checked levels, and fresh dequantisation."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfp_flows.checks import check_event_shape
from tfp_flows.train import in_replica

__all__ = ["dequantized", "grid_tolerance", "is_integer", "pixel_batch_check", "pixel_levels"]


def is_integer(x) -> bool:
    """Whether `x` (a tensor, an array or a nested list) has an integer dtype."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        dtype = np.asarray(x).dtype
    try:
        return tf.as_dtype(dtype).is_integer
    except TypeError:
        return False


def grid_tolerance(dtype, top: int) -> float:
    """How far (in levels) a float `k / top` of `dtype` may lie from `k` after rounding."""
    return max(1e-3, top * float(np.finfo(dtype).eps))


def _float_levels(values: np.ndarray, name: str, top: int) -> np.ndarray:
    if not np.isfinite(values).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise ValueError(f"{name} has non-finite values (NaN or inf), e.g. at {index}.")
    scaled = values.astype(np.float64) * top
    levels = np.rint(scaled)
    off = float(np.abs(scaled - levels).max()) if values.size else 0.0
    if off > grid_tolerance(values.dtype, top):
        raise ValueError(
            f"{name} has float values off the grid k / {top} (k = 0, ..., {top}) by up "
            f"to {off:.3g} of a level: with dequantize=True, pass the pixels (integers, "
            f"or floats k / {top}), not data dequantised already."
        )
    return levels


def pixel_levels(flow, data, name: str, num_bins: int, check_event: bool = True):
    """Pixel data checked up front: integer levels in `[0, num_bins - 1]`, or floats
    `k / (num_bins - 1)`. Returns the levels as integers and the span of the points they
    dequantise to (`None` unless `check_event` and not empty)."""
    values, top = np.asarray(data), num_bins - 1
    if values.dtype.kind == "f":
        levels = _float_levels(values, name, top)
    elif values.dtype.kind in "iu":
        levels = values
    else:
        raise TypeError(
            f"{name} must be pixel levels (an integer dtype, or floats k / {top}); got "
            f"dtype {values.dtype}."
        )
    if check_event:
        check_event_shape(flow, values.shape, name=name)
        if values.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 examples): there is nothing to fit.")
    if not values.size:
        return levels.astype(np.int32), None
    low, high = levels.min(), levels.max()
    if low < 0 or high > top:
        floats = f" (floats: k / {top}, in [0, 1])" if values.dtype.kind == "f" else ""
        raise ValueError(
            f"{name} has pixel levels outside [0, {top}], the range of num_bins="
            f"{num_bins}{floats}: got values in [{values.min()}, {values.max()}]."
        )
    span = (float(low) / num_bins, (float(high) + 1) / num_bins) if check_event else None
    return levels.astype(np.uint8 if top <= 255 else np.int32), span


def pixel_batch_check(t: tf.Tensor, num_bins: int) -> tf.Tensor:
    """In-graph `pixel_levels`: levels in `[0, num_bins - 1]`, or floats on the grid."""
    top = num_bins - 1
    if t.dtype.is_integer:
        levels = tf.cast(t, tf.int64)
        message = f"pixel levels outside [0, {top}] (num_bins={num_bins})"
        checks = [
            tf.debugging.assert_greater_equal(levels, tf.constant(0, tf.int64), message),
            tf.debugging.assert_less_equal(levels, tf.constant(top, tf.int64), message),
        ]
    elif t.dtype.is_floating:
        t = tf.debugging.assert_all_finite(t, "non-finite values (NaN or inf) in the data")
        scaled = tf.cast(t, tf.float64) * top
        off = tf.abs(scaled - tf.round(scaled))
        tolerance = grid_tolerance(t.dtype.as_numpy_dtype, top)
        message = (
            f"pixel values outside [0, 1] or off the grid k / {top}: with dequantize=True, "
            f"pass the pixels (integers, or floats k / {top}), not data dequantised already"
        )
        checks = [
            tf.debugging.assert_greater_equal(t, tf.cast(0, t.dtype), message),
            tf.debugging.assert_less_equal(t, tf.cast(1, t.dtype), message),
            tf.debugging.assert_less_equal(off, tf.constant(tolerance, tf.float64), message),
        ]
    else:  # refused by `check_data` in the step, naming the dtype
        return t
    with tf.control_dependencies(checks):
        return tf.identity(t)


def dequantized(pixels: tf.Tensor, num_bins: int, dtype, seed: int, draws) -> tf.Tensor:
    """`(k + u) / num_bins` with fresh `u ~ U[0, 1)`, for integer levels `k` or floats
    `k / (num_bins - 1)`, in `dtype`. The noise is drawn statelessly from `(seed, draws)`
    after `draws` (a counter variable) is incremented; each replica folds in its id."""
    if pixels.dtype.is_floating:
        k = tf.round(tf.cast(pixels, dtype) * (num_bins - 1))
    else:
        k = tf.cast(pixels, dtype)
    with tf.control_dependencies([k]):  # a batch refused by the batch check draws nothing
        draws.assign_add(1)
    seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(draws, tf.int64)])
    if in_replica():  # the same step, other data: other noise
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.random.experimental.stateless_fold_in(seed, replica)
    u = tf.random.stateless_uniform(tf.shape(k), seed=seed, dtype=dtype)
    return (k + u) / num_bins
