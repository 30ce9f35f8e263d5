"""`tfp_flows.keras`: the public name of the Keras models, `tfp_flows.models`, plus
`keras_objects` (from `tfp_flows.flows`).

The code lives in `tfp_flows.models`; this module only re-exports it. Package modules import
the Keras library with absolute imports (`import keras`), which this module cannot shadow.
"""

from tfp_flows import models
from tfp_flows.flows import keras_objects as keras_objects
from tfp_flows.models import DensityModel as DensityModel
from tfp_flows.models import ModelFileError as ModelFileError
from tfp_flows.models import NonFiniteLossError as NonFiniteLossError
from tfp_flows.models import SkippedSteps as SkippedSteps
from tfp_flows.models import VariationalModel as VariationalModel
from tfp_flows.models import load_model as load_model
from tfp_flows.models import save_model as save_model

__all__ = sorted([*models.__all__, "keras_objects"])  # the names imported above
