"""MADE's degrees and masks: which input each unit may see."""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["NAMED_ORDERS", "check_order", "make_degrees", "make_masks"]

NAMED_ORDERS = ("left-to-right", "right-to-left", "random")


def check_order(order, event_size: int):
    if isinstance(order, str):
        if order not in NAMED_ORDERS:
            raise ValueError(
                f"`input_order` must be one of {NAMED_ORDERS} or an array; got {order!r}."
            )
        return order
    array = np.asarray(order)
    if array.shape != (event_size,) or sorted(array.tolist()) != list(range(1, event_size + 1)):
        raise ValueError(
            f"An explicit `input_order` must be a permutation of 1..{event_size} (the degree of "
            f"each input dimension); got {order!r}."
        )
    return array.astype(np.int64)


def make_degrees(d, hidden_units, order, hidden_degrees, rng) -> list[np.ndarray]:
    """Degrees of the inputs and of each hidden layer."""
    if isinstance(order, str):
        order = {
            "left-to-right": np.arange(1, d + 1),
            "right-to-left": np.arange(d, 0, -1),
            "random": rng.permutation(d) + 1,
        }[order]
    degrees = [np.asarray(order, np.int64)]
    for units in hidden_units:
        low = int(degrees[-1].min())
        span = max(d - low, 1)  # allowed degrees: low .. d - 1 (just `low` when d == 1)
        if hidden_degrees == "equal":
            layer = low + (np.arange(units) * span) // units
        else:
            layer = rng.integers(low, low + span, size=units)
        degrees.append(layer.astype(np.int64))
    return degrees


def make_masks(degrees) -> list[np.ndarray]:
    """0/1 masks `[fan_in, fan_out]`: hidden `m_out >= m_in`, output `m_out > m_in`."""
    masks = [(lo[:, None] <= hi[None, :]) for lo, hi in itertools.pairwise(degrees)]
    masks.append(degrees[-1][:, None] < degrees[0][None, :])
    return [m.astype(np.float64) for m in masks]
