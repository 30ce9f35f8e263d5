"""Real data bundled with a dependency: scikit-learn's 8x8 handwritten digits, in fixed splits."""

from __future__ import annotations

import numpy as np

__all__ = ["DIGITS_LEVELS", "DIGITS_SPLITS", "digits"]

DIGITS_SPLITS = {"train": (0, 1000), "validation": (1000, 1350), "test": (1350, None)}
DIGITS_LEVELS = 17


def digits(split: str = "train") -> np.ndarray:
    """scikit-learn's bundled 8x8 handwritten digits as integer images `[n, 8, 8, 1]`.

    Levels are 0..16 (`DIGITS_LEVELS = 17`); dequantise with
    `tfp_flows.images.dequantize(x, 17)`. Fixed splits of the 1797 images in their stored order:
    `"train"` 0:1000, `"validation"` 1000:1350, `"test"` 1350:1797. Needs scikit-learn (the
    `examples` extra); no download.
    """
    if split not in DIGITS_SPLITS:
        raise ValueError(f"`split` must be one of {sorted(DIGITS_SPLITS)}; got {split!r}.")
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.int32)[..., None]
    start, stop = DIGITS_SPLITS[split]
    return images[start:stop]
