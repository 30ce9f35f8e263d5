"""Autoregressive flows: MAF and IAF, from one builder.

`autoregressive_layers` stacks `num_layers` MADE-based layers with the order reversed between
them; `maf` uses them as they are, `iaf` inverts each (an `InverseAutoregressiveFlow` is the
inverse of a `MaskedAutoregressiveFlow`). MAF evaluates densities in one pass per layer and
samples in `D` sequential passes; IAF the other way round.

`transformer="affine"` (default) gives each dimension a shift and a soft-clamped log-scale
(`log_scale_clamp`); `transformer="spline"` a monotone rational-quadratic spline with
`num_bins` bins on `[-spline_bound, spline_bound]`, the identity outside (a neural spline flow,
Durkan et al. 2019, https://arxiv.org/abs/1906.04032): far fewer layers for multimodal or
sharply bounded densities; keep the data roughly inside the bound.

Example:

>>> import tensorflow as tf
>>> from tfp_flows import flows
>>> dist = flows.iaf(2, num_layers=2, hidden_units=(8,), base="mixture")
>>> dist.experimental_sample_and_log_prob(3, seed=(1, 2))[1].shape
TensorShape([3])
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows import bijectors as fb
from tfp_flows import nn
from tfp_flows.flows import bases
from tfp_flows.flows.assembly import assemble
from tfp_flows.flows.registry import register_factory
from tfp_flows.flows.specs import NetworkSpec, TransformSpec, event_shape_from

tfb, tfd = tfp.bijectors, tfp.distributions

__all__ = ["autoregressive_layers", "iaf", "maf"]


def autoregressive_layers(
    dim: int, *, num_layers: int, transform: TransformSpec, network: NetworkSpec, inverse: bool
) -> list[tfb.Bijector]:
    """`num_layers` MAF layers over `[dim]`, order reversed between them; `inverse=True`
    inverts each (IAF), and ties their slow-path warnings into one."""
    transformer, layers = transform.make(), []
    kind = fb.InverseAutoregressiveFlow if inverse else fb.MaskedAutoregressiveFlow
    prefix, num_layers = "iaf" if inverse else "maf", check.integer(num_layers, "num_layers")
    for i in range(num_layers):
        made = nn.MADE(
            dim,
            hidden_units=network.hidden_units,
            num_params=transformer.num_params,
            activation=network.activation,
            conditional_size=network.conditional_size,
            dtype=network.layer_dtype,
            name=f"made_{i}",
        )
        layers.append(kind(made, transformer=transformer, name=f"{prefix}_{i}"))
        if i < num_layers - 1:
            layers.append(tfb.Permute(list(range(dim))[::-1], name=f"reverse_{i}"))
    if inverse:
        fb.warn_once_together(layers)
    return layers


def _autoregressive_flow(event_shape, dim, options: dict, *, inverse: bool):
    """The flow `maf` (`inverse=False`) or `iaf` (`inverse=True`) builds, from its arguments."""
    (d,) = event_shape_from(event_shape, rank=1, dim=dim)
    dtype = check.floating_dtype(options["dtype"])
    base = bases.get(options["base"], (d,), dtype)
    transform = TransformSpec(
        options["transformer"],
        log_scale_clamp=options["log_scale_clamp"],
        num_bins=options["num_bins"],
        spline_bound=options["spline_bound"],
    )
    network = NetworkSpec(
        options["hidden_units"],
        activation=options["activation"],
        conditional_size=options["conditional_size"],
        dtype=dtype,
    )
    layers = autoregressive_layers(
        d, num_layers=options["num_layers"], transform=transform, network=network, inverse=inverse
    )
    return assemble((d,), layers, base=base, dtype=dtype, name=options["name"])


@register_factory("maf")
def maf(
    event_shape: int | Sequence[int] | None = None,
    *,
    dim: int | None = None,
    num_layers: int = 5,
    hidden_units: Sequence[int] = (64, 64),
    activation: str = "relu",
    transformer: str = "affine",
    num_bins: int = 8,
    spline_bound: float = 5.0,
    log_scale_clamp: float | None = 3.0,
    base: str | dict | tfd.Distribution = "normal",
    conditional_size: int | None = None,
    dtype=tf.float32,
    name: str = "maf",
) -> tfd.TransformedDistribution:
    """Masked autoregressive flow (Papamakarios et al. 2017, https://arxiv.org/abs/1705.07057).

    `num_layers` MADE-based MAF layers with the order reversed between them. Density evaluation
    (`log_prob`, training by maximum likelihood) takes one pass per layer; sampling takes `D`
    sequential passes per layer. For fast sampling use `iaf`.

    Args:
      event_shape: event size `D` (or `[D]`); the flow is over vectors of shape `[D]`.
      dim: the former name of `event_shape` (pass one of them).
      num_layers: number of autoregressive layers (default 5).
      hidden_units: hidden layer sizes of each layer's MADE (default `(64, 64)`).
      activation: the MADE's hidden activation (default `"relu"`), any name or callable
        `keras.activations.get` accepts.
      transformer: `"affine"` (default) or `"spline"` (or a `bijectors.transformers` object).
      num_bins: spline bins per dimension (default 8; `transformer="spline"` only).
      spline_bound: the spline acts on `[-spline_bound, spline_bound]` (default 5).
      log_scale_clamp: bound of the soft clamp on the affine log-scale (default 3), or `None`.
      base: `"normal"` (default), `"diag_normal"`, `"mixture"`, `"student_t"`, a dict or a
        `tfd.Distribution` (see `tfp_flows.flows.bases`).
      conditional_size: size `C` of a condition vector `c` of shape `[..., C]` that every MADE
        takes (see `condition`); `None` (default) for an unconditional flow.
      dtype: floating-point dtype of the base distribution, the variables and the computation
        (default `tf.float32`).
      name: name of the distribution.
    """
    options = dict(locals())
    return _autoregressive_flow(
        options.pop("event_shape"), options.pop("dim"), options, inverse=False
    )


@register_factory("iaf")
def iaf(event_shape=None, **options) -> tfd.TransformedDistribution:
    """Inverse autoregressive flow (Kingma et al. 2016, https://arxiv.org/abs/1606.04934).

    The inverse of `maf`'s layers: sampling and `experimental_sample_and_log_prob` take one
    pass per layer (fast sampling, e.g. a student distilled from a MAF); `log_prob` of new
    points takes `D` sequential passes per layer, with one `PerformanceWarning` per flow. For
    variational inference prefer `real_nvp`, one pass both ways (see
    `vi.flow_surrogate_posterior`).

    It takes `maf`'s arguments (its signature, `name` defaulting to `"iaf"`); each layer is the
    inverse of a MAF layer.
    """
    arguments = _IAF_SIGNATURE.bind(event_shape, **options)  # a TypeError names a wrong one
    arguments.apply_defaults()
    options = dict(arguments.arguments)
    return _autoregressive_flow(
        options.pop("event_shape"), options.pop("dim"), options, inverse=True
    )


_IAF_SIGNATURE = check.signature_named(maf, "iaf")
iaf.__signature__ = _IAF_SIGNATURE
iaf.__doc__ += "\n" + maf.__doc__[maf.__doc__.index("    Args:") :]  # one text for both
