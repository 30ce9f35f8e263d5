"""`FlowModel`, the base of the Keras models: a flow built from a factory, tracked by Keras."""

from __future__ import annotations

import inspect
import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows import flows as flow_factories
from tfp_flows.checks import check_data
from tfp_flows.flows import keras_objects
from tfp_flows.models._record import StepRecording
from tfp_flows.models._skips import SkipLimit, SkippedSteps
from tfp_flows.saving import atomic_write, save_model
from tfp_flows.train import guarded_apply
from tfp_flows.train.traces import StepTraces

tfd = tfp.distributions

__all__ = ["FlowModel"]

_FIT_SIGNATURE = inspect.signature(keras.Model.fit)


def _json_kwargs(kwargs: dict) -> dict:
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, tf.DType):
            value = value.name
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def _built_flow(flow, flow_kwargs) -> tuple[tfd.Distribution, tuple | None]:
    """The flow and its spec `(factory name, JSON kwargs)` (`None` for a distribution)."""
    if flow_kwargs is not None and not isinstance(flow_kwargs, dict):
        raise TypeError(f"`flow_kwargs` must be a dict; got {flow_kwargs!r}.")
    if isinstance(flow, str):
        if flow not in flow_factories.FACTORIES:
            known = sorted(flow_factories.FACTORIES)
            raise ValueError(f"Unknown flow {flow!r}; registered factories: {known}.")
        spec = (flow, _json_kwargs(dict(flow_kwargs or {})))
        return flow_factories.FACTORIES[flow](**spec[1]), spec
    if isinstance(flow, tfd.Distribution):
        if flow_kwargs:
            raise ValueError("`flow_kwargs` is only used with a factory name.")
        return flow, None  # usable, but not savable from a config
    raise TypeError(f"`flow` must be a factory name or a distribution; got {type(flow)}.")


class FlowModel(StepRecording, keras.Model):
    """Shared base: owns a flow built from a factory, and tracks its Keras objects.

    Training steps never apply a non-finite update (`skipped_steps`, a `SkippedSteps`); `fit`
    raises `NonFiniteLossError` after `max_skipped_steps` consecutive skipped steps. With
    `record_steps` on, `step_record` holds what the last training step computed from (see
    `tfp_flows.models`).
    """

    def __init__(
        self,
        flow="maf",
        flow_kwargs: dict | None = None,
        *,
        max_skipped_steps: int = 3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_skipped_steps = check.integer(max_skipped_steps, "max_skipped_steps")
        self._skipped = SkippedSteps()
        self._evaluating = False
        # The graphs of this model's steps, released after `fit`, `evaluate` and `predict` so
        # that a dropped model frees its compiled steps (see `tfp_flows.train.traces`).
        self._traces = StepTraces()
        self.flow, self._flow_spec = _built_flow(flow, flow_kwargs)
        layers, variables = keras_objects(self.flow)
        self._flow_layers = layers
        self._flow_variables = variables
        sizes = {
            getattr(b, "conditional_size", None) for b in flow_factories.flow_bijectors(self.flow)
        } - {None}
        self.conditional_size = sizes.pop() if sizes else None
        self.built = True

    @property
    def skipped_steps(self) -> SkippedSteps:
        """The count of training steps whose update was skipped (NaN or inf)."""
        return self._skipped

    def _loss_metrics(self) -> list:
        raise NotImplementedError

    @property
    def metrics(self):
        # `skipped_steps` counts training steps: not reported (nor reset) by `evaluate`.
        return [*self._loss_metrics(), *(() if self._evaluating else (self._skipped,))]

    def _flow_for(self, conditional):
        if conditional is None:
            if self.conditional_size is not None:
                raise ValueError(
                    f"This flow is conditional (conditional_size={self.conditional_size}): pass "
                    "the condition."
                )
            return self.flow
        if not tf.is_symbolic_tensor(conditional):  # concrete: check the values now
            values = np.asarray(conditional)
            if values.dtype.kind in "fc" and not np.isfinite(values).all():
                raise ValueError("the condition has non-finite values (NaN or inf).")
        return flow_factories.condition(self.flow, conditional)

    def log_prob(self, x, conditional=None):
        """Log-density of `x` under the flow (given `conditional`, for a conditional flow)."""
        return self._flow_for(conditional).log_prob(check_data(self.flow, x))

    def sample(self, n: int, conditional=None, *, seed=None):
        """`n` samples from the flow (`conditional` must then have `n` rows, or broadcast)."""
        if not tf.is_tensor(n):
            n = check.integer(n, "n", minimum=0)
        return self._flow_for(conditional).sample(n, seed=seed)

    def _guarded_update(self, loss, grads, variables) -> tf.Tensor:
        """Applies `grads` unless the loss, a gradient or a weight is NaN or inf; returns
        whether it did (the same on every replica) and counts the skips in `skipped_steps`."""
        finite = guarded_apply(self.optimizer, loss, grads, variables)
        self._skipped.update_state(finite)
        return tf.reduce_all(finite)

    def _skip_hint(self, loss: bool) -> str:
        """A likely cause of skipped steps (`loss`: the loss itself was not finite)."""
        raise NotImplementedError

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, with the arguments and the data checked before any step runs."""
        arguments = _FIT_SIGNATURE.bind(self, *args, **kwargs).arguments
        arguments.pop("self")
        name = type(self).__name__
        if not getattr(self, "compiled", False) or self.optimizer is None:
            raise RuntimeError(f"{name}.fit: call `compile(optimizer=...)` first.")
        for key in ("batch_size", "validation_batch_size", "steps_per_epoch", "validation_steps"):
            arguments[key] = check.integer(arguments.get(key), key, allow_none=True)
        arguments["epochs"] = check.integer(arguments.get("epochs", 1), "epochs", minimum=0)
        if arguments.get("class_weight") is not None:
            raise ValueError(
                f"{name}.fit does not take `class_weight`: a flow has no class labels to weight "
                "(a condition is an input, not a label). Pass per-example `sample_weight`."
            )
        arguments = self._checked_fit_arguments(arguments)
        arguments["callbacks"] = [
            *(arguments.get("callbacks") or []),
            SkipLimit(self.max_skipped_steps),
        ]
        # Without a distribution strategy, Keras builds the optimizer (creates its slot variables)
        # inside the first trace of the training step, and a `tf.function` that creates variables
        # is traced twice. Building it here first halves the time to the first step.
        if not self.optimizer.built:
            with self.distribute_strategy.scope():  # mirrored slots under a strategy
                self.optimizer.build(self.trainable_variables)
        try:
            return super().fit(**arguments)
        finally:
            self._traces.release()

    def _checked_fit_arguments(self, arguments: dict) -> dict:
        return arguments

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate`: the loss metrics (no `skipped_steps`, a training count)."""
        evaluating, self._evaluating = self._evaluating, True
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self._evaluating = evaluating
            self._traces.release()

    def predict(self, *args, **kwargs):
        """`keras.Model.predict` (the flow's log-density of each example)."""
        try:
            return super().predict(*args, **kwargs)
        finally:
            self._traces.release()

    def predict_step(self, data):
        self._traces.note()
        return super().predict_step(data)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (3.15) builds a model under a strategy by averaging the replicas' shares of the
        # first batch, which fails when a global batch splits unevenly (16 and 15 rows). The
        # flow is built at construction and `fit` builds the optimizer: nothing is left to build.
        return

    def save(self, filepath, overwrite: bool = True, **kwargs):
        """`keras.Model.save`, atomically: a crash while writing leaves the old file intact."""
        save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite: bool = True, **kwargs):
        """`keras.Model.save_weights`, atomically (used by `BackupAndRestore`).

        Sharded weights (`max_shard_size`: several files) and remote paths are written by Keras
        directly, without that guarantee. Raises `ValueError` naming `filepath` unless it ends
        in `.weights.h5`, as Keras does.
        """
        filepath = os.fspath(filepath)
        if "://" in filepath or kwargs.get("max_shard_size") is not None:
            return keras.Model.save_weights(self, filepath, overwrite=overwrite, **kwargs)
        if not filepath.endswith(".weights.h5"):
            raise ValueError(
                f"Cannot save weights to {filepath!r}: the file name must end in `.weights.h5`."
            )
        atomic_write(
            filepath,
            lambda tmp: keras.Model.save_weights(self, tmp, overwrite=True, **kwargs),
            overwrite=overwrite,
        )

    def get_config(self):
        if self._flow_spec is None:
            raise ValueError(
                "This model was built from a distribution object; to save it, build it from a "
                "registered factory name (tfp_flows.flows.register_factory) and its kwargs."
            )
        name, kwargs = self._flow_spec
        return {
            **super().get_config(),
            "flow": name,
            "flow_kwargs": kwargs,
            "max_skipped_steps": self.max_skipped_steps,
        }
