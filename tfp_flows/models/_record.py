"""The models' step record: a documented hook for seeing what a training step computed from.

`model.record_steps = True` makes every training step of `fit` also return what it computed
from, and `model.step_record` holds it after each step: for a `DensityModel` the batch the flow
saw (`x`, dequantised if the model dequantises, and the condition `c` of a conditional flow),
for a `VariationalModel` the step's samples `z`, their `log_q` and log-weights `log_w`. The
record leaves the compiled step as part of its outputs, so it is exactly what the step used, also
under XLA and under a `tf.distribute` strategy (there: the global batch, every replica's share in
replica order); it is taken out of the logs before any callback sees them.
"""

from __future__ import annotations

import types

import tensorflow as tf

from tfp_flows.train import in_replica

__all__ = ["StepRecording", "recorded"]

RECORD_KEY = "_step_record"  # the step's output that holds the record (never in the logs)


def recorded(values: dict) -> dict:
    """In a training step: the record of `values` (tensors with a leading batch axis).

    On several replicas each value is gathered into the global batch, which every replica then
    holds, shaped (and widened to float64) so that Keras' mean over replicas of the step outputs
    returns it unchanged.
    """
    values = {name: value for name, value in values.items() if value is not None}
    if not in_replica():
        return values
    ctx = tf.distribute.get_replica_context()
    # Keras reduces a MultiWorkerMirroredStrategy's outputs with a mean along axis 0.
    multi_worker = isinstance(
        tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy
    )
    out = {}
    for name, value in values.items():
        value = ctx.all_gather(value, axis=0)  # identical on every replica
        if value.dtype.is_floating:  # a mean of copies is exact in float64
            value = tf.cast(value, tf.float64)
        out[name] = value[tf.newaxis] if multi_worker else value
    return out


class StepRecording:
    """Mixin of the models: the `record_steps` switch and the `step_record` it fills.

    The model's `train_step` adds `recorded({...})` to its outputs under `RECORD_KEY` while
    `record_steps` is on; the train function built here takes it out of the logs.
    """

    _record_steps = False
    _step_record = None

    @property
    def record_steps(self) -> bool:
        """Whether each training step also returns what it computed from (`step_record`).

        Off by default (the step then returns nothing more). Turning it on or off rebuilds the
        model's train function, so the next step is traced again; it may be set at any time,
        e.g. in a callback's `set_model` or `on_train_begin`.
        """
        return self._record_steps

    @record_steps.setter
    def record_steps(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"`record_steps` must be True or False; got {value!r}.")
        if value == self._record_steps:
            return
        self._record_steps = value
        self._step_record = None
        if self.train_function is not None:
            self.make_train_function(force=True)

    @property
    def step_record(self):
        """The last training step's record (a read-only mapping of name to eager tensor), or
        `None` when `record_steps` is off. With `steps_per_execution > 1`, that of the last step
        of the execution."""
        return self._step_record

    def make_train_function(self, force: bool = False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        if not self._record_steps:
            return self.train_function
        function, dtype = self.train_function, self.flow.dtype

        def train_function(iterator):
            logs = dict(function(iterator))
            record = logs.pop(RECORD_KEY, None)
            if record is not None:
                values = {
                    k: tf.cast(v, dtype) if v.dtype.is_floating else v for k, v in record.items()
                }
                self._step_record = types.MappingProxyType(values)
            return logs

        self.train_function = train_function
        return train_function
