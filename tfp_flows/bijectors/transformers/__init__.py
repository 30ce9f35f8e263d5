"""Elementwise transformers: the invertible scalar maps that coupling and autoregressive layers
parametrise.

A transformer turns raw parameters `params` of shape `x.shape + [num_params]` (what a
conditioner outputs: `[..., D, num_params]` for vectors) into a monotone map of each element:

    forward_and_log_det(x, params) -> (y, log g'(x))       elementwise, not summed
    inverse_and_log_det(y, params) -> (x, -log g'(x))

It is the only place a map's formula lives; `Coupling`, `MaskedAutoregressiveFlow` and
`InverseAutoregressiveFlow` take one (`transformer=`), so any transformer plugs into any
conditioner. The protocol is `Transformer`'s; an object of your own that implements it plugs
in the same way.

| name         | class                           | params | map                               |
|--------------|---------------------------------|--------|-----------------------------------|
| `"affine"`   | `Affine(log_scale_clamp=3.0)`   | 2      | `x exp(s) + t`, `s` soft-clamped  |
| `"sigmoid"`  | `SigmoidAffine()`               | 2      | Glow: inverse scale `sigmoid(h+2)`|
| `"additive"` | `Additive()`                    | 1      | NICE: `x + t`                     |
| `"spline"`   | `RationalQuadratic(bins, bound)`| 3K - 1 | monotone spline, identity tails   |

Example:

>>> import tensorflow as tf
>>> from tfp_flows.bijectors import transformers
>>> spline = transformers.get("spline", num_bins=4, bound=3.0)
>>> spline.num_params
11
>>> y, log_det = spline.forward_and_log_det(tf.constant([[0.5]]), tf.zeros([1, 1, 11]))
>>> round(float(y[0, 0]), 5), abs(round(float(log_det[0, 0]), 5))  # zero params: the identity
(0.5, 0.0)
"""

from __future__ import annotations

from tfp_flows.bijectors.transformers.affine import Additive, Affine, SigmoidAffine
from tfp_flows.bijectors.transformers.base import Transformer, is_transformer, soft_clamp
from tfp_flows.bijectors.transformers.spline import RationalQuadratic, rational_quadratic_spline

__all__ = [
    "Additive",
    "Affine",
    "RationalQuadratic",
    "SigmoidAffine",
    "Transformer",
    "get",
    "is_transformer",
    "rational_quadratic_spline",
    "soft_clamp",
]

NAMES = ("affine", "sigmoid", "additive", "spline")


def get(
    transformer,
    *,
    log_scale_clamp: float | None = 3.0,
    num_bins: int = 8,
    bound: float = 5.0,
) -> Transformer:
    """A transformer from a name (`"affine"`, `"sigmoid"`, `"additive"`, `"spline"`) or an
    object implementing the protocol (returned as is).

    `log_scale_clamp` applies to `"affine"`, `num_bins` and `bound` to `"spline"`.
    """
    if is_transformer(transformer):
        return transformer
    if transformer == "affine":
        return Affine(log_scale_clamp)
    if transformer == "sigmoid":
        return SigmoidAffine()
    if transformer == "additive":
        return Additive()
    if transformer == "spline":
        return RationalQuadratic(num_bins, bound)
    raise ValueError(
        f"`transformer` must be one of {NAMES} or an object with `num_params`, "
        f"`forward_and_log_det` and `inverse_and_log_det`; got {transformer!r}."
    )
