"""The last step of every factory: data-end transforms, the base, the distribution.

Example:

>>> from tfp_flows.flows.assembly import assemble
>>> dist = assemble((2,), [], base="diag_normal", name="identity")
>>> dist.event_shape, len(dist.trainable_variables)
(TensorShape([2]), 2)
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows import bijectors as fb
from tfp_flows.flows import bases

tfb, tfd = tfp.bijectors, tfp.distributions

__all__ = ["assemble"]


def assemble(
    shape: tuple[int, ...],
    layers: list[tfb.Bijector],
    *,
    base="normal",
    dtype=tf.float32,
    name: str = "flow",
    logit_alpha: float | None = None,
    pixel_spline_bins: int | None = None,
) -> tfd.TransformedDistribution:
    """`TransformedDistribution(base, Chain([logit, pixel spline, *layers]))` over `shape`.

    Args:
      shape: the event shape.
      layers: the flow's bijectors, from the data end (`layers[0]` is applied last in
        `forward`, first in `inverse`).
      base: the base distribution (see `tfp_flows.flows.bases`).
      dtype: floating-point dtype of the base and the data-end transforms.
      name: name of the distribution; its chain is `f"{name}_chain"`.
      logit_alpha: `alpha` of a logit pre-transform at the data end (`bijectors.LogitTransform`),
        or `None`.
      pixel_spline_bins: bins of a learned spline per dimension after the logit
        (`bijectors.PixelwiseSpline`), or `None`.
    """
    front = []
    if logit_alpha is not None:
        front.append(fb.LogitTransform(logit_alpha, dtype=dtype, name="logit"))
    if pixel_spline_bins is not None:
        bins = check.integer(pixel_spline_bins, "pixel_spline_bins")
        front.append(fb.PixelwiseSpline(shape, num_bins=bins, dtype=dtype))
    chain = tfb.Chain([*front, *layers], name=f"{name}_chain")
    return tfd.TransformedDistribution(bases.get(base, shape, dtype), chain, name=name)
