"""The flow bijectors: `tfb.Bijector` subclasses that compose with `tfb.Chain`.

Coupling and autoregressive layers separate the network from the map: a conditioner (any
callable, e.g. a `tfp_flows.nn` layer) returns the raw parameters of a transformer
(`transformers.Affine`, `SigmoidAffine`, `Additive`, `RationalQuadratic`, or your own).
"""

from tfp_flows.bijectors import transformers
from tfp_flows.bijectors._base import FlowBijector
from tfp_flows.bijectors.actnorm import ActNorm, initialize_actnorm
from tfp_flows.bijectors.affine_coupling import AffineCoupling
from tfp_flows.bijectors.autoregressive import MaskedAutoregressiveFlow
from tfp_flows.bijectors.coupling import Coupling
from tfp_flows.bijectors.factor_out import FactorOut
from tfp_flows.bijectors.inverse_autoregressive import (
    InverseAutoregressiveFlow,
    PerformanceWarning,
    warn_once_together,
)
from tfp_flows.bijectors.invertible_conv import Invertible1x1Conv
from tfp_flows.bijectors.logit import LogitTransform
from tfp_flows.bijectors.pixelwise_spline import PixelwiseSpline
from tfp_flows.bijectors.squeeze import Squeeze
from tfp_flows.bijectors.transformers import soft_clamp

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "Coupling",
    "FactorOut",
    "FlowBijector",
    "InverseAutoregressiveFlow",
    "Invertible1x1Conv",
    "LogitTransform",
    "MaskedAutoregressiveFlow",
    "PerformanceWarning",
    "PixelwiseSpline",
    "Squeeze",
    "initialize_actnorm",
    "soft_clamp",
    "transformers",
    "warn_once_together",
]
