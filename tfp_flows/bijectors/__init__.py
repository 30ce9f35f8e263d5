"""The flow bijectors: `tfb.Bijector` subclasses that compose with `tfb.Chain`."""

from tfp_flows.bijectors._base import FlowBijector, soft_clamp
from tfp_flows.bijectors.actnorm import ActNorm, initialize_actnorm

__all__ = [
    "ActNorm",
    "FlowBijector",
    "initialize_actnorm",
    "soft_clamp",
]
