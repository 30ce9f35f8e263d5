"""tfp_flows: normalizing flows (Real NVP, Glow, MAF/IAF) for TensorFlow Probability.

Importing the package (any `tfp_flows` import) imports `tfp_flows.keras`, which registers the
package's Keras classes (`DensityModel`, `VariationalModel`, the conditioners), so
`keras.models.load_model("flow.keras")` works in a fresh process after `import tfp_flows`.
"""

from tfp_flows import (
    bijectors,
    datasets,
    diagnostics,
    flows,
    images,
    keras,
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
    "keras",
    "losses",
    "nn",
    "saving",
    "testing",
    "vi",
]
