"""tfp_flows: normalizing flows (Real NVP, Glow, MAF/IAF) for TensorFlow Probability.

Importing the package (any `tfp_flows` import) imports `tfp_flows.models`, which registers the
package's Keras classes (`DensityModel`, `VariationalModel`, the conditioners), so
`keras.models.load_model("flow.keras")` works in a fresh process after `import tfp_flows`.

`tfp_flows.keras` is the public name of `tfp_flows.models` (it re-exports it). It is an
attribute of this package only: package modules import the Keras library absolutely
(`import keras`), so the name never stands for this module inside them.
"""

from tfp_flows import (
    bijectors,
    checks,
    continuous,
    datasets,
    diagnostics,
    flows,
    images,
    keras,
    losses,
    models,
    nn,
    saving,
    testing,
    train,
    vi,
)
from tfp_flows._version import __version__

__all__ = [
    "__version__",
    "bijectors",
    "checks",
    "continuous",
    "datasets",
    "diagnostics",
    "flows",
    "images",
    "keras",
    "losses",
    "models",
    "nn",
    "saving",
    "testing",
    "train",
    "vi",
]
