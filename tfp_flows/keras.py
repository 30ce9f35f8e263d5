"""`tfp_flows.keras`: the public name of the Keras models, `tfp_flows.models`, plus
`keras_objects` (from `tfp_flows.flows`).

The code lives in `tfp_flows.models`; this module only re-exports it. Package modules import
the Keras library with absolute imports (`import keras`), which this module cannot shadow.
"""

from tfp_flows.flows import keras_objects
from tfp_flows.models import (
    DensityModel,
    ModelFileError,
    NonFiniteLossError,
    SkippedSteps,
    VariationalModel,
    load_model,
    save_model,
)

__all__ = [
    "DensityModel",
    "ModelFileError",
    "NonFiniteLossError",
    "SkippedSteps",
    "VariationalModel",
    "keras_objects",
    "load_model",
    "save_model",
]
