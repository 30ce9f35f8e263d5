"""tfp_flows: normalizing flows (Real NVP, Glow, MAF/IAF) for TensorFlow Probability."""

from tfp_flows import (
    bijectors,
    datasets,
    diagnostics,
    flows,
    images,
    losses,
    nn,
    saving,
    testing,
    vi,
)
from tfp_flows._version import __version__

__all__ = [
    "__version__",
    "bijectors",
    "datasets",
    "diagnostics",
    "flows",
    "images",
    "losses",
    "nn",
    "saving",
    "testing",
    "vi",
]
