"""The masks of coupling layers: which part of the input is kept and which is transformed.

Each mask has `split(x) -> (kept, transformed)`, `merge(kept, transformed) -> x` and
`restrict(values)` (zero where the mask keeps), so forward and inverse differ by one line.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfp_flows import _validation as check

__all__ = ["MASKS", "CheckerboardMask", "SplitMask", "make_mask"]

MASKS = ("half", "checkerboard", "channel")


class SplitMask:
    """Keeps one contiguous slice of the last axis and transforms the other (`half`, `channel`).

    `reverse=False` keeps `x[..., :split]`; `reverse=True` keeps `x[..., split:]`; `split`
    defaults to half the last axis, rounded down.
    """

    def __init__(self, event_ndims: int, split: int | None, reverse: bool, name: str):
        self.event_ndims, self.split_size = event_ndims, split
        self.reverse, self.name = reverse, name

    def check(self, shape: tf.TensorShape) -> None:
        size = shape[-1]
        if size is None:
            raise ValueError(f"{self.name}: the last axis must have a static size; got {shape}.")
        if size < 2:
            raise ValueError(f"{self.name}: the last axis needs size >= 2 to split; got {shape}.")
        if self.split_size is not None and not 0 < self.split_size < size:
            raise ValueError(
                f"{self.name}: `split` must be in [1, {size - 1}] for a last axis of size "
                f"{size}; got {self.split_size}."
            )

    def split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        k = x.shape[-1] // 2 if self.split_size is None else self.split_size
        first, second = x[..., :k], x[..., k:]
        return (second, first) if self.reverse else (first, second)

    def merge(self, kept: tf.Tensor, transformed: tf.Tensor) -> tf.Tensor:
        parts = [transformed, kept] if self.reverse else [kept, transformed]
        return tf.concat(parts, axis=-1)

    def restrict(self, values: tf.Tensor) -> tf.Tensor:
        return values

    def sum_event(self, values: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(values, axis=list(range(-self.event_ndims, 0)))


class CheckerboardMask(SplitMask):
    """Keeps the pixels with `(i + j + reverse)` even, in all channels; transforms the others.

    `kept = x * m` and `transformed = x * (1 - m)` are both full images, so `merge` is a sum.
    """

    def __init__(self, reverse: bool, name: str):
        super().__init__(3, None, reverse, name)

    def check(self, shape: tf.TensorShape) -> None:
        height, width = shape[-3], shape[-2]
        if height is None or width is None:
            raise ValueError(f"{self.name}: H and W must be static; got shape {shape}.")
        if height % 2 or width % 2:
            raise ValueError(
                f"{self.name}: the checkerboard mask needs even H and W; got shape {shape}."
            )

    def _mask(self, x: tf.Tensor) -> tf.Tensor:
        i, j = np.indices(x.shape[-3:-1])
        kept = (i + j + int(self.reverse)) % 2 == 0
        return tf.constant(kept[..., None], dtype=x.dtype)

    def split(self, x):
        mask = self._mask(x)
        return x * mask, x * (1 - mask)

    def merge(self, kept, transformed):
        return kept + transformed

    def restrict(self, values):
        return values * (1 - self._mask(values))


def make_mask(kind: str, *, split: int | None, reverse: bool, name: str) -> SplitMask:
    """The mask `kind` (one of `MASKS`), its arguments checked."""
    if kind not in MASKS:
        raise ValueError(f"`mask` must be one of {MASKS}; got {kind!r}.")
    if kind == "checkerboard":
        if split is not None:
            raise ValueError("`split` applies to the 'half' and 'channel' masks only.")
        return CheckerboardMask(bool(reverse), name)
    split = check.integer(split, "split", allow_none=True)
    return SplitMask(1 if kind == "half" else 3, split, bool(reverse), name)
