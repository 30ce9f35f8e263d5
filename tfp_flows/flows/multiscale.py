"""The multi-scale builder behind the image flows (`real_nvp` on images, and `glow`).

A multi-scale flow is one chain over one `[H, W, C]` event. Level `k` (at shape `[h, w, c]`):

    steps at full resolution          (MultiScaleSpec.full_steps)
    squeeze to [h/2, w/2, 4c]         (not on the last level when `squeeze_last=False`)
    steps at the squeezed shape       (MultiScaleSpec.squeezed_steps)
    factor out: the first 2c channels go on to level k + 1, the rest stay (not on the last)
    un-squeeze back to [h, w, c]

so the latent has the image's shape, and the factored-out half skips the deeper levels.

Example:

>>> from tfp_flows.flows.multiscale import MultiScaleSpec, multiscale
>>> spec = MultiScaleSpec(levels=2, squeezed_steps=lambda shape, k: [])
>>> chain = multiscale((4, 4, 1), spec)
>>> chain.name, [b.name for b in chain.bijectors]
('level_0', ['l0_squeeze', 'l0_factor_out', 'l0_unsqueeze'])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import tensorflow_probability as tfp

from tfp_flows import bijectors as fb

tfb = tfp.bijectors

__all__ = ["MultiScaleSpec", "check_levels", "multiscale"]

Shape = tuple[int, int, int]


def _no_steps(shape: Shape, level: int, last: bool) -> list:
    return []


@dataclasses.dataclass(frozen=True)
class MultiScaleSpec:
    """The layout of a multi-scale flow.

    Args:
      levels: number of levels; all but the last factor out half of their channels.
      squeezed_steps: `(shape, level) -> layers` on the squeezed `shape = [h/2, w/2, 4c]`.
      full_steps: `(shape, level, last) -> layers` at full resolution, before the squeeze.
      squeeze_last: whether the last level squeezes (Glow) or runs `full_steps` only (Real NVP).
      prefix: the levels' chains are named `f"{prefix}_{k}"`, their other layers
        `f"{prefix[0]}{k}_..."`.
    """

    levels: int
    squeezed_steps: Callable[[Shape, int], list]
    full_steps: Callable[[Shape, int, bool], list] = _no_steps
    squeeze_last: bool = True
    prefix: str = "level"


def check_levels(shape: Shape, levels: int, what: str, arg: str) -> None:
    """H and W must halve `levels` times (squeezes, or a last checkerboard mask) and stay whole."""
    height, width, _ = shape
    factor = 2**levels
    if height % factor or width % factor:
        raise ValueError(
            f"{what}: `{arg}`={levels} needs H and W divisible by 2**{levels} = {factor}; the "
            f"image shape {shape} is not. Use fewer levels or pad the images."
        )


def multiscale(shape: Shape, spec: MultiScaleSpec, level: int = 0) -> tfb.Bijector:
    """The chain of level `level` (and, inside its `FactorOut`, of the deeper levels)."""
    h, w, c = shape
    short, last = f"{spec.prefix[0]}{level}", level == spec.levels - 1
    layers = list(spec.full_steps(shape, level, last))
    if spec.squeeze_last or not last:
        layers.append(tfb.Invert(fb.Squeeze(), name=f"{short}_squeeze"))
        layers += spec.squeezed_steps((h // 2, w // 2, 4 * c), level)
        if not last:
            inner = multiscale((h // 2, w // 2, 2 * c), spec, level + 1)
            layers.append(fb.FactorOut(inner, split=2 * c, name=f"{short}_factor_out"))
        layers.append(fb.Squeeze(name=f"{short}_unsqueeze"))
    return tfb.Chain(layers, name=f"{spec.prefix}_{level}")
