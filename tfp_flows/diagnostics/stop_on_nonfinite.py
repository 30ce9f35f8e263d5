"""`StopOnNonFinite`: stops `fit` at the first skipped step, names the culprit, keeps the last
good state."""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfp_flows.diagnostics.nonfinite import (
    NonFiniteFinding,
    all_finite,
    find_first_nonfinite,
    samples_finding,
    variables_finding,
)
from tfp_flows.train import NonFiniteLossError

__all__ = ["StopOnNonFinite"]


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops `fit` at the first skipped step, names the culprit, keeps the last good state.

    Works with `DensityModel` and `VariationalModel`, whose steps skip (do not apply) any update
    whose loss, gradients or weights are NaN or inf and log `skipped_steps`. After every batch
    this callback checks whether a step was skipped, and the logged values (`monitor`, or every
    logged value) for NaN or inf. On either it:

    1. names the step (counted from 1 over the whole `fit`), epoch and batch;
    2. puts back the state in effect at that step and looks for the culprit: for a
       `DensityModel`, `find_first_nonfinite` on the offending batch names the first bijector
       whose output or log-det is not finite (failing that, a bijector whose variables hold NaN
       or inf); for a `VariationalModel`, a bijector with NaN or inf variables, else whether
       the step's own samples, their `log q` or the target's `log p~` were not finite, and at
       how many samples;
    3. puts back the last good state: the weights *and the optimizer's variables* (Adam's
       moments, its step count) of the last step whose loss was finite, as they were *before*
       that step's update, or the initial state if no step was finite; and writes the weights
       to `filepath` (if given) atomically, through a temporary file in the same directory;
    4. stops training and raises `NonFiniteLossError` with the message (or, with
       `raise_error=False`, warns and keeps the message in `self.message`).

    Training can then resume with another `fit` call, from exactly the state the last finite
    step started from (lower the learning rate first, or fix the data or target). A
    `VariationalModel`'s sample counter is not rewound, so the resumed `fit` draws new samples.

    The offending batch or samples are the model's step record: the callback turns the model's
    `record_steps` on for the duration of `fit` and reads `step_record` (see
    `tfp_flows.models`), so they are exactly what the compiled step used, under XLA too; the
    first `fit` with the callback, and the first after it, re-trace the train step. It keeps
    two copies of the weights and optimizer variables in memory, taken after every batch by one
    compiled read. With `steps_per_execution > 1`, a step is one execution of that many batches
    (the last good state is the one before the last finite execution; the record is that of the
    execution's last step). Under a `tf.distribute` strategy the snapshots are of the mirrored
    variables, so every replica is restored, and the record holds the global batch.

    Args:
      filepath: where to save the last good weights: a `.weights.h5` file (`save_weights`) or a
        `.keras` file (`model.save`); `None` to save nothing.
      monitor: names of the logged values to check; `None` checks all of them.
      raise_error: raise `NonFiniteLossError` (default), or only warn and stop.

    Example: `model.fit(x, callbacks=[StopOnNonFinite("last_good.weights.h5")])`.
    """

    def __init__(self, filepath=None, *, monitor=None, raise_error: bool = True):
        super().__init__()
        if filepath is not None:
            filepath = os.fspath(filepath)
            if not filepath.endswith((".weights.h5", ".keras")):
                raise ValueError(
                    f"`filepath` must end in '.weights.h5' or '.keras'; got {filepath!r}."
                )
        self.filepath = filepath
        self.monitor = (
            None if monitor is None else {monitor} if isinstance(monitor, str) else set(monitor)
        )
        self.raise_error = bool(raise_error)
        self.message = None
        self.finding = None
        self._was_recording = None  # the model's `record_steps` before this callback's `fit`

    def _watch(self) -> None:
        if self._was_recording is None and hasattr(self.model, "record_steps"):
            self._was_recording = self.model.record_steps
            self.model.record_steps = True

    def _unwatch(self) -> None:
        if self._was_recording is not None:
            self.model.record_steps = self._was_recording
            self._was_recording = None

    def on_train_begin(self, logs=None):
        self._watch()
        self.step, self.epoch = 0, 0
        self.message = self.finding = None
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        # Not VariationalModel's draw counter: a resumed fit must draw new samples, not the
        # failing step's again.
        draws = getattr(self.model, "_draws", None)
        weights = [w for w in self.model.weights if w is not draws]
        tracked = [*weights, *(optimizer.variables if optimizer is not None else ())]
        self._variables = [getattr(w, "value", w) for w in tracked]  # backing tf.Variables
        # One op call reads them all (reading ~50 variables one by one costs ~1 ms each).
        self._read = tf.function(lambda: [tf.identity(v) for v in self._variables])
        self._current = self._read()  # the weights the next step starts from
        self._good = None  # the weights of the last step whose loss was finite

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self._skipped = 0  # the model's `skipped_steps` count is per epoch

    def on_train_end(self, logs=None):
        self._unwatch()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs if logs is not None else {}
        self.step += 1
        checked = {k: v for k, v in logs.items() if self.monitor is None or k in self.monitor}
        bad = sorted(k for k, v in checked.items() if not all_finite(v))
        skipped = int(np.asarray(logs.get("skipped_steps", 0)).reshape(-1)[0])
        if skipped > self._skipped:  # the step's own guard skipped an update: say why
            self._skipped = skipped
            bad = bad or self._skip_causes()
        if not bad:
            self._good, self._current = self._current, self._read()
            return
        self._stop(batch, bad)

    def _skip_causes(self) -> list[str]:
        """The names of the skipped step's non-finite values (the loss under its log name)."""
        loss = "nll" if not hasattr(self.model, "target_log_prob_fn") else "elbo"
        causes = self.model.skipped_steps.causes()
        return [loss if cause == "loss" else cause for cause in causes] or [loss]

    def _restore(self, values) -> None:
        for v, value in zip(self._variables, values):
            v.assign(value)

    def _diagnose(self) -> NonFiniteFinding | None:
        model = self.model
        record = getattr(model, "step_record", None) or {}
        if hasattr(model, "target_log_prob_fn"):  # weights first: NaN weights make NaN samples
            finding = variables_finding(model.flow)
            if finding is None and "log_w" in record:
                finding = samples_finding(
                    model.flow,
                    model.target_log_prob_fn,
                    *(record[k] for k in ("z", "log_q", "log_w")),
                )
            return finding
        finding = None
        if "x" in record:
            finding = find_first_nonfinite(model.flow, record["x"], record.get("c"))
        return finding if finding is not None else variables_finding(model.flow)

    def _where(self, finding) -> str:
        if finding is not None:
            return f"first non-finite value in {finding}"
        if hasattr(self.model, "target_log_prob_fn"):
            return (
                "the step's samples, their log q and the target's log p~ were all finite (the "
                "loss's mean overflowed, or the non-finite value is in the gradient)"
            )
        return (
            "no single bijector's output or log-det is non-finite (the loss's sum "
            "overflowed, or the non-finite value is in the gradient)"
        )

    def _stop(self, batch, bad_logs):
        model = self.model
        self._restore(self._current)  # the weights the failing step started from
        try:
            finding = self._diagnose()
        finally:  # whatever the diagnosis does, the model ends with the last good state
            if self._good is not None:
                self._restore(self._good)
        message = (
            f"non-finite {_and(bad_logs)} at step {self.step} (epoch {self.epoch + 1}, "
            f"batch {batch + 1}): {self._where(finding)}."
        )
        if self._good is not None:
            message += (
                f" The last good weights and optimizer state (those step {self.step - 1}, the "
                "last step with a finite loss, started from) "
            )
        else:
            message += (
                " No step had a finite loss; the weights and optimizer state training started from "
            )
        message += "were restored"
        if self.filepath is not None:
            _save(model, self.filepath)
            message += f" and the weights saved to {self.filepath}"
        message += "; `fit` resumes from there."
        self.message, self.finding = message, finding
        model.stop_training = True
        self._unwatch()
        if self.raise_error:
            raise NonFiniteLossError(message, finding, self.step)
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def _and(names: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _save(model, filepath: str) -> None:
    """The models' own `save_weights` / `save` write atomically (`tfp_flows.saving`)."""
    if filepath.endswith(".weights.h5"):
        model.save_weights(filepath)
    else:
        model.save(filepath)
