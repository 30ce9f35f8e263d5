"""The training core: one guarded update, one loop, one importance-weight summary.

* `guarded_apply`: the only place an optimizer update is applied; it skips steps whose loss,
  gradients or weights are NaN or inf (`tfp_flows.train.guard`).
* `minimize`: the loop behind `tfp_flows.vi.fit` and `tfp_flows.vi.distill`: compiled steps, a
  wall-clock budget, a learning-rate schedule that follows the budget, progress lines
  (`tfp_flows.train.loop`).
* `importance_summary`: ELBO, importance-sampled log Z and effective sample size of the
  importance weights of a flow against a target (`tfp_flows.train.weights`).

Example:

>>> import tensorflow as tf
>>> from tfp_flows import train
>>> x = tf.Variable([3.0, -2.0])
>>> result = train.minimize(lambda: tf.reduce_sum(x**2), [x], num_steps=200, learning_rate=0.1,
...                         jit_compile=False)
>>> result.steps, result.stopped_by, bool(result.losses[-1] < 1e-3)
(200, 'num_steps', True)
"""

from tfp_flows.train.guard import (
    SKIP_CAUSES,
    NonFiniteLossError,
    all_finite,
    guarded_apply,
    in_replica,
)
from tfp_flows.train.loop import SCHEDULES, TrainResult, minimize
from tfp_flows.train.weights import (
    importance_diagnostics,
    importance_summary,
    sample_and_log_weights,
)

__all__ = [
    "SCHEDULES",
    "SKIP_CAUSES",
    "NonFiniteLossError",
    "TrainResult",
    "all_finite",
    "guarded_apply",
    "importance_diagnostics",
    "importance_summary",
    "in_replica",
    "minimize",
    "sample_and_log_weights",
]
