"""Probability paths of conditional flow matching, and minibatch optimal-transport pairing.

Flow matching regresses a field on the velocity of a path between a base draw `x0 ~ N(0, I)`
and a data point `x1` (Lipman et al. 2023, https://arxiv.org/abs/2210.02747):

    loss = E_{t ~ U[0, 1], (x0, x1)} || v(x_t, t[, c]) - u_t ||^2,

whose minimiser is the marginal field that carries `N(0, I)` at `t = 0` to the data at `t = 1`.

* `linear` (rectified flow, Liu et al. 2023, https://arxiv.org/abs/2209.03003):
  `x_t = (1 - t) x0 + t x1`, `u_t = x1 - x0`.
* `gaussian` (Lipman et al.'s optimal-transport path with `sigma_min`):
  `x_t = (1 - (1 - sigma_min) t) x0 + t x1`, `u_t = x1 - (1 - sigma_min) x0`; at `t = 1`,
  `x_1 ~ N(x1, sigma_min^2 I)`: the flow learns the data smoothed by `sigma_min`.

`ot_pairing` re-pairs a minibatch by the exact optimal assignment of noise to data under the
squared distance (Tong et al. 2024, https://arxiv.org/abs/2302.00482; Pooladian et al. 2023,
https://arxiv.org/abs/2304.14772): straighter paths, so fewer solver steps for the same
accuracy. Cost per batch of `B`: `O(B^2 D)` for the cost matrix and `O(B^3)` for the Hungarian
algorithm (`scipy.optimize.linear_sum_assignment`, on the CPU, through `tf.numpy_function`: not
under XLA); about 10 ms for `B = 512`.

Example:

>>> import tensorflow as tf
>>> x0, x1 = tf.zeros([4, 2]), tf.ones([4, 2])
>>> xt, ut = interpolate("linear", x0, x1, tf.fill([4], 0.25))
>>> float(xt[0, 0]), float(ut[0, 0])
(0.25, 1.0)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["PATHS", "check_times", "flow_matching_loss", "interpolate", "ot_pairing"]

PATHS = ("linear", "gaussian")


def check_times(t, name: str = "t") -> None:
    """Raises `ValueError` unless concrete times `t` are finite and within `[0, 1]`."""
    if t is None or tf.is_symbolic_tensor(t):
        return
    values = np.asarray(t, dtype=np.float64)
    if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
        raise ValueError(
            f"`{name}` must lie in [0, 1] (t = 0 is the base, t = 1 the data); got values in "
            f"[{np.nanmin(values):g}, {np.nanmax(values):g}]"
            + ("" if np.isfinite(values).all() else " with NaN or inf")
            + "."
        )


def interpolate(path: str, x0, x1, t, *, sigma_min: float = 0.0, event_ndims: int = 1):
    """`(x_t, u_t)` of `path` between `x0` and `x1` (`[B, *event]`) at times `t` (`[B]`)."""
    if path not in PATHS:
        raise ValueError(f"`path` must be one of {PATHS}; got {path!r}.")
    check_times(t)
    t = tf.convert_to_tensor(t, dtype=x1.dtype)
    t = tf.reshape(t, tf.concat([tf.shape(t), tf.ones([event_ndims], tf.int32)], 0))
    shrink = 1.0 if path == "linear" else 1.0 - sigma_min
    return (1.0 - shrink * t) * x0 + t * x1, x1 - shrink * x0


def flow_matching_loss(
    velocity, x0, x1, t, *, path="linear", sigma_min=0.0, event_ndims=1, conditional=None
) -> tf.Tensor:
    """Per-example `||v(x_t, t[, c]) - u_t||^2` (summed over the event), shape `[B]`.

    Args:
      velocity: the field `v(x, t[, conditional])`.
      x0, x1: base draws and data, `[B, *event]` (pair them first with `ot_pairing`).
      t: times `[B]` in `[0, 1]`, e.g. uniform.
      path, sigma_min: see `interpolate`.
      conditional: `[B, C]` conditions, or None.
    """
    xt, ut = interpolate(path, x0, x1, t, sigma_min=sigma_min, event_ndims=event_ndims)
    v = velocity(xt, t) if conditional is None else velocity(xt, t, conditional=conditional)
    return tf.reduce_sum(tf.square(tf.cast(v, x1.dtype) - ut), axis=list(range(-event_ndims, 0)))


def _assignment(cost: np.ndarray) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    perm = np.empty_like(cols)
    perm[cols] = rows  # data point j gets noise row perm[j]
    return perm.astype(np.int32)


def ot_pairing(x0: tf.Tensor, x1: tf.Tensor) -> tf.Tensor:
    """`x0` permuted so that `sum_j ||x0[perm[j]] - x1[j]||^2` is the least over permutations.

    Exact (the Hungarian algorithm on the `B x B` squared-distance matrix); runs on the CPU in
    `tf.numpy_function`, so not in an XLA-compiled step.
    """
    a = tf.reshape(x0, [tf.shape(x0)[0], -1])
    b = tf.reshape(x1, [tf.shape(x1)[0], -1])
    cost = (
        tf.reduce_sum(a**2, -1)[:, None]
        - 2.0 * tf.matmul(a, b, transpose_b=True)
        + tf.reduce_sum(b**2, -1)[None, :]
    )
    perm = tf.numpy_function(_assignment, [tf.stop_gradient(cost)], tf.int32, stateful=False)
    perm.set_shape(x0.shape[:1])
    return tf.gather(x0, perm)
