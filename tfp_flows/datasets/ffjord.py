"""The five toy sets of FFJORD's experiments (Grathwohl et al. 2019,
https://arxiv.org/abs/1810.01367), each with its exact log-density, and `TOY_DENSITIES`.

`scaled_moons`, `eight_gaussians`, `checkerboard`, `rings` and `pinwheel` use the paper's
parameters. Where its generators use fixed per-class counts or evenly spaced angles, these draw
the class and the angle at random (the same density, i.i.d. samples); the pinwheel's twist is
changed slightly so that its density has a closed form (see `pinwheel`).
"""

from __future__ import annotations

import numpy as np

from tfp_flows.datasets._numeric import _as_points, _log_i0e, _logsumexp, _rotate
from tfp_flows.datasets.toy import ToyDensity, two_moons, two_moons_log_prob

__all__ = [
    "TOY_DENSITIES",
    "checkerboard",
    "checkerboard_log_prob",
    "eight_gaussians",
    "eight_gaussians_log_prob",
    "pinwheel",
    "pinwheel_log_prob",
    "rings",
    "rings_log_prob",
    "scaled_moons",
    "scaled_moons_log_prob",
]

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


TOY_DENSITIES: dict[str, ToyDensity] = {
    "moons": ToyDensity(scaled_moons, scaled_moons_log_prob),
    "8gaussians": ToyDensity(eight_gaussians, eight_gaussians_log_prob),
    "checkerboard": ToyDensity(checkerboard, checkerboard_log_prob),
    "rings": ToyDensity(rings, rings_log_prob),
    "pinwheel": ToyDensity(pinwheel, pinwheel_log_prob),
}
"""The FFJORD toy sets by their short names; all lie (almost entirely) in [-4, 4]^2."""
