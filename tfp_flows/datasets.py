"""Toy 2-D densities with known log-densities, for fitting flows and checking them against truth.

Each generator returns float32 samples of shape `[n, 2]` from a seeded NumPy generator, and each
has a matching `*_log_prob` that evaluates the exact density (by quadrature where it has no closed
form), so held-out NLL can be compared with the data's entropy.

Example:

>>> from tfp_flows import datasets
>>> x = datasets.two_moons(1000, seed=0)
>>> x.shape, x.dtype.name
((1000, 2), 'float32')
>>> h, se = datasets.entropy(datasets.two_moons, datasets.two_moons_log_prob, n=5000)
>>> abs(h - 1.006) < 0.03
True
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "entropy",
    "gaussian_mixture",
    "gaussian_mixture_log_prob",
    "two_moons",
    "two_moons_log_prob",
]


def _moon_curves(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre lines of the two moons at angles `t` in [0, pi] (scikit-learn's layout)."""
    upper = np.stack([np.cos(t), np.sin(t)], axis=-1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=-1)
    return upper, lower


def two_moons(n: int, *, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """Samples of scikit-learn's `make_moons` density: a uniform angle on one of two half circles
    (each with probability 1/2) plus isotropic Gaussian noise of standard deviation `noise`."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, size=n)
    upper, lower = _moon_curves(t)
    x = np.where(rng.random(n)[:, None] < 0.5, upper, lower)
    return (x + noise * rng.normal(size=(n, 2))).astype(np.float32)


def two_moons_log_prob(x: np.ndarray, *, noise: float = 0.1, num_points: int = 1000) -> np.ndarray:
    """Exact log-density of `two_moons`, integrating the angle by the midpoint rule.

    p(x) = 1/2 sum_moon (1/pi) int_0^pi N(x; c_moon(t), noise^2 I) dt. With `num_points=1000` the
    quadrature error is below 1e-6 nats for noise >= 0.1 (checked against 4000 points).
    """
    x = np.asarray(x, dtype=np.float64)
    t = (np.arange(num_points) + 0.5) * np.pi / num_points
    centres = np.concatenate(_moon_curves(t), axis=0)  # [2 * num_points, 2]
    out = np.empty(len(x))
    for start in range(0, len(x), 512):
        chunk = x[start : start + 512]
        sq = ((chunk[:, None, :] - centres[None]) ** 2).sum(-1)
        log_k = -0.5 * sq / noise**2 - np.log(2.0 * np.pi * noise**2)
        peak = log_k.max(axis=1, keepdims=True)
        # Each component has weight 1 / (2 * num_points): both moons, uniform angle.
        out[start : start + 512] = (
            peak[:, 0] + np.log(np.exp(log_k - peak).sum(axis=1)) - np.log(2 * num_points)
        )
    return out


# Three overlapping, correlated components: a smooth, skewed, non-Gaussian 2-D density.
_MIXTURE_WEIGHTS = np.array([0.5, 0.3, 0.2])
_MIXTURE_MEANS = np.array([[-1.0, 0.0], [1.0, 0.5], [0.0, -1.2]])
_MIXTURE_CHOLESKY = np.array(
    [
        [[0.7, 0.0], [0.3, 0.5]],
        [[0.5, 0.0], [-0.2, 0.6]],
        [[0.4, 0.0], [0.0, 0.4]],
    ]
)


def gaussian_mixture(n: int, *, seed: int = 0) -> np.ndarray:
    """Samples of a fixed mixture of three overlapping, correlated 2-D Gaussians."""
    rng = np.random.default_rng(seed)
    k = rng.choice(len(_MIXTURE_WEIGHTS), size=n, p=_MIXTURE_WEIGHTS)
    eps = rng.normal(size=(n, 2))
    x = _MIXTURE_MEANS[k] + np.einsum("nij,nj->ni", _MIXTURE_CHOLESKY[k], eps)
    return x.astype(np.float32)


def gaussian_mixture_log_prob(x: np.ndarray) -> np.ndarray:
    """Exact log-density of `gaussian_mixture`, in float64."""
    x = np.asarray(x, dtype=np.float64)
    diff = x[:, None, :] - _MIXTURE_MEANS[None]  # [n, K, 2]
    # Solve L u = diff for the lower-triangular 2x2 factors.
    l00, l10, l11 = (_MIXTURE_CHOLESKY[:, i, j] for i, j in ((0, 0), (1, 0), (1, 1)))
    u0 = diff[..., 0] / l00
    u1 = (diff[..., 1] - l10 * u0) / l11
    log_det = np.log(l00) + np.log(l11)
    log_k = -0.5 * (u0**2 + u1**2) - log_det - np.log(2.0 * np.pi) + np.log(_MIXTURE_WEIGHTS)
    peak = log_k.max(axis=1)
    return peak + np.log(np.exp(log_k - peak[:, None]).sum(axis=1))


def entropy(sample_fn, log_prob_fn, *, n: int = 100_000, seed: int = 12345) -> tuple[float, float]:
    """Monte Carlo entropy `-E[log p(x)]` in nats, and its standard error."""
    log_p = log_prob_fn(sample_fn(n, seed=seed))
    return float(-log_p.mean()), float(log_p.std(ddof=1) / np.sqrt(n))


# -- scikit-learn's 8x8 digits ---------------------------------------------------------------

__all__ += ["DIGITS_LEVELS", "DIGITS_SPLITS", "digits"]  # added here, at the end, to merge cleanly

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
