"""Toy 2-D densities with known log-densities, for fitting flows and checking them against truth.

Each generator returns float32 samples of shape `[n, 2]` from a seeded NumPy generator, and each
has a matching `*_log_prob` that evaluates the exact density in float64 (by quadrature where it
has no closed form), so held-out NLL can be compared with the data's entropy.

The five sets of the FFJORD paper's toy experiments (Grathwohl et al. 2019,
https://arxiv.org/abs/1810.01367) are in `TOY_DENSITIES`: `scaled_moons`, `eight_gaussians`,
`checkerboard`, `rings` and `pinwheel`, with the same parameters as the paper's generators. Where
those generators use fixed per-class counts or evenly spaced angles, these draw the class and the
angle at random (the same density, i.i.d. samples); the pinwheel's twist is changed slightly so
that its density has a closed form (see `pinwheel`). Their entropies in nats, by integration on
a 1200 x 1200 grid over [-6, 6]^2 (Monte Carlo with `entropy` agrees within its standard error of
about 0.002): moons 2.394, 8 gaussians 2.832, checkerboard log 32 = 3.466, rings 2.623, pinwheel
2.321; `two_moons` (unscaled, noise 0.1) 1.008.

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

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = [
    "TOY_DENSITIES",
    "ToyDensity",
    "checkerboard",
    "checkerboard_log_prob",
    "eight_gaussians",
    "eight_gaussians_log_prob",
    "entropy",
    "gaussian_mixture",
    "gaussian_mixture_log_prob",
    "pinwheel",
    "pinwheel_log_prob",
    "rings",
    "rings_log_prob",
    "scaled_moons",
    "scaled_moons_log_prob",
    "two_moons",
    "two_moons_log_prob",
]


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


def two_moons_log_prob(x: np.ndarray, *, noise: float = 0.1, num_points: int = 128) -> np.ndarray:
    """Exact log-density of `two_moons`, integrating the angle by Gauss-Legendre quadrature.

    p(x) = 1/2 sum_moon (1/pi) int_0^pi N(x; c_moon(t), noise^2 I) dt. With `num_points=128`
    nodes the quadrature error is below 1e-9 nats for noise >= 0.1 (checked against 400 nodes),
    on and off the moons.
    """
    x = _as_points(x)
    nodes, weights = np.polynomial.legendre.leggauss(num_points)
    t = (nodes + 1.0) * np.pi / 2.0  # [-1, 1] -> [0, pi]; (1/pi) dt = dnode / 2
    centres = np.concatenate(_moon_curves(t), axis=0)  # [2 * num_points, 2]
    # Weight of each node: 1/2 per moon times the quadrature weight of (1/pi) int dt.
    log_w = np.log(np.concatenate([weights, weights]) / 4.0)
    flat = x.reshape(-1, 2)
    out = np.empty(len(flat))
    for start in range(0, len(flat), 2048):
        chunk = flat[start : start + 2048]
        sq = ((chunk[:, None, :] - centres[None]) ** 2).sum(-1)
        log_k = -0.5 * sq / noise**2 - np.log(2.0 * np.pi * noise**2) + log_w
        out[start : start + 2048] = _logsumexp(log_k, axis=1)
    return out.reshape(x.shape[:-1])


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


# -- the FFJORD toy sets ---------------------------------------------------------------------

_MOONS_SHIFT = np.array([-1.0, -0.2])


def scaled_moons(n: int, *, seed: int = 0) -> np.ndarray:
    """FFJORD's moons: `2 * two_moons(noise=0.1) + (-1, -0.2)` (noise sd 0.2 after scaling)."""
    return (2.0 * two_moons(n, noise=0.1, seed=seed) + _MOONS_SHIFT).astype(np.float32)


def scaled_moons_log_prob(x: np.ndarray) -> np.ndarray:
    """Exact log-density of `scaled_moons`: `two_moons_log_prob((x - shift) / 2) - log 4`."""
    u = (_as_points(x) - _MOONS_SHIFT) / 2.0
    return two_moons_log_prob(u, noise=0.1) - np.log(4.0)


# Centres at radius 2 sqrt(2) on the 8 compass directions; sd 1 / (2 sqrt(2)). (FFJORD: radius
# 4 and sd 0.5, both divided by 1.414, a 1e-4 relative difference.)
_EIGHT_RADIUS, _EIGHT_SD = 2.0 * np.sqrt(2.0), 0.5 / np.sqrt(2.0)
_EIGHT_CENTRES = _EIGHT_RADIUS * np.stack(
    [np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], axis=-1
)


def eight_gaussians(n: int, *, seed: int = 0) -> np.ndarray:
    """An equal mixture of 8 isotropic Gaussians (sd 0.354) on a circle of radius 2 sqrt(2)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 8, size=n)
    return (_EIGHT_CENTRES[k] + _EIGHT_SD * rng.normal(size=(n, 2))).astype(np.float32)


def eight_gaussians_log_prob(x: np.ndarray) -> np.ndarray:
    """Exact log-density of `eight_gaussians`."""
    x = _as_points(x)
    sq = ((x[..., None, :] - _EIGHT_CENTRES) ** 2).sum(-1)
    log_k = -0.5 * sq / _EIGHT_SD**2 - np.log(2.0 * np.pi * _EIGHT_SD**2) - np.log(8.0)
    return _logsumexp(log_k, axis=-1)


def checkerboard(n: int, *, seed: int = 0) -> np.ndarray:
    """Uniform on the 8 filled cells of a 4 x 4 checkerboard of 2 x 2 cells covering [-4, 4)^2.

    As FFJORD's: `x1 ~ U[-2, 2)`, `x2 ~ U[0, 1) - 2 B + (floor(x1) mod 2)` with `B` a fair bit,
    then both doubled. A cell `(i, j) = floor(x / 2)` is filled when `i + j` is even. The density
    is `1/32` on the filled cells and 0 elsewhere, so the entropy is exactly `log 32`.
    """
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-2.0, 2.0, size=n)
    x2 = rng.uniform(0.0, 1.0, size=n) - 2.0 * rng.integers(0, 2, size=n) + np.floor(x1) % 2
    return (2.0 * np.stack([x1, x2], axis=-1)).astype(np.float32)


def checkerboard_log_prob(x: np.ndarray) -> np.ndarray:
    """Exact log-density of `checkerboard`: `-log 32` on the filled cells, `-inf` elsewhere."""
    cell = np.floor(_as_points(x) / 2.0)
    inside = np.all((cell >= -2) & (cell <= 1), axis=-1)
    filled = inside & ((cell[..., 0] + cell[..., 1]) % 2 == 0)
    return np.where(filled, -np.log(32.0), -np.inf)


_RING_RADII, _RING_NOISE = 3.0 * np.array([1.0, 0.75, 0.5, 0.25]), 0.08


def rings(n: int, *, seed: int = 0) -> np.ndarray:
    """Four concentric rings of radii 3, 2.25, 1.5 and 0.75, each with probability 1/4, a uniform
    angle and isotropic Gaussian noise of sd 0.08.

    FFJORD places equal counts on each ring at evenly spaced angles; drawing the ring and the
    angle at random gives i.i.d. samples of the same density.
    """
    rng = np.random.default_rng(seed)
    radius = _RING_RADII[rng.integers(0, 4, size=n)]
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    centre = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return (centre + _RING_NOISE * rng.normal(size=(n, 2))).astype(np.float32)


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


def rings_log_prob(x: np.ndarray) -> np.ndarray:
    """Exact log-density of `rings`, in closed form.

    Integrating the angle out of `N(x; r (cos t, sin t), s^2 I)` gives, with `rho = |x|`,
    `p(x | r) = exp(-(rho - r)^2 / (2 s^2)) I0e(rho r / s^2) / (2 pi s^2)`, where `I0e` is the
    exponentially scaled modified Bessel function of order 0.
    """
    rho = np.sqrt((_as_points(x) ** 2).sum(-1))[..., None]
    s2 = _RING_NOISE**2
    log_k = (
        -0.5 * (rho - _RING_RADII) ** 2 / s2
        + _log_i0e(rho * _RING_RADII / s2)
        - np.log(2.0 * np.pi * s2)
        - np.log(4.0)
    )
    return _logsumexp(log_k, axis=-1)


_PINWHEEL_ARMS, _PINWHEEL_SD, _PINWHEEL_RATE = 5, np.array([0.3, 0.1]), 0.25


def _rotate(x: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotates points `x` `[..., 2]` counter-clockwise by `angle` `[...]`."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * x[..., 0] - s * x[..., 1], s * x[..., 0] + c * x[..., 1]], axis=-1)


def pinwheel(n: int, *, seed: int = 0) -> np.ndarray:
    """Five twisted Gaussian arms.

    Per arm `k` (probability 1/5 each): `f ~ N((1, 0), diag(0.3^2, 0.1^2))`, rotated clockwise by
    `2 pi k / 5 + 0.25 exp(|f|)` and doubled. FFJORD's generator twists by `exp(f_1)`, the first
    coordinate, instead of the norm `|f|` (which differs from it by about `f_2^2 / 2`, below 0.01
    for most points); twisting by the norm makes the map a bijection of the plane with Jacobian
    determinant 4 everywhere, so the density has the closed form of `pinwheel_log_prob`. (FFJORD's
    twist also shears each arm slightly, lowering its entropy by about 0.003 nats.)
    """
    rng = np.random.default_rng(seed)
    f = np.array([1.0, 0.0]) + _PINWHEEL_SD * rng.normal(size=(n, 2))
    arm = rng.integers(0, _PINWHEEL_ARMS, size=n)
    angle = 2.0 * np.pi * arm / _PINWHEEL_ARMS + _PINWHEEL_RATE * np.exp(np.linalg.norm(f, axis=-1))
    return (2.0 * _rotate(f, -angle)).astype(np.float32)


def pinwheel_log_prob(x: np.ndarray) -> np.ndarray:
    """Exact log-density of `pinwheel`: `p(x) = (1/5) sum_k N(f_k; m, S) / 4`, where
    `f_k = R(2 pi k / 5 + 0.25 exp(|x| / 2)) x / 2` undoes arm `k`'s twist (`|f| = |x| / 2`)."""
    x = _as_points(x)
    half = x / 2.0
    twist = _PINWHEEL_RATE * np.exp(np.sqrt((half**2).sum(-1)))
    arms = 2.0 * np.pi * np.arange(_PINWHEEL_ARMS) / _PINWHEEL_ARMS
    f = _rotate(half[..., None, :], arms + twist[..., None])  # [..., arms, 2]
    z = (f - np.array([1.0, 0.0])) / _PINWHEEL_SD
    log_k = -0.5 * (z**2).sum(-1) - np.log(2.0 * np.pi * _PINWHEEL_SD.prod())
    return _logsumexp(log_k, axis=-1) - np.log(_PINWHEEL_ARMS) - np.log(4.0)


class ToyDensity(NamedTuple):
    """A toy set: `sample(n, seed=...)` -> float32 `[n, 2]`; `log_prob(x)` -> float64 `[n]`."""

    sample: Callable[..., np.ndarray]
    log_prob: Callable[[np.ndarray], np.ndarray]


TOY_DENSITIES: dict[str, ToyDensity] = {
    "moons": ToyDensity(scaled_moons, scaled_moons_log_prob),
    "8gaussians": ToyDensity(eight_gaussians, eight_gaussians_log_prob),
    "checkerboard": ToyDensity(checkerboard, checkerboard_log_prob),
    "rings": ToyDensity(rings, rings_log_prob),
    "pinwheel": ToyDensity(pinwheel, pinwheel_log_prob),
}
"""The FFJORD toy sets by their short names; all lie (almost entirely) in [-4, 4]^2."""


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
