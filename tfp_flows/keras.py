"""`tfp_flows.keras`: the public name of the Keras models, `tfp_flows.models`, plus
`keras_objects` (from `tfp_flows.flows`).

The code lives in `tfp_flows.models`; this module only re-exports it. Package modules import
the Keras library with absolute imports (`import keras`), which this module cannot shadow.
"""

from tfp_flows import models
from tfp_flows.flows import keras_objects

__all__ = [*models.__all__, "keras_objects"]
