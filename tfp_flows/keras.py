"""Keras 3 models around flows: `DensityModel` (forward KL, from data) and `VariationalModel`
(reverse KL, from an unnormalised log-density).

Keras 3 does not see `tf.Variable`s held by TFP bijectors. This package's bijectors create their
variables as Keras 3 variables and its conditioners are Keras 3 layers, and the models here track
all of them, so `model.trainable_variables` is the flow's, `model.fit` trains it, and
`model.save("m.keras")` / `keras.models.load_model("m.keras")` (safe mode on) restore it exactly,
ActNorm's "initialised" flag included. A flow holding variables Keras cannot track (e.g. TFP's
`tfb.BatchNormalization`, a tf-keras layer) is refused with an error naming the variable.

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
>>> from tfp_flows.keras import DensityModel
>>> model = DensityModel("real_nvp", {"event_shape": [2], "num_layers": 2, "hidden_units": [8]})
>>> model.compile(optimizer="adam")
>>> history = model.fit(np.random.default_rng(0).normal(size=(256, 2)), batch_size=64, verbose=0)
>>> sorted(history.history)
['nll']
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows import flows as flow_factories
from tfp_flows.bijectors import ActNorm, FlowBijector
from tfp_flows.images import bits_per_dim
from tfp_flows.losses import check_data, check_event_shape, sample_and_log_weights
from tfp_flows.saving import ModelFileError, atomic_write, load_model

tfd = tfp.distributions

__all__ = [
    "DensityModel",
    "ModelFileError",
    "VariationalModel",
    "keras_objects",
    "load_model",
    "save_model",
]


def keras_objects(dist_or_bijector) -> tuple[list, list]:
    """The Keras 3 layers and variables behind a flow, each once, in a deterministic order.

    Raises `ValueError` if the flow holds a trainable `tf.Variable` that is not backed by one of
    them (Keras could neither train nor save it).
    """
    layers, variables, seen = [], [], set()
    for bijector in flow_factories.flow_bijectors(dist_or_bijector):
        if not isinstance(bijector, FlowBijector):
            continue
        for obj in (*bijector.keras_layers, *bijector.keras_variables):
            if id(obj) not in seen:
                seen.add(id(obj))
                (layers if isinstance(obj, keras.layers.Layer) else variables).append(obj)
    backed = {id(v.value) for v in variables}
    backed |= {id(w.value) for layer in layers for w in layer.weights}
    for v in getattr(dist_or_bijector, "trainable_variables", ()):
        if id(v) not in backed:
            raise ValueError(
                f"The flow's variable {v.name!r} is not a Keras 3 variable, so a Keras model can "
                "neither train nor save it (e.g. tfb.BatchNormalization holds tf-keras layers). "
                "Use tfp_flows.bijectors.ActNorm instead, or train with a GradientTape loop."
            )
    return layers, variables


def _json_kwargs(kwargs: dict) -> dict:
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, tf.DType):
            value = value.name
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


class _FlowModel(keras.Model):
    """Shared base: owns a flow built from a factory, and tracks its Keras objects."""

    def __init__(self, flow="maf", flow_kwargs: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if flow_kwargs is not None and not isinstance(flow_kwargs, dict):
            raise TypeError(f"`flow_kwargs` must be a dict; got {flow_kwargs!r}.")
        if isinstance(flow, str):
            if flow not in flow_factories.FACTORIES:
                known = sorted(flow_factories.FACTORIES)
                raise ValueError(f"Unknown flow {flow!r}; registered factories: {known}.")
            self._flow_spec = (flow, _json_kwargs(dict(flow_kwargs or {})))
            self.flow = flow_factories.FACTORIES[flow](**self._flow_spec[1])
        elif isinstance(flow, tfd.Distribution):
            if flow_kwargs:
                raise ValueError("`flow_kwargs` is only used with a factory name.")
            self._flow_spec = None  # usable, but not savable from a config
            self.flow = flow
        else:
            raise TypeError(f"`flow` must be a factory name or a distribution; got {type(flow)}.")
        layers, variables = keras_objects(self.flow)
        self._flow_layers = layers
        self._flow_variables = variables
        self.conditional_size = self._conditional_size()
        self.built = True

    def _conditional_size(self):
        sizes = {
            getattr(b, "conditional_size", None) for b in flow_factories.flow_bijectors(self.flow)
        } - {None}
        return sizes.pop() if sizes else None

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
        return self._flow_for(conditional).sample(n, seed=seed)

    def save(self, filepath, overwrite: bool = True, **kwargs):
        """`keras.Model.save`, atomically: a crash while writing leaves the old file intact."""
        save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite: bool = True, **kwargs):
        """`keras.Model.save_weights`, atomically (used by `BackupAndRestore`)."""
        filepath = os.fspath(filepath)
        if "://" in filepath:
            return keras.Model.save_weights(self, filepath, overwrite=overwrite, **kwargs)
        atomic_write(
            filepath,
            lambda tmp: keras.Model.save_weights(self, tmp, overwrite=True, **kwargs),
            overwrite=overwrite,
        )

    def fit(self, *args, **kwargs):
        # Without a distribution strategy, Keras builds the optimizer (creates its slot variables)
        # inside the first trace of the training step, and a `tf.function` that creates variables
        # is traced twice. Building it here first halves the time to the first step.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():  # mirrored slots under a strategy
                self.optimizer.build(self.trainable_variables)
        return super().fit(*args, **kwargs)

    def get_config(self):
        if self._flow_spec is None:
            raise ValueError(
                "This model was built from a distribution object; to save it, build it from a "
                "registered factory name (tfp_flows.flows.register_factory) and its kwargs."
            )
        name, kwargs = self._flow_spec
        return {**super().get_config(), "flow": name, "flow_kwargs": kwargs}


def save_model(model: keras.Model, filepath, *, overwrite: bool = True, **kwargs) -> None:
    """Saves any Keras model to a `.keras` file atomically (see `tfp_flows.saving`).

    The file is written beside `filepath` under a temporary name and renamed over it, so a
    crash while writing leaves the previous file intact and loadable. Remote paths (`gs://...`)
    are passed to `keras.Model.save` unchanged, without that guarantee.
    """
    filepath = os.fspath(filepath)
    if "://" in filepath:
        return keras.Model.save(model, filepath, overwrite=overwrite, **kwargs)
    atomic_write(
        filepath,
        lambda tmp: keras.Model.save(model, tmp, overwrite=True, **kwargs),
        overwrite=overwrite,
    )


@keras.saving.register_keras_serializable(package="tfp_flows")
class DensityModel(_FlowModel):
    """A flow fitted to data by maximum likelihood (forward KL) with `model.fit`.

    `fit(x)` takes arrays or a `tf.data.Dataset` of batches `[B, *event_shape]`; for a
    conditional flow, `fit(x, c)` (or a dataset of `(x, c)` pairs) with `c` of shape
    `[B, conditional_size]`. Reports `nll` (nats per example) and, with `num_bins`, the
    `bits_per_dim` of dequantised images, for training and `validation_data`. Bad data (wrong
    shape or dtype, integer images, NaN or inf) raises a clear error before any weight changes.

    Args:
      flow: a factory name from `tfp_flows.flows.FACTORIES` (savable) or a distribution.
      flow_kwargs: keyword arguments for the factory.
      num_bins: pixel levels of dequantised image data in `[0, 1)`, to report bits/dim.
    """

    def __init__(self, flow="maf", flow_kwargs=None, *, num_bins: int | None = None, **kwargs):
        super().__init__(flow, flow_kwargs, **kwargs)
        self.num_bins = check.integer(num_bins, "num_bins", allow_none=True)
        self._num_dims = math.prod(self.flow.event_shape)
        self._nll = keras.metrics.Mean(name="nll")
        self._bpd = keras.metrics.Mean(name="bits_per_dim") if num_bins else None

    @property
    def metrics(self):
        return [m for m in (self._nll, self._bpd) if m is not None]

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins}

    def call(self, x, conditional=None):
        return self.log_prob(x, conditional)

    def _unpack(self, data):
        x, c, _ = keras.utils.unpack_x_y_sample_weight(data)
        if (c is None) != (self.conditional_size is None):
            raise ValueError(
                "A conditional flow needs (x, c) data; an unconditional one takes x alone "
                f"(conditional_size={self.conditional_size}, got c={'none' if c is None else 'c'})."
            )
        return check_data(self.flow, x), c

    def _update_metrics(self, loss, count):
        # Weighted by the batch size, so epoch metrics are per-example means also when batches
        # (or replicas' shares of a global batch) differ in size.
        self._nll.update_state(loss, sample_weight=count)
        if self._bpd is not None:
            self._bpd.update_state(
                bits_per_dim(-loss, num_dims=self._num_dims, num_bins=self.num_bins),
                sample_weight=count,
            )
        return _step_logs({m.name: m.result() for m in self.metrics})

    def train_step(self, data):
        x, c = self._unpack(data)
        count = tf.cast(tf.shape(x)[0], self.flow.dtype)
        with tf.GradientTape() as tape:
            nll = -self._flow_for(c).log_prob(x)
            loss = tf.reduce_mean(nll)
            # The optimizer sums gradients over replicas: each replica's share of the global
            # mean is its sum over the global batch size (sums and counts, not means of means).
            scaled = tf.reduce_sum(nll) / _global_count(count) if _distributed() else loss
        variables = self.trainable_variables
        grads = tape.gradient(scaled, [v.value for v in variables])
        self.optimizer.apply(grads, variables)
        return self._update_metrics(loss, count)

    def test_step(self, data):
        x, c = self._unpack(data)
        loss = -tf.reduce_mean(self._flow_for(c).log_prob(x))
        return self._update_metrics(loss, tf.cast(tf.shape(x)[0], self.flow.dtype))

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        x = self._validated(x, "x")
        if y is not None:
            y = self._validated(y, "c", check_event=False)
        if validation_data is not None and not isinstance(validation_data, tf.data.Dataset):
            parts = validation_data if isinstance(validation_data, tuple) else (validation_data,)
            validation_data = tuple(
                self._validated(p, "validation x" if i == 0 else "validation c", i == 0)
                for i, p in enumerate(parts)
            )
            validation_data = validation_data if len(validation_data) > 1 else validation_data[0]
        elif isinstance(validation_data, tf.data.Dataset):
            validation_data = validation_data.map(_finite_check)
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def _validated(self, data, name: str, check_event: bool = True):
        """Checks arrays up front and datasets batch by batch, before any training step."""
        if isinstance(data, tf.data.Dataset):
            return data.map(_finite_check)
        if data is None:
            return None
        array = np.asarray(data)
        if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
            raise TypeError(
                f"{name} has integer dtype {array.dtype}; flows model continuous data. Dequantise "
                "integer images first (tfp_flows.images.dequantize)."
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"{name} must be floating point; got dtype {array.dtype}.")
        if check_event:
            check_event_shape(self.flow, array.shape, name=name)
            if array.shape[0] == 0:
                raise ValueError(f"{name} is empty (0 examples): there is nothing to fit.")
        bad = ~np.isfinite(array)
        if bad.any():
            index = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} has {int(bad.sum())} non-finite values (NaN or inf), the first at index "
                f"{tuple(int(i) for i in index)}; no training step was run."
            )
        return array.astype(self.flow.dtype.as_numpy_dtype, copy=False)


def _distributed() -> bool:
    """Whether this runs in one replica of several (under a `tf.distribute` strategy)."""
    ctx = tf.distribute.get_replica_context()
    return ctx is not None and ctx.num_replicas_in_sync > 1


def _step_logs(logs: dict) -> dict:
    """Step logs in the shape Keras can reduce across replicas.

    Keras (3.15) reduces step logs over the workers of a `MultiWorkerMirroredStrategy` with
    `strategy.reduce(MEAN, value, axis=0)`, which fails on scalars: there they are returned with
    shape `[1]` (and reduced to scalars). Epoch logs are read from the metrics' variables,
    summed over all replicas, so they are exact global means in every case.
    """
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and _distributed():
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def _global_count(count: tf.Tensor) -> tf.Tensor:
    """`count` summed over all replicas (replica context)."""
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, count)


def _finite_check(*batch):
    checked = tuple(
        tf.debugging.assert_all_finite(t, "non-finite values (NaN or inf) in the data")
        if t.dtype.is_floating
        else t
        for t in batch
    )
    return checked if len(checked) > 1 else checked[0]


# The log key under which VariationalModel's step reports `_nonfinite_counts` when asked.
_NONFINITE_COUNTS_LOG = "_nonfinite_probe_counts"


def _nonfinite_counts(z, log_q, log_w):
    """Samples whose z, else log q, else log p~ (through log w) is NaN or inf: int32 `[3]`."""
    n = tf.shape(log_q)[0]
    finite_z = tf.reduce_all(tf.math.is_finite(tf.reshape(z, [n, -1])), axis=-1)
    finite_q = finite_z & tf.math.is_finite(log_q)
    finite_p = finite_q & tf.math.is_finite(log_w)
    bad = [~finite_z, finite_z & ~finite_q, finite_q & ~finite_p]
    return tf.stack([tf.reduce_sum(tf.cast(b, tf.int32)) for b in bad])


@keras.saving.register_keras_serializable(package="tfp_flows")
class VariationalModel(_FlowModel):
    """A flow fitted to an unnormalised log-density by reverse KL with `model.fit`.

    `fit(steps_per_epoch=N, epochs=E)` needs no data. Each step draws `num_samples` samples from
    the flow with their log-probability in one pass (use an `iaf` or `real_nvp` flow, not a
    `maf`, whose sampling is sequential) and minimises `mean(log q(z) - log p~(z))`. Reports
    `elbo`, the importance-sampled `log_z` and the effective sample size `ess` per step.

    Args:
      flow, flow_kwargs: as for `DensityModel`.
      target_log_prob_fn: the target `log p~`, mapping `[num_samples, *event_shape]` to
        `[num_samples]`. To save the model, make it a Keras-serializable object (a registered
        class or function); a lambda works for training but cannot be saved.
      num_samples: samples per step.
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
        self._count_nonfinite = False  # set by diagnostics.StopOnNonFinite while it watches
        self._metrics = [keras.metrics.Mean(name=n) for n in ("elbo", "log_z", "ess")]
        # With no data, ActNorm has nothing to initialise from: it starts as the identity and
        # trains as an ordinary per-channel affine layer.
        for bijector in flow_factories.flow_bijectors(self.flow):
            if isinstance(bijector, ActNorm):
                bijector.initialized.assign(True)
        # The target's output shape is checked once, eagerly, before any training step.
        sample_and_log_weights(self.flow, self.target_log_prob_fn, 2, seed=(0, 0))

    @property
    def metrics(self):
        return list(self._metrics)

    def get_config(self):
        return {
            **super().get_config(),
            "target_log_prob_fn": keras.saving.serialize_keras_object(self.target_log_prob_fn),
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

    def _step_metrics(self, log_w):
        n = tf.cast(tf.size(log_w), log_w.dtype)
        lse = tf.reduce_logsumexp(log_w)
        values = (
            tf.reduce_mean(log_w),
            lse - tf.math.log(n),
            tf.exp(2.0 * lse - tf.reduce_logsumexp(2.0 * log_w)),
        )
        for metric, value in zip(self._metrics, values):
            metric.update_state(value)
        return {m.name: m.result() for m in self._metrics}

    def _next_seed(self):
        """A fresh stateless sampling seed per step, reproducible from `seed`."""
        self._draws.assign_add(1)
        return tf.stack([tf.constant(self.seed, tf.int32), self._draws.value])

    def train_step(self, data):
        seed = self._next_seed()
        with tf.GradientTape() as tape:
            z, log_q, log_w = sample_and_log_weights(
                self.flow, self.target_log_prob_fn, self.num_samples, seed=seed
            )
            loss = -tf.reduce_mean(log_w)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, [v.value for v in variables]), variables)
        logs = self._step_metrics(log_w)
        if self._count_nonfinite:
            logs[_NONFINITE_COUNTS_LOG] = _nonfinite_counts(z, log_q, log_w)
        return logs

    def test_step(self, data):
        seed = self._next_seed()
        _, _, log_w = sample_and_log_weights(
            self.flow, self.target_log_prob_fn, self.num_samples, seed=seed
        )
        return self._step_metrics(log_w)

    def fit(self, x=None, *args, steps_per_epoch=None, **kwargs):
        if self.distribute_strategy.num_replicas_in_sync > 1:
            raise ValueError(
                "VariationalModel does not support training on several tf.distribute replicas "
                "(each would need its own samples and a 1/replicas loss scale); build it outside "
                "a multi-replica strategy scope, or use DensityModel to fit data."
            )
        if x is None:
            if steps_per_epoch is None:
                raise ValueError("With no data, `fit` needs `steps_per_epoch`.")
            x = tf.data.Dataset.from_tensors(tf.zeros([1])).repeat()
        if steps_per_epoch is not None:  # Keras would loop forever on the endless dataset
            steps_per_epoch = check.integer(steps_per_epoch, "steps_per_epoch")
        kwargs.setdefault("shuffle", False)
        return super().fit(x, *args, steps_per_epoch=steps_per_epoch, **kwargs)
