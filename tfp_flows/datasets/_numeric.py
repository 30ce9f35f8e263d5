"""Float64 NumPy helpers of the exact log-densities: point checks, logsumexp, rotation, I0."""

from __future__ import annotations

import numpy as np

__all__: list[str] = []


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    peak = np.max(a, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(peak, axis) + np.log(np.exp(a - peak).sum(axis=axis))


def _as_points(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] != 2:
        raise ValueError(f"expected points of shape [..., 2]; got {x.shape}.")
    return x


def _rotate(x: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotates points `x` `[..., 2]` counter-clockwise by `angle` `[...]`."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * x[..., 0] - s * x[..., 1], s * x[..., 0] + c * x[..., 1]], axis=-1)


def _log_i0e(z: np.ndarray) -> np.ndarray:
    """`log(I0(z) exp(-z))` for `z >= 0` (I0: modified Bessel function of the first kind).

    `np.i0` below 30; above, the asymptotic series to the 4th term (relative error < 1e-8).
    """
    z = np.asarray(z, dtype=np.float64)
    small = z < 30.0
    zs = np.where(small, z, 1.0)
    zl = np.where(small, 30.0, z)
    t = 1.0 / (8.0 * zl)
    series = 1.0 + t + 9.0 / 2.0 * t**2 + 225.0 / 6.0 * t**3 + 11025.0 / 24.0 * t**4
    large = -0.5 * np.log(2.0 * np.pi * zl) + np.log(series)
    return np.where(small, np.log(np.i0(zs)) - zs, large)
