"""`DensityModel`'s data checks: arrays up front, datasets and generators batch by batch."""

from __future__ import annotations

import types

import keras
import numpy as np
import tensorflow as tf

from tfp_flows.checks import check_dtype, check_event_shape, check_values, data_domain
from tfp_flows.models._pixels import pixel_batch_check, pixel_levels

__all__ = ["DataChecks"]


def is_batches(data) -> bool:
    """A Python generator or iterator of batches (not an array, list or dataset)."""
    return isinstance(data, types.GeneratorType) or (
        hasattr(data, "__next__") and not hasattr(data, "__array__")
    )


def _no_condition(x: np.ndarray) -> np.ndarray:
    """An empty `[N, 0]` condition for an unconditional flow's `(x, y, sample_weight)` data:
    Keras drops the sample weights of data without `y` (`pack_x_y_sample_weight`)."""
    return np.zeros([len(x), 0], x.dtype)


def _checked_sample_weight(weights, num_examples: int) -> np.ndarray:
    w = np.asarray(weights)
    if w.dtype.kind not in "biuf" or w.shape != (num_examples,):
        raise ValueError(
            f"sample_weight must be {num_examples} numbers, one per example; got shape "
            f"{w.shape} and dtype {w.dtype}."
        )
    w = w.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise ValueError(
            "sample_weight must be finite and non-negative, with a positive sum; got values in "
            f"[{w.min():g}, {w.max():g}]."
        )
    return w


def _in_domain(t: tf.Tensor, domain) -> tf.Tensor:
    """`t`, asserted within `domain`, the range of the flow's logit pre-transform."""
    message = (
        f"data outside [{domain[0]:g}, {domain[1]:g}], the domain of this flow's "
        "logit pre-transform: scale pixel levels (tfp_flows.images.dequantize)"
    )
    checks = [
        tf.debugging.assert_greater_equal(t, tf.cast(domain[0], t.dtype), message),
        tf.debugging.assert_less_equal(t, tf.cast(domain[1], t.dtype), message),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(t)


class DataChecks:
    """Mixin of `DensityModel`: checks the data of `fit` and `evaluate` before any step runs.

    Uses the model's `flow`, `conditional_size`, `dequantize` and `num_bins`; records the data's
    span in `_data_span` for the skip message.
    """

    _data_span = None

    def _validated(self, data, name: str, check_event: bool = True):
        """Checks arrays up front and datasets batch by batch, before any training step."""
        if isinstance(data, tf.data.Dataset):
            return data.map(self._batch_check)
        if data is None or isinstance(data, keras.utils.PyDataset):
            return data
        if is_batches(data):  # a generator of batches: each checked as it comes
            return self._checked_batches(data, name)
        if self.dequantize and check_event:  # x (not a condition): pixels
            levels, span = pixel_levels(self.flow, data, name, self.num_bins)
            self._data_span = span or self._data_span
            return levels
        check_dtype(self.flow, data, name=name)
        array = np.asarray(data)
        if check_event:
            check_event_shape(self.flow, array.shape, name=name)
            if array.shape[0] == 0:
                raise ValueError(f"{name} is empty (0 examples): there is nothing to fit.")
        try:
            check_values(self.flow, array, name=name)
        except ValueError as e:
            raise ValueError(f"{e} No training step was run.") from None
        if check_event and array.size:
            self._data_span = (float(array.min()), float(array.max()))
        return array.astype(self.flow.dtype.as_numpy_dtype, copy=False)

    def _checked_batches(self, batches, name: str):
        for batch in batches:
            parts = batch if isinstance(batch, tuple) else (batch,)
            x = self._validated(parts[0], name)
            c = None if len(parts) < 2 or parts[1] is None else self._validated(parts[1], "c", 0)
            self._check_condition_given(c is not None, name)
            yield (x, *parts[1:])  # Keras takes a generator's batches as tuples

    def _batch_check(self, *batch):
        """In-graph checks of a dataset's batch: finite values, and the pre-transform's range."""
        domain = data_domain(self.flow)
        checked = []
        for i, t in enumerate(batch):
            if i == 0 and self.dequantize:
                t = pixel_batch_check(t, self.num_bins)
            elif t.dtype.is_floating:
                t = tf.debugging.assert_all_finite(t, "non-finite values (NaN or inf) in the data")
                if i == 0 and domain is not None:
                    t = _in_domain(t, domain)
            checked.append(t)
        return tuple(checked) if len(checked) > 1 else checked[0]

    def _check_condition_given(self, given: bool, name: str) -> None:
        if given != (self.conditional_size is not None):
            raise ValueError(
                f"{name}: a conditional flow needs (x, c) data; an unconditional one takes x "
                f"alone (this flow's conditional_size={self.conditional_size}, and "
                f"{'a' if given else 'no'} condition was given)."
            )

    def _checked_fit_arguments(self, arguments: dict) -> dict:
        x, c = arguments.get("x"), arguments.get("y")
        if x is None:
            raise ValueError(
                "DensityModel.fit needs data: fit(x) with x of shape [N, "
                f"{', '.join(map(str, self.flow.event_shape))}], or a tf.data.Dataset of batches."
            )
        if not isinstance(x, tf.data.Dataset | keras.utils.PyDataset) and not is_batches(x):
            self._check_condition_given(c is not None, "x")
        arguments["x"] = self._validated(x, "x")
        if c is not None:
            arguments["y"] = self._validated(c, "c", check_event=False)
        weights = arguments.get("sample_weight")
        if weights is not None and isinstance(arguments["x"], np.ndarray):
            arguments["sample_weight"] = _checked_sample_weight(weights, len(arguments["x"]))
            if c is None:
                arguments["y"] = _no_condition(arguments["x"])
        data = arguments.get("validation_data")
        if data is not None:
            arguments["validation_data"] = self._checked_validation_data(data)
        return arguments

    def _checked_validation_data(self, data):
        if isinstance(data, tf.data.Dataset):
            return data.map(self._batch_check)
        parts = tuple(data) if isinstance(data, tuple | list) else (data,)
        if len(parts) > 3:
            raise ValueError(
                "validation_data must be x, (x, c) or (x, c, sample_weight); got a "
                f"sequence of {len(parts)}."
            )
        parts = (*parts, None, None)[:3]
        self._check_condition_given(parts[1] is not None, "validation_data")
        vx = self._validated(parts[0], "validation x")
        vc = None if parts[1] is None else self._validated(parts[1], "validation c", False)
        vw = None if parts[2] is None else _checked_sample_weight(parts[2], len(vx))
        if vw is not None:
            return (vx, _no_condition(vx) if vc is None else vc, vw)
        return (vx, vc) if vc is not None else vx
