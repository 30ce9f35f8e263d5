"""Unnormalised 2-D target densities for reverse-KL (variational) fitting.

The four energy functions `U1`-`U4` of Rezende & Mohamed (2015), "Variational Inference with
Normalizing Flows", https://arxiv.org/abs/1505.05770, with target `p~(z) = exp(-U(z))`.

`U2`, `U3` and `U4` depend on `z1` only through periodic and bounded terms, so `exp(-U)` is not
integrable over the plane. We add a confining term `z1^2 / (2 * 2^2)` (a Gaussian factor of
standard deviation 2 in `z1`), which leaves the shapes in the paper's window `[-4, 4]^2` visible
and makes `log Z` finite. `U1` is normalisable as it is. `log_normalizer(name)` computes `log Z`
by the midpoint rule on a fine grid, for comparison with a flow's ELBO and importance-sampled
estimate.

Example:

>>> import numpy as np
>>> from tfp_flows.targets import energy, log_normalizer
>>> energy("u1")(np.zeros([1, 2], "float32")).shape
TensorShape([1])
>>> round(log_normalizer("u2"), 2)
1.61
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

__all__ = ["ENERGIES", "EnergyTarget", "energy", "log_normalizer"]

_CONFINE_STD = 2.0


def _w1(z1):
    return tf.sin(2.0 * np.pi * z1 / 4.0)


def _w2(z1):
    return 3.0 * tf.exp(-0.5 * tf.square((z1 - 1.0) / 0.6))


def _w3(z1):
    return 3.0 * tf.sigmoid((z1 - 1.0) / 0.3)


def _logsumexp2(a, b):
    return tf.reduce_logsumexp(tf.stack([a, b], axis=-1), axis=-1)


def _u1(z1, z2):
    radius = tf.sqrt(tf.square(z1) + tf.square(z2))
    ring = 0.5 * tf.square((radius - 2.0) / 0.4)
    modes = _logsumexp2(-0.5 * tf.square((z1 - 2.0) / 0.6), -0.5 * tf.square((z1 + 2.0) / 0.6))
    return ring - modes


def _u2(z1, z2):
    return 0.5 * tf.square((z2 - _w1(z1)) / 0.4)


def _u3(z1, z2):
    a = -0.5 * tf.square((z2 - _w1(z1)) / 0.35)
    b = -0.5 * tf.square((z2 - _w1(z1) + _w2(z1)) / 0.35)
    return -_logsumexp2(a, b)


def _u4(z1, z2):
    a = -0.5 * tf.square((z2 - _w1(z1)) / 0.4)
    b = -0.5 * tf.square((z2 - _w1(z1) + _w3(z1)) / 0.35)
    return -_logsumexp2(a, b)


ENERGIES = {"u1": (_u1, False), "u2": (_u2, True), "u3": (_u3, True), "u4": (_u4, True)}


@keras.saving.register_keras_serializable(package="tfp_flows")
class EnergyTarget:
    """`log p~(z) = -U(z)` for one of the energies, as a Keras-serializable callable.

    Args:
      name: `"u1"`, `"u2"`, `"u3"` or `"u4"`.
    """

    def __init__(self, name: str = "u1"):
        if name not in ENERGIES:
            raise ValueError(f"Unknown energy {name!r}; choose one of {sorted(ENERGIES)}.")
        self.name = name

    def __call__(self, z):
        z = tf.convert_to_tensor(z)
        if z.shape.rank is not None and (z.shape.rank < 1 or z.shape[-1] != 2):
            raise ValueError(
                f"The energy targets are 2-D: z must have shape [..., 2]; got {z.shape}."
            )
        fn, confine = ENERGIES[self.name]
        z1, z2 = z[..., 0], z[..., 1]
        u = fn(z1, z2)
        if confine:
            u = u + 0.5 * tf.square(z1 / _CONFINE_STD)
        return -u

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def energy(name: str) -> EnergyTarget:
    """The target `log p~ = -U` for energy `name`."""
    return EnergyTarget(name)


def log_normalizer(name: str, *, limit: float = 12.0, num: int = 1201, rows: int = 64) -> float:
    """`log Z = log int exp(-U(z)) dz`, by the midpoint rule on `[-limit, limit]^2`.

    The grid is evaluated `rows` grid rows at a time (`rows * num` points), so the memory it
    takes stays small (about 6 MB a chunk by default, not 225 MB for the whole grid at once).
    """
    step = 2.0 * limit / num
    grid = -limit + step * (np.arange(num) + 0.5)
    energy = EnergyTarget(name)
    chunks = []
    for start in range(0, num, rows):
        z1, z2 = np.meshgrid(grid[start : start + rows], grid, indexing="ij")
        points = np.stack([z1.ravel(), z2.ravel()], axis=-1)
        log_p = energy(tf.constant(points, tf.float64)).numpy()
        chunks.append(np.logaddexp.reduce(log_p))
    return float(np.logaddexp.reduce(np.array(chunks)) + 2.0 * np.log(step))
