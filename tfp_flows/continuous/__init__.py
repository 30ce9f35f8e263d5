"""Continuous normalizing flows trained by flow matching, as TFP distributions.

* `velocity`: the Keras 3 fields `v(x, t[, c])` (`VelocityMLP` for vectors, `VelocityConv` for
  images; any callable of that signature works).
* `bijector`: `ContinuousFlow`, the field's ODE map from `t = 0` (base) to `t = 1` (data) as a
  `tfb.Bijector` on `tfb.FFJORD`, with exact or Hutchinson traces (`trace`) and fixed-step or
  Dormand-Prince solvers (`solvers`).
* `factory`: `continuous_flow(event_shape, ...)`, the distribution (factory `"continuous_flow"`).
* `paths`: the linear and Gaussian probability paths and minibatch OT pairing.
* `model`: `FlowMatchingModel`, trained by conditional flow matching with Keras `fit`.
"""

from tfp_flows.continuous.bijector import ContinuousFlow
from tfp_flows.continuous.factory import continuous_flow
from tfp_flows.continuous.model import FlowMatchingModel
from tfp_flows.continuous.paths import PATHS, flow_matching_loss, interpolate, ot_pairing
from tfp_flows.continuous.solvers import FixedStep, make_solver
from tfp_flows.continuous.trace import exact_trace, hutchinson_trace
from tfp_flows.continuous.velocity import VelocityConv, VelocityMLP, time_features

__all__ = [
    "PATHS",
    "ContinuousFlow",
    "FixedStep",
    "FlowMatchingModel",
    "VelocityConv",
    "VelocityMLP",
    "continuous_flow",
    "exact_trace",
    "flow_matching_loss",
    "hutchinson_trace",
    "interpolate",
    "make_solver",
    "ot_pairing",
    "time_features",
]
