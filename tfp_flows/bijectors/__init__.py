"""The flow bijectors: `tfb.Bijector` subclasses that compose with `tfb.Chain`."""

from tfp_flows.bijectors._base import FlowBijector, soft_clamp
from tfp_flows.bijectors.actnorm import ActNorm, initialize_actnorm
from tfp_flows.bijectors.autoregressive import (
    InverseAutoregressiveFlow,
    MaskedAutoregressiveFlow,
    PerformanceWarning,
)

__all__ = [
    "ActNorm",
    "FlowBijector",
    "InverseAutoregressiveFlow",
    "MaskedAutoregressiveFlow",
    "PerformanceWarning",
    "initialize_actnorm",
    "soft_clamp",
]
