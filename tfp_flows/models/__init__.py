"""Keras 3 models around flows: `DensityModel` (forward KL, from data) and `VariationalModel`
(reverse KL, from an unnormalised log-density). `tfp_flows.keras` is the same API.

Keras 3 does not see `tf.Variable`s held by TFP bijectors. This package's bijectors create their
variables as Keras 3 variables and its conditioners are Keras 3 layers, and the models here track
all of them, so `model.trainable_variables` is the flow's, `model.fit` trains it, and
`model.save("m.keras")` / `keras.models.load_model("m.keras")` (safe mode on) restore it exactly,
ActNorm's "initialised" flag included. A flow holding variables Keras cannot track (e.g. TFP's
`tfb.BatchNormalization`, a tf-keras layer) is refused with an error naming the variable.

The compiled training step is the guard: it checks the loss, the gradients and the weights it
would update and never applies a non-finite update (`SkippedSteps`, logged as `skipped_steps`);
`fit` raises `NonFiniteLossError` after `max_skipped_steps` consecutive skipped steps.

Step record, the models' hook for callbacks: with `model.record_steps = True`, every training
step also returns what it computed from, and after each step `model.step_record` is a read-only
mapping of name to tensor (a `DensityModel`'s batch `x` and condition `c`; a
`VariationalModel`'s samples `z`, `log_q` and `log_w`). It leaves the compiled step with its
outputs, so it is exactly what the step used under `tf.function`, XLA and a `tf.distribute`
strategy (the global batch), and never reaches the logs. With `steps_per_execution > 1` it is
the execution's last step's. `tfp_flows.diagnostics.StopOnNonFinite` uses it to diagnose the
step that was skipped; callbacks read it, they do not patch the model's methods.

Saving is atomic (`model.save`, `model.save_weights`, and so `ModelCheckpoint` and
`BackupAndRestore`): a crash while writing leaves the previous file intact. `load_model(path)`
loads in safe mode always and raises `ModelFileError` naming the file and the problem for a
truncated or corrupted file. Under a `tf.distribute` strategy (`MirroredStrategy`,
`MultiWorkerMirroredStrategy`), `fit` gives the same loss and updates as one device on the same
global batches.

Flows are rebuilt on load from a registered factory name and its keyword arguments
(`tfp_flows.flows.FACTORIES`; add your own with `register_factory`).

Example:

>>> import numpy as np
>>> from tfp_flows.models import DensityModel
>>> model = DensityModel("real_nvp", {"event_shape": [2], "num_layers": 2, "hidden_units": [8]})
>>> model.compile(optimizer="adam")
>>> x = np.random.default_rng(0).normal(size=(256, 2))
>>> history = model.fit(x, batch_size=64, validation_data=x[:64], verbose=0)
>>> sorted(history.history)
['nll', 'skipped_steps', 'val_nll']
>>> model.record_steps = True
>>> _ = model.fit(x, batch_size=64, verbose=0)
>>> model.step_record["x"].shape
TensorShape([64, 2])
"""

from tfp_flows.models._skips import SkippedSteps
from tfp_flows.models.density import DensityModel
from tfp_flows.models.variational import VariationalModel
from tfp_flows.saving import ModelFileError, load_model, save_model
from tfp_flows.train import NonFiniteLossError

__all__ = [
    "DensityModel",
    "ModelFileError",
    "NonFiniteLossError",
    "SkippedSteps",
    "VariationalModel",
    "load_model",
    "save_model",
]
