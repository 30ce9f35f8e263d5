"""The flow bijectors: `tfb.Bijector` subclasses that compose with `tfb.Chain`."""

from tfp_flows.bijectors._base import FlowBijector, soft_clamp
from tfp_flows.bijectors.actnorm import ActNorm, initialize_actnorm
from tfp_flows.bijectors.affine_coupling import AffineCoupling

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "FlowBijector",
    "initialize_actnorm",
    "soft_clamp",
]
