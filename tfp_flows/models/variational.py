"""`VariationalModel`: a flow fitted to an unnormalised log-density by reverse KL."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows import flows as flow_factories
from tfp_flows.bijectors import ActNorm
from tfp_flows.models._base import FlowModel
from tfp_flows.models._record import RECORD_KEY, recorded
from tfp_flows.train import importance_summary, sample_and_log_weights

__all__ = ["VariationalModel"]


def _serializable_target(fn) -> dict:
    """`fn`'s Keras config; `ValueError` if `load_model` could not rebuild `fn` from it."""
    # An object is rebuilt from its registered class, a function from itself.
    obj = type(fn) if hasattr(fn, "get_config") else fn
    if keras.saving.get_registered_object(keras.saving.get_registered_name(obj)) is not obj:
        name = getattr(fn, "__name__", type(fn).__name__)
        raise ValueError(
            f"Cannot save this VariationalModel: its target_log_prob_fn {name!r} is not "
            "registered with Keras, so the saved file could not be loaded (a lambda or a local "
            "function never can, in safe mode). Define it at module level and decorate it with "
            "@keras.saving.register_keras_serializable(), or save the weights only "
            "(model.save_weights)."
        )
    return keras.saving.serialize_keras_object(fn)


@keras.saving.register_keras_serializable(package="tfp_flows")
class VariationalModel(FlowModel):
    """A flow fitted to an unnormalised log-density by reverse KL with `model.fit`.

    `fit(steps_per_epoch=N, epochs=E)` needs no data. Each step draws `num_samples` samples from
    the flow with their log-probability in one pass (use an `iaf` or `real_nvp` flow, not a
    `maf`, whose sampling is sequential) and minimises `mean(log q(z) - log p~(z))`. Reports
    `elbo`, the importance-sampled `log_z` and the effective sample size `ess` per step (and
    `skipped_steps` in training).

    Step record (`record_steps`, see `tfp_flows.models`): the step's samples `z`, their
    `log_q` and their log-weights `log_w = log p~(z) - log q(z)`.

    Args:
      flow, flow_kwargs: as for `DensityModel`.
      target_log_prob_fn: the target `log p~`, mapping `[num_samples, *event_shape]` to
        `[num_samples]`. To save the model, make it a Keras-serializable object (a registered
        class or function); a lambda works for training but cannot be saved.
      num_samples: samples per step.
      seed: an int; step `t` samples with the stateless seed `(seed, t)`.
      max_skipped_steps: stop `fit` after this many consecutive skipped steps.

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.models import VariationalModel
    >>> model = VariationalModel("iaf", {"dim": 2, "num_layers": 1, "hidden_units": [8]},
    ...                          target_log_prob_fn=lambda z: -0.5 * tf.reduce_sum(z**2, -1),
    ...                          num_samples=16)
    >>> model.compile(optimizer="adam")
    >>> sorted(model.fit(steps_per_epoch=2, verbose=0).history)
    ['elbo', 'ess', 'log_z', 'skipped_steps']
    """

    def __init__(
        self,
        flow="iaf",
        flow_kwargs=None,
        *,
        target_log_prob_fn=None,
        num_samples: int = 256,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(flow, flow_kwargs, **kwargs)
        if not callable(target_log_prob_fn):
            raise ValueError("`target_log_prob_fn` must be a callable log-density.")
        self.target_log_prob_fn = target_log_prob_fn
        self.num_samples = check.integer(num_samples, "num_samples")
        self.seed = int(seed)
        self._draws = keras.Variable(0, dtype="int32", trainable=False, name="sample_draws")
        self._metrics = [keras.metrics.Mean(name=n) for n in ("elbo", "log_z", "ess")]
        # With no data, ActNorm has nothing to initialise from: it starts as the identity and
        # trains as an ordinary per-channel affine layer.
        for bijector in flow_factories.flow_bijectors(self.flow):
            if isinstance(bijector, ActNorm):
                bijector.initialized.assign(True)
        # The target's output shape is checked once, eagerly, before any training step.
        sample_and_log_weights(self.flow, self.target_log_prob_fn, 2, seed=(0, 0))

    def _loss_metrics(self) -> list:
        return list(self._metrics)

    def get_config(self):
        return {
            **super().get_config(),
            "target_log_prob_fn": _serializable_target(self.target_log_prob_fn),
            "num_samples": self.num_samples,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["target_log_prob_fn"] = keras.saving.deserialize_keras_object(
            config["target_log_prob_fn"]
        )
        return cls(**config)

    def call(self, z):
        return self.flow.log_prob(z)

    def _step_metrics(self, log_w, ok=None):
        summary = importance_summary(log_w)
        values = (summary["elbo"], summary["log_z"], summary["ess"])
        weight = 1.0 if ok is None else tf.cast(ok, log_w.dtype)
        for metric, value in zip(self._metrics, values):  # a skipped step does not count
            metric.update_state(value if ok is None else tf.where(ok, value, 0.0), weight)
        return {m.name: m.result() for m in self.metrics}

    def _next_seed(self):
        """A fresh stateless sampling seed per step, reproducible from `seed`."""
        self._draws.assign_add(1)
        return tf.stack([tf.constant(self.seed, tf.int32), self._draws.value])

    def train_step(self, data):
        self._traces.note()
        seed = self._next_seed()
        with tf.GradientTape() as tape:
            z, log_q, log_w = sample_and_log_weights(
                self.flow, self.target_log_prob_fn, self.num_samples, seed=seed
            )
            loss = -tf.reduce_mean(log_w)
        variables = self.trainable_variables
        grads = tape.gradient(loss, [v.value for v in variables])
        logs = self._step_metrics(log_w, self._guarded_update(loss, grads, variables))
        if self.record_steps:
            logs[RECORD_KEY] = recorded({"z": z, "log_q": log_q, "log_w": log_w})
        return logs

    def test_step(self, data):
        self._traces.note()
        seed = self._next_seed()
        _, _, log_w = sample_and_log_weights(
            self.flow, self.target_log_prob_fn, self.num_samples, seed=seed
        )
        return self._step_metrics(log_w)

    def _skip_hint(self, loss: bool) -> str:
        if not loss:
            return "A gradient overflowed: lower the learning rate."
        return (
            "Likely cause: the target log-density is NaN or inf at some of the flow's samples "
            "(samples outside the target's support: map the flow into the support with a "
            "constraining bijector, e.g. vi.flow_surrogate_posterior), or the samples overflow. "
            "Fit with tfp_flows.diagnostics.StopOnNonFinite to see which."
        )

    def _checked_fit_arguments(self, arguments: dict) -> dict:
        if self.distribute_strategy.num_replicas_in_sync > 1:
            raise ValueError(
                "VariationalModel does not support training on several tf.distribute replicas "
                "(each would need its own samples and a 1/replicas loss scale); build it outside "
                "a multi-replica strategy scope, or use DensityModel to fit data."
            )
        for key in ("y", "sample_weight", "validation_data"):
            if arguments.get(key) is not None:
                raise ValueError(f"VariationalModel.fit takes no data, so no `{key}`.")
        if arguments.get("x") is None:
            if arguments.get("steps_per_epoch") is None:
                raise ValueError("With no data, `fit` needs `steps_per_epoch`.")
            arguments["x"] = tf.data.Dataset.from_tensors(tf.zeros([1])).repeat()
        arguments.setdefault("shuffle", False)
        return arguments
