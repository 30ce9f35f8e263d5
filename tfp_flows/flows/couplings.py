"""Coupling layers with their conditioners, and the vector coupling builder.

`coupling_layer` is the one place a coupling and its network are put together: an
`nn.MLPConditioner` for vectors, an `nn.ConvConditioner` for images, returning the parameters
the spec's transformer takes.

Example:

>>> from tfp_flows.flows.couplings import vector_couplings
>>> from tfp_flows.flows.specs import CouplingSpec, NetworkSpec, TransformSpec
>>> spec = CouplingSpec(TransformSpec("spline"), NetworkSpec(hidden_units=(8,)))
>>> [type(b).__name__ for b in vector_couplings(3, num_layers=2, spec=spec)]
['Coupling', 'ActNorm', 'Coupling']
"""

from __future__ import annotations

import tensorflow_probability as tfp

from tfp_flows import bijectors as fb
from tfp_flows import nn
from tfp_flows.flows.specs import CouplingSpec

tfb = tfp.bijectors

__all__ = ["coupling_layer", "normalization_layers", "vector_couplings"]


def normalization_layers(
    kind: str | None, channels: int, *, event_ndims: int, dtype, name: str
) -> list[tfb.Bijector]:
    """What follows a coupling: `[ActNorm]`, `[tfb.BatchNormalization]` or nothing."""
    if kind == "actnorm":
        return [fb.ActNorm(channels, event_ndims=event_ndims, dtype=dtype, name=f"{name}_actnorm")]
    if kind == "batchnorm":
        return [tfb.BatchNormalization(name=f"{name}_batchnorm")]
    return []


def _conditioner(spec: CouplingSpec, shape, mask: str, reverse: bool, split, name: str):
    """The network of a coupling over events of `shape`: the kept part in, params out."""
    net = spec.network
    common = dict(  # num_params None: the pair (shift, log_scale) an AffineCoupling takes
        num_params=spec.transform.num_params,
        conditional_size=net.conditional_size,
        dtype=net.layer_dtype,
        name=name,
    )
    if mask == "half":
        (dim,) = shape
        kept = dim - split if reverse else split
        return nn.MLPConditioner(kept, dim - kept, hidden_units=net.hidden_units, **common)
    height, width, channels = shape
    if mask == "checkerboard":
        in_shape, out_channels = shape, channels
    else:
        kept = channels - split if reverse else split
        in_shape, out_channels = (height, width, kept), channels - kept
    return nn.ConvConditioner(
        in_shape, out_channels, filters=net.filters, num_blocks=net.num_blocks, **common
    )


def coupling_layer(
    spec: CouplingSpec,
    shape: tuple[int, ...],
    *,
    mask: str,
    reverse: bool = False,
    name: str,
    network_name: str | None = None,
) -> tfb.Bijector:
    """One coupling over events of `shape` (`[D]`: `mask="half"`; `[H, W, C]`: `"checkerboard"`
    or `"channel"`), keeping the first half (`reverse=True`: the second), with its network."""
    split = None if mask == "checkerboard" else shape[-1] // 2
    net = _conditioner(spec, shape, mask, reverse, split, network_name or f"{name}_net")
    return spec.transform.coupling(net, mask=mask, reverse=reverse, split=split, name=name)


def vector_couplings(dim: int, *, num_layers: int, spec: CouplingSpec) -> list[tfb.Bijector]:
    """Real NVP on vectors: `num_layers` half-mask couplings alternating which half they keep,
    with `spec.normalization` between them."""
    layers = []
    for i in range(num_layers):
        reverse = i % 2 == 1
        name = f"coupling_{i}"
        layers.append(
            coupling_layer(
                spec, (dim,), mask="half", reverse=reverse, name=name, network_name=f"mlp_{i}"
            )
        )
        if i < num_layers - 1:
            kind, dtype = spec.normalization, spec.network.dtype
            layers += normalization_layers(kind, dim, event_ndims=1, dtype=dtype, name=f"norm_{i}")
    return layers
