"""The flow bijectors: `tfb.Bijector` subclasses that compose with `tfb.Chain`."""

from tfp_flows.bijectors import transformers
from tfp_flows.bijectors._base import FlowBijector, soft_clamp
from tfp_flows.bijectors.actnorm import ActNorm, initialize_actnorm
from tfp_flows.bijectors.affine_coupling import AffineCoupling
from tfp_flows.bijectors.autoregressive import (
    InverseAutoregressiveFlow,
    MaskedAutoregressiveFlow,
    PerformanceWarning,
    warn_once_together,
)
from tfp_flows.bijectors.factor_out import FactorOut
from tfp_flows.bijectors.invertible_conv import Invertible1x1Conv
from tfp_flows.bijectors.squeeze import Squeeze

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "FactorOut",
    "FlowBijector",
    "InverseAutoregressiveFlow",
    "Invertible1x1Conv",
    "MaskedAutoregressiveFlow",
    "PerformanceWarning",
    "Squeeze",
    "initialize_actnorm",
    "soft_clamp",
    "transformers",
    "warn_once_together",
]
