"""Coupling flows: Real NVP (vectors and images) and Glow (images).

Real NVP (Dinh et al. 2017, https://arxiv.org/abs/1605.08803). On vectors (`event_shape=[D]`):
`num_layers` half-mask couplings alternating which half they keep, with ActNorm
(`normalization="actnorm"`), `tfb.BatchNormalization` (`"batchnorm"`) or nothing (`None`)
between them. On images (`[H, W, C]`): the paper's multi-scale architecture (see
`tfp_flows.flows.multiscale`). Per scale: `steps_per_scale` checkerboard couplings, squeeze,
`steps_per_scale` channel couplings, factor out half the channels; the last scale has
`steps_per_scale + 1` checkerboard couplings. Each coupling's conditioner is a
`ConvConditioner(filters, num_blocks)`, each followed by the normalization.

Glow (Kingma & Dhariwal 2018, https://arxiv.org/abs/1807.03039). Each of `levels` levels
squeezes, runs `steps_per_level` steps of (ActNorm, invertible 1x1 convolution, channel
coupling), then factors out half of the channels (not after the last level). The exit of the
flow is the identity at initialisation: no latent rescaling.

The couplings' map is `transformer=`: `"affine"` (`scale="exp"`, soft-clamped by
`log_scale_clamp`, Real NVP's default; `"sigmoid"`, Glow's default; or `"additive"`),
`"additive"` (NICE: volume-preserving) or `"spline"` (a monotone rational-quadratic spline with
`num_bins` bins on `[-spline_bound, spline_bound]`, the identity outside; Durkan et al. 2019,
https://arxiv.org/abs/1906.04032). On images, `logit_alpha` adds the logit pre-transform for
data in `[0, 1]` (after it the data lie roughly within +-5, inside the default spline bound),
and `pixel_spline_bins` a learned monotone spline per dimension after it (for non-Gaussian
marginals; see `tfp_flows.bijectors.PixelwiseSpline`). `base=` as in `tfp_flows.flows.bases`.

Example:

>>> from tfp_flows import flows
>>> dist = flows.glow((4, 4, 1), levels=1, steps_per_level=1, filters=4, transformer="spline")
>>> dist.sample(2, seed=(1, 2)).shape
TensorShape([2, 4, 4, 1])
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows import bijectors as fb
from tfp_flows.flows import bases
from tfp_flows.flows.assembly import assemble
from tfp_flows.flows.couplings import coupling_layer, normalization_layers, vector_couplings
from tfp_flows.flows.multiscale import MultiScaleSpec, check_levels, multiscale
from tfp_flows.flows.registry import register_factory
from tfp_flows.flows.specs import CouplingSpec, NetworkSpec, TransformSpec, event_shape_from

tfd = tfp.distributions

__all__ = ["glow", "real_nvp"]


def _real_nvp_spec(spec: CouplingSpec, levels: int, steps: int) -> MultiScaleSpec:
    """Real NVP's scales: checkerboard couplings, squeeze, channel couplings, factor out."""
    dtype, norm = spec.network.dtype, spec.normalization

    def couplings(shape, level, mask, count):
        short, layers = "cb" if mask == "checkerboard" else "ch", []
        for i in range(count):
            name = f"s{level}_{short}{i}"
            layers.append(coupling_layer(spec, shape, mask=mask, reverse=i % 2 == 1, name=name))
            layers += normalization_layers(norm, shape[-1], event_ndims=3, dtype=dtype, name=name)
        return layers

    return MultiScaleSpec(
        levels=levels,
        full_steps=lambda s, k, last: couplings(s, k, "checkerboard", steps + last),
        squeezed_steps=lambda s, k: couplings(s, k, "channel", steps),
        squeeze_last=False,
        prefix="scale",
    )


def _real_nvp_layers(shape, spec: CouplingSpec, num_layers, num_scales, steps_per_scale) -> list:
    """The layers of `real_nvp` over `shape`: the vector couplings, or one multi-scale chain."""
    if len(shape) == 1:
        if shape[0] < 2:
            raise ValueError(f"Real NVP needs at least 2 dimensions to split; got {shape}.")
        return vector_couplings(
            shape[0], num_layers=check.integer(num_layers, "num_layers"), spec=spec
        )
    num_scales = check.integer(num_scales, "num_scales")
    check_levels(shape, num_scales, "real_nvp", "num_scales")  # the last checkerboard too
    steps = check.integer(steps_per_scale, "steps_per_scale")
    return [multiscale(shape, _real_nvp_spec(spec, num_scales, steps))]


@register_factory("real_nvp")
def real_nvp(
    event_shape: int | Sequence[int] | None = None,
    *,
    num_layers: int = 8,
    hidden_units: Sequence[int] = (64, 64),
    num_scales: int = 2,
    steps_per_scale: int = 3,
    filters: int = 64,
    num_blocks: int = 2,
    normalization: str | None = "actnorm",
    transformer: str = "affine",
    scale: str = "exp",
    log_scale_clamp: float | None = 3.0,
    num_bins: int = 8,
    spline_bound: float = 5.0,
    logit_alpha: float | None = None,
    pixel_spline_bins: int | None = None,
    base: str | dict | tfd.Distribution = "normal",
    conditional_size: int | None = None,
    dtype=tf.float32,
    name: str = "real_nvp",
) -> tfd.TransformedDistribution:
    """Real NVP on vectors or images (the architectures: `tfp_flows.flows.coupling_flows`).

    Args:
      event_shape: `D` or `[D]` (`D >= 2`) for vectors, `[H, W, C]` for images (`H` and `W`
        divisible by `2**num_scales`).
      num_layers: vectors: number of couplings (default 8).
      hidden_units: vectors: hidden layer sizes of each coupling's MLP (default `(64, 64)`).
      num_scales: images: number of scales (default 2); all but the last squeeze.
      steps_per_scale: images: couplings per mask kind and scale (default 3).
      filters: images: channels of each conditioner's hidden convolutions (default 64).
      num_blocks: images: residual blocks of each conditioner (default 2).
      normalization: `"actnorm"` (default), `"batchnorm"` or `None`, between the couplings.
      transformer: the couplings' map: `"affine"` (default), `"additive"`, `"spline"` (or any
        `tfp_flows.bijectors.transformers` name or object).
      scale: the affine scale: `"exp"` (default, soft-clamped), `"sigmoid"` or `"additive"`.
      log_scale_clamp: bound `b` of the soft clamp `b * tanh(s / b)` of `"exp"` (default 3).
      num_bins: bins of the `"spline"` (default 8).
      spline_bound: the `"spline"` acts on `[-spline_bound, spline_bound]` (default 5).
      logit_alpha: images: `alpha` in `[0, 0.5)` of a logit pre-transform, or `None` (default).
      pixel_spline_bins: bins of a learned spline per dimension at the data end, or `None`.
      base: `"normal"` (default), `"diag_normal"`, `"mixture"`, `"student_t"`, a dict or a
        `tfd.Distribution` (see `tfp_flows.flows.bases`).
      conditional_size: size `C` of a condition `c` of shape `[..., C]` every network takes,
        for `p(x | c)` (see `condition`); `None` (default): unconditional.
      dtype: floating-point dtype of the base, the variables and the computation (float32).
      name: name of the distribution.
    """
    shape = event_shape_from(event_shape, rank=(1, 3))
    dtype = check.floating_dtype(dtype)
    base = bases.get(base, shape, dtype)
    transform = TransformSpec(transformer, scale, log_scale_clamp, num_bins, spline_bound)
    network = NetworkSpec(hidden_units, filters, num_blocks, "relu", conditional_size, dtype)
    spec = CouplingSpec(transform, network, normalization)
    layers = _real_nvp_layers(shape, spec, num_layers, num_scales, steps_per_scale)
    extras = dict(logit_alpha=logit_alpha, pixel_spline_bins=pixel_spline_bins)
    return assemble(shape, layers, base=base, dtype=dtype, name=name, **extras)


_COUPLINGS = {"affine": ("affine", "sigmoid"), "additive": ("additive", "additive")}
_COUPLINGS["exp"] = ("affine", "exp")  # glow's former `coupling=` -> (transformer, scale)


def _glow_spec(spec: CouplingSpec, shape, levels, steps_per_level, lu: bool, seed: int):
    """Glow's levels: squeeze, steps of (ActNorm, 1x1 convolution, channel coupling)."""
    dtype, levels = spec.network.dtype, check.integer(levels, "levels")
    check_levels(shape, levels, "glow", "levels")
    steps = check.integer(steps_per_level, "steps_per_level")

    def flow_steps(shape, k):
        layers = []
        for i in range(steps):
            layers += [
                fb.ActNorm(shape[-1], dtype=dtype, name=f"l{k}_step{i}_actnorm"),
                fb.Invertible1x1Conv(
                    shape[-1],
                    lu=lu,
                    seed=seed + 1000 * k + i,
                    dtype=dtype,
                    name=f"l{k}_step{i}_conv",
                ),
                coupling_layer(
                    spec, shape, mask="channel", reverse=i % 2 == 1, name=f"l{k}_step{i}_cpl"
                ),
            ]
        return layers

    return MultiScaleSpec(levels=levels, squeezed_steps=flow_steps, prefix="level")


def _glow_transform(coupling: str, transformer, scale: str) -> tuple:
    """`(transformer, scale)` from glow's former `coupling=` or the new pair (not both)."""
    if coupling not in _COUPLINGS:
        raise ValueError(f"`coupling` must be one of {sorted(_COUPLINGS)}; got {coupling!r}.")
    if coupling == "affine":
        return transformer, scale
    if (transformer, scale) != ("affine", "sigmoid"):
        raise ValueError(
            f"Pass either `coupling` (its former name) or `transformer`/`scale`; got "
            f"coupling={coupling!r}, transformer={transformer!r}, scale={scale!r}."
        )
    return _COUPLINGS[coupling]


@register_factory("glow")
def glow(
    event_shape: Sequence[int] | None = None,
    *,
    image_shape: Sequence[int] | None = None,
    levels: int = 3,
    steps_per_level: int = 8,
    filters: int = 128,
    num_blocks: int = 1,
    scale: str = "sigmoid",
    coupling: str = "affine",
    lu: bool = True,
    seed: int = 0,
    name: str = "glow",
    **options,
) -> tfd.TransformedDistribution:
    """Glow on `[H, W, C]` images (the architecture: `tfp_flows.flows.coupling_flows`).

    Args:
      event_shape: `[H, W, C]`, with `H` and `W` divisible by `2**levels`.
      image_shape: the former name of `event_shape` (pass one of them).
      levels: number of levels (default 3).
      steps_per_level: flow steps per level (default 8).
      filters: channels of each coupling conditioner's hidden convolutions (default 128).
      num_blocks: residual blocks of each coupling conditioner (default 1).
      scale: the affine scale: `"sigmoid"` (default, Glow's), `"exp"` or `"additive"`.
      coupling: former switch: `"affine"` (default: as `transformer`), `"additive"`, `"exp"`.
      lu: LU-parameterised 1x1 convolutions (default `True`); `False`: the full `C x C` matrix.
      seed: seed of the 1x1 convolutions' random rotations (step `i` of level `k`: `seed +
        1000 * k + i`; default 0).
      name: name of the distribution.

    Its other arguments are `real_nvp`'s, with the same meaning and defaults (listed above
    from `real_nvp`'s text; the full signature is `glow.__signature__`).
    """
    arguments = _GLOW_SIGNATURE.bind(event_shape, **options)  # a TypeError names a wrong one
    arguments.apply_defaults()
    o = arguments.arguments
    shape = event_shape_from(event_shape, rank=3, image_shape=image_shape)
    dtype = check.floating_dtype(o["dtype"])
    base = bases.get(o["base"], shape, dtype)
    transformer, scale = _glow_transform(coupling, o["transformer"], scale)
    transform = TransformSpec(
        transformer, scale, o["log_scale_clamp"], o["num_bins"], o["spline_bound"]
    )
    network = NetworkSpec((), filters, num_blocks, "relu", o["conditional_size"], dtype)
    spec = _glow_spec(
        CouplingSpec(transform, network, None), shape, levels, steps_per_level, lu, seed
    )
    extras = dict(logit_alpha=o["logit_alpha"], pixel_spline_bins=o["pixel_spline_bins"])
    return assemble(shape, [multiscale(shape, spec)], base=base, dtype=dtype, name=name, **extras)


def _args_doc(doc: str, names) -> str:
    """The entries of `doc`'s Args section for the arguments `names`, in its order."""
    entries, keep = [], False
    for line in doc.split("    Args:\n", 1)[1].split("\n\n", 1)[0].splitlines():
        if line.startswith("      ") and not line.startswith("       "):  # a new entry
            keep = line.strip().split(":", 1)[0] in names
        if keep:
            entries.append(line + "\n")
    return "".join(entries)


_REAL_NVP_ONLY = ("num_layers", "hidden_units", "num_scales", "steps_per_scale", "normalization")
_GLOW_SIGNATURE = check.derived_signature(real_nvp, glow, drop=_REAL_NVP_ONLY, name="glow")
_SHARED = [p for p in _GLOW_SIGNATURE.parameters if p not in inspect.signature(glow).parameters]
_NAME_DOC = (
    "      name: name of the distribution.\n"  # glow's last entry: the shared ones before it
)
glow.__doc__ = glow.__doc__.replace(_NAME_DOC, _args_doc(real_nvp.__doc__, _SHARED) + _NAME_DOC)
glow.__signature__ = _GLOW_SIGNATURE
