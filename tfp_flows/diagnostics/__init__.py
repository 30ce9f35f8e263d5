"""Finding where a flow first produces NaN or inf, and stopping training when it does.

* `find_first_nonfinite(flow, x)` runs the flow's data-to-latent pass (the `inverse` that
  `log_prob` runs) one bijector at a time and returns the first bijector whose output or
  log-determinant is not finite (a `NonFiniteFinding`), or `None`.
* `StopOnNonFinite` is a Keras callback for `tfp_flows.keras.DensityModel.fit` and
  `VariationalModel.fit`. The models' own step already skips any update whose loss, gradients
  or weights are not finite (`tfp_flows.keras.SkippedSteps`) and stops after a few in a row; this
  callback is the richer diagnosis on top. At the first skipped step (or non-finite logged
  value) it stops training, names the step and where the first non-finite value appeared (the
  bijector, on the offending batch; or the target log-density, on the offending step's samples:
  both read from the model's step record), puts back the last good weights and optimizer
  state, saves the weights, and raises `NonFiniteLossError`.

Example:

>>> import numpy as np
>>> from tfp_flows import flows
>>> from tfp_flows.diagnostics import find_first_nonfinite
>>> dist = flows.real_nvp([2], num_layers=2, hidden_units=[8])
>>> print(find_first_nonfinite(dist, np.zeros([4, 2], np.float32)))
None
>>> _ = dist.bijector.bijectors[2].conditioner.output_layer.bias.assign([np.nan, 0.0])
>>> finding = find_first_nonfinite(dist, np.zeros([4, 2], np.float32))
>>> finding.bijector, finding.kind, finding.where
('coupling_1', 'AffineCoupling', 'inverse output')
>>> finding.variables
('mlp_1/shift_and_log_scale/bias',)
"""

from tfp_flows.diagnostics.nonfinite import NonFiniteFinding, find_first_nonfinite
from tfp_flows.diagnostics.stop_on_nonfinite import StopOnNonFinite
from tfp_flows.train import NonFiniteLossError

__all__ = ["NonFiniteFinding", "NonFiniteLossError", "StopOnNonFinite", "find_first_nonfinite"]
