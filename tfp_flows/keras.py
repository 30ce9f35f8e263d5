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
['nll', 'skipped_steps']
"""

from __future__ import annotations

import inspect
import math
import os
import types

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows import flows as flow_factories
from tfp_flows.bijectors import ActNorm
from tfp_flows.flows import keras_objects
from tfp_flows.images import bits_per_dim
from tfp_flows.losses import (
    check_data,
    check_dtype,
    check_event_shape,
    check_values,
    data_domain,
    sample_and_log_weights,
)
from tfp_flows.saving import ModelFileError, atomic_write, load_model
from tfp_flows.train import SKIP_CAUSES, NonFiniteLossError, guarded_apply, in_replica

tfb, tfd = tfp.bijectors, tfp.distributions

__all__ = [
    "DensityModel",
    "ModelFileError",
    "NonFiniteLossError",
    "SkippedSteps",
    "VariationalModel",
    "keras_objects",
    "load_model",
    "save_model",
]


def _json_kwargs(kwargs: dict) -> dict:
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, tf.DType):
            value = value.name
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


class SkippedSteps(keras.metrics.Metric):
    """Training steps whose update was skipped because a value was NaN or inf.

    Every training step of `DensityModel` and `VariationalModel` checks its loss, its gradients
    and the weights it would update, and applies the update only if all are finite (as
    loss-scaling optimizers do), inside the compiled step: so it holds under XLA, with
    `steps_per_execution > 1` and, the decision being all-reduced, on every replica. `result()`
    is this epoch's count (logged as `skipped_steps`); `consecutive` counts the skips since the
    last applied update and `cause` holds the bits (1 loss, 2 gradient, 4 weights) of the last
    skip; neither is reset between epochs.
    """

    def __init__(self, name: str = "skipped_steps", **kwargs):
        super().__init__(name=name, **kwargs)
        # Every replica makes the same decision: read the first replica's count.
        add = lambda n: self.add_variable(  # noqa: E731
            (), "zeros", dtype="int32", aggregation="only_first_replica", name=n
        )
        self.count, self.consecutive, self.cause = add("count"), add("consecutive"), add("cause")

    def update_state(self, finite):
        """`finite`: bool `[3]`, whether the loss, the gradients and the weights were finite."""
        ok = tf.reduce_all(finite)
        bits = tf.reduce_sum(tf.cast(~finite, tf.int32) * tf.constant([1, 2, 4]))
        self.count.assign_add(tf.cast(~ok, tf.int32))
        self.consecutive.assign(tf.where(ok, 0, self.consecutive + 1))
        self.cause.assign(tf.where(ok, self.cause, bits))

    def result(self):
        return tf.identity(self.count)

    def reset_state(self):
        self.count.assign(0)

    def causes(self) -> list[str]:
        """The names of what was not finite at the last skipped step."""
        bits = int(self.cause.numpy())
        return [name for i, name in enumerate(SKIP_CAUSES) if bits & (1 << i)]


class _SkipLimit(keras.callbacks.Callback):
    """Stops `fit` with `NonFiniteLossError` after `limit` consecutive skipped steps."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def on_train_begin(self, logs=None):
        self.model._skipped.consecutive.assign(0)  # counted within one `fit`

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        skipped = int(self.model._skipped.consecutive.numpy())
        if skipped >= self.limit:
            self.model.stop_training = True
            raise NonFiniteLossError(self.model._skip_message(skipped, self.epoch, batch))


_FIT_SIGNATURE = inspect.signature(keras.Model.fit)


class _FlowModel(keras.Model):
    """Shared base: owns a flow built from a factory, and tracks its Keras objects.

    Training steps never apply a non-finite update (`SkippedSteps`); `fit` raises
    `NonFiniteLossError` after `max_skipped_steps` consecutive skipped steps.
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
        if not tf.is_tensor(n):
            n = check.integer(n, "n", minimum=0)
        return self._flow_for(conditional).sample(n, seed=seed)

    def _guarded_update(self, loss, grads, variables) -> tf.Tensor:
        """Applies `grads` unless the loss, a gradient or a weight is NaN or inf; returns
        whether it did (the same on every replica) and counts the skips in `_skipped`."""
        finite = guarded_apply(self.optimizer, loss, grads, variables)
        ok = tf.reduce_all(finite)
        self._skipped.update_state(finite)
        return ok

    def _skip_message(self, skipped: int, epoch: int, batch: int) -> str:
        causes = self._skipped.causes()
        what = " and ".join(causes) or "loss"
        text = (
            f"{skipped} consecutive training steps were skipped, the last at epoch {epoch + 1}, "
            f"batch {batch + 1}: the {what} {'were' if len(causes) > 1 else 'was'} NaN or inf, "
            "so no update was applied and the weights and optimizer state are those from before "
            "the first skipped step. "
        )
        if "weights" in causes:
            return text + (
                "The model's weights already held NaN or inf (set outside training?): restore "
                "them from a checkpoint."
            )
        return text + self._skip_hint("loss" in causes)

    def _skip_hint(self, loss: bool) -> str:
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
            _SkipLimit(self.max_skipped_steps),
        ]
        # Without a distribution strategy, Keras builds the optimizer (creates its slot variables)
        # inside the first trace of the training step, and a `tf.function` that creates variables
        # is traced twice. Building it here first halves the time to the first step.
        if not self.optimizer.built:
            with self.distribute_strategy.scope():  # mirrored slots under a strategy
                self.optimizer.build(self.trainable_variables)
        return super().fit(**arguments)

    def _checked_fit_arguments(self, arguments: dict) -> dict:
        return arguments

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


def save_model(model: keras.Model, filepath, *, overwrite: bool = True, **kwargs) -> None:
    """Saves any Keras model to a `.keras` file atomically (see `tfp_flows.saving`).

    The file is written beside `filepath` under a temporary name and renamed over it, so a
    crash while writing leaves the previous file intact and loadable; as with `open`, a symbolic
    link is written through and the file keeps its mode (a new one: 0o666 less the umask).
    Remote paths (`gs://...`) are passed to `keras.Model.save` unchanged, without that guarantee.

    Raises:
      ValueError: naming `filepath`, for a legacy `.h5`/`.hdf5` file (`load_model` could not read
        it back) or a local path not ending in `.keras`; before anything is written.
    """
    filepath = os.fspath(filepath)
    remote = "://" in filepath
    if filepath.endswith((".h5", ".hdf5")) or not (remote or filepath.endswith(".keras")):
        raise ValueError(
            f"Cannot save a model to {filepath!r}: use a `.keras` file (legacy `.h5`/`.hdf5` "
            "files are refused: neither Keras' nor tfp_flows' `load_model` reads them back)."
        )
    if remote:
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

    With `dequantize=True` the model takes images as they come and dequantises every batch of
    `fit` and `evaluate` itself, with fresh noise: `x = (k + u) / num_bins`, `u ~ U[0, 1)`. The
    data are pixel levels `k`, either integers in `[0, num_bins - 1]` (any integer dtype, e.g.
    `uint8`) or floats `k / (num_bins - 1)` (e.g. `k / 255`), which are mapped back to `k`
    (floats off that grid, e.g. data dequantised already, are refused). The noise is drawn
    statelessly from `(seed, draws)`, with a counter of draws the model owns: it differs from
    step to step (also compiled, with XLA, and under a distribution strategy, where each
    replica folds in its id), a run is reproducible from `seed`, and `save` keeps the counter,
    so a reloaded or resumed model goes on with new noise. `sample` returns points `x` in
    `[0, 1)`; `floor(num_bins * x)` are their pixel levels.

    Args:
      flow: a factory name from `tfp_flows.flows.FACTORIES` (savable) or a distribution.
      flow_kwargs: keyword arguments for the factory.
      num_bins: pixel levels `K` of image data, to report bits/dim: of data dequantised already
        to `[0, 1)`, or with `dequantize=True` of the pixels the model dequantises.
      dequantize: take pixel levels and dequantise each batch with fresh noise (needs
        `num_bins`).
      seed: an int, the seed of the dequantisation noise.

    Example:

    >>> import numpy as np
    >>> from tfp_flows.keras import DensityModel
    >>> flow_kwargs = {"image_shape": [4, 4, 1], "levels": 1, "steps_per_level": 1,
    ...                "logit_alpha": 0.05}
    >>> model = DensityModel("glow", flow_kwargs, num_bins=256, dequantize=True)
    >>> model.compile(optimizer="adam")
    >>> pixels = np.random.default_rng(0).integers(0, 256, (32, 4, 4, 1), dtype=np.uint8)
    >>> history = model.fit(pixels, batch_size=16, verbose=0)
    >>> sorted(history.history)
    ['bits_per_dim', 'nll', 'skipped_steps']
    """

    def __init__(
        self,
        flow="maf",
        flow_kwargs=None,
        *,
        num_bins: int | None = None,
        dequantize: bool = False,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(flow, flow_kwargs, **kwargs)
        self.num_bins = check.integer(num_bins, "num_bins", allow_none=True)
        if not isinstance(dequantize, bool | np.bool_):
            raise TypeError(f"`dequantize` must be True or False; got {dequantize!r}.")
        self.dequantize = bool(dequantize)
        self.seed = check.integer(seed, "seed", minimum=0)
        if self.dequantize:
            if self.num_bins is None or self.num_bins < 2:
                raise ValueError(
                    "`dequantize=True` needs `num_bins` >= 2, the number of pixel levels (256 "
                    f"for 8-bit images); got num_bins={self.num_bins}."
                )
            # Saved with the model (a SeedGenerator's state is not), so a reloaded or resumed
            # model draws new noise rather than replaying it.
            self._noise_draws = keras.Variable(
                0,
                dtype="int32",
                trainable=False,
                aggregation="only_first_replica",
                name="dequantization_draws",
            )
        self._num_dims = math.prod(self.flow.event_shape)
        self._nll = keras.metrics.Mean(name="nll")
        self._bpd = keras.metrics.Mean(name="bits_per_dim") if num_bins else None

    @property
    def metrics(self):
        return [m for m in (self._nll, self._bpd, self._skipped) if m is not None]

    def get_config(self):
        return {
            **super().get_config(),
            "num_bins": self.num_bins,
            "dequantize": self.dequantize,
            "seed": self.seed,
        }

    def call(self, x, conditional=None):
        return self.log_prob(x, conditional)

    def log_prob(self, x, conditional=None):
        """Log-density of `x` under the flow (given `conditional`, for a conditional flow).

        With `dequantize=True`, integer `x` are pixel levels: they are dequantised with one
        fresh noise draw (as a step of `evaluate` does), so the result is a one-sample estimate
        of `E_u log q((k + u) / num_bins)`, different at every call; average several calls for
        a closer one. Float `x` are points of the continuous space, e.g. `sample`'s, as ever.
        """
        if self.dequantize and _is_integer(x):
            if not tf.is_symbolic_tensor(x):
                x = self._pixel_levels(x, "x", check_event=False)
            x = self._dequantized(tf.convert_to_tensor(x))
        return super().log_prob(x, conditional)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`; with `dequantize=True`, pixel arrays are checked up front."""
        if self.dequantize:
            x = self._validated(x, "x")
        return super().evaluate(x, y, *args, **kwargs)

    def _dequantized(self, pixels: tf.Tensor) -> tf.Tensor:
        """`(k + u) / num_bins` with fresh `u ~ U[0, 1)`, for integer levels `k` or floats
        `k / (num_bins - 1)`, in the flow's dtype."""
        dtype = self.flow.dtype
        if pixels.dtype.is_floating:
            k = tf.round(tf.cast(pixels, dtype) * (self.num_bins - 1))
        else:
            k = tf.cast(pixels, dtype)
        with tf.control_dependencies([k]):  # a batch refused by `_batch_check` draws nothing
            self._noise_draws.assign_add(1)
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self._noise_draws, tf.int64)])
        if in_replica():  # the same step, other data: other noise
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            seed = tf.random.experimental.stateless_fold_in(seed, replica)
        u = tf.random.stateless_uniform(tf.shape(k), seed=seed, dtype=dtype)
        return (k + u) / self.num_bins

    def _pixel_levels(self, data, name: str, check_event: bool = True) -> np.ndarray:
        """Pixel data checked up front: integer levels in `[0, num_bins - 1]`, or floats
        `k / (num_bins - 1)`; returns the levels as integers."""
        values, top = np.asarray(data), self.num_bins - 1
        if values.dtype.kind == "f":
            if not np.isfinite(values).all():
                index = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
                raise ValueError(f"{name} has non-finite values (NaN or inf), e.g. at {index}.")
            scaled = values.astype(np.float64) * top
            levels = np.rint(scaled)
            off = float(np.abs(scaled - levels).max()) if values.size else 0.0
            if off > _grid_tolerance(values.dtype, top):
                raise ValueError(
                    f"{name} has float values off the grid k / {top} (k = 0, ..., {top}) by up "
                    f"to {off:.3g} of a level: with dequantize=True, pass the pixels (integers, "
                    f"or floats k / {top}), not data dequantised already."
                )
        elif values.dtype.kind in "iu":
            levels = values
        else:
            raise TypeError(
                f"{name} must be pixel levels (an integer dtype, or floats k / {top}); got "
                f"dtype {values.dtype}."
            )
        if check_event:
            check_event_shape(self.flow, values.shape, name=name)
            if values.shape[0] == 0:
                raise ValueError(f"{name} is empty (0 examples): there is nothing to fit.")
        if not values.size:
            return levels.astype(np.int32)
        low, high = levels.min(), levels.max()
        if low < 0 or high > top:
            floats = f" (floats: k / {top}, in [0, 1])" if values.dtype.kind == "f" else ""
            raise ValueError(
                f"{name} has pixel levels outside [0, {top}], the range of num_bins="
                f"{self.num_bins}{floats}: got values in [{values.min()}, {values.max()}]."
            )
        if check_event:
            self._data_span = (float(low) / self.num_bins, (float(high) + 1) / self.num_bins)
        return levels.astype(np.uint8 if top <= 255 else np.int32)

    def _unpack(self, data):
        x, c, w = keras.utils.unpack_x_y_sample_weight(data)
        if c is not None and c.shape[-1] == 0 and self.conditional_size is None:
            c = None  # `_no_condition`: the place holder that carries sample weights
        if (c is None) != (self.conditional_size is None):
            raise ValueError(
                "A conditional flow needs (x, c) data; an unconditional one takes x alone "
                f"(conditional_size={self.conditional_size}, got c={'none' if c is None else 'c'})."
            )
        if self.dequantize:
            x = self._dequantized(x)
        return check_data(self.flow, x), c, w

    def _weighted_nll(self, x, c, w):
        """`(sum of w * nll, sum of w)` over the batch (`w` = 1 without sample weights)."""
        nll = -self._flow_for(c).log_prob(x)
        if w is None:
            return tf.reduce_sum(nll), tf.cast(tf.size(nll), nll.dtype)
        w = tf.reshape(tf.cast(w, nll.dtype), tf.shape(nll))
        return tf.reduce_sum(w * nll), tf.reduce_sum(w)

    def _update_metrics(self, loss, weight, ok=None):
        # Weighted by the batch's total weight (its size, without sample weights), so epoch
        # metrics are per-example means also when batches (or replicas' shares) differ in size.
        # A skipped step (ok False) does not count: its NaN would hide every other step's loss.
        if ok is not None:
            loss, weight = tf.where(ok, loss, 0.0), tf.where(ok, weight, 0.0)
        self._nll.update_state(loss, sample_weight=weight)
        if self._bpd is not None:
            self._bpd.update_state(
                bits_per_dim(-loss, num_dims=self._num_dims, num_bins=self.num_bins),
                sample_weight=weight,
            )
        return _step_logs({m.name: m.result() for m in self.metrics})

    def train_step(self, data):
        x, c, w = self._unpack(data)
        with tf.GradientTape() as tape:
            total, weight = self._weighted_nll(x, c, w)
            loss = total / weight
            # The optimizer sums gradients over replicas: each replica's share of the global
            # mean is its sum over the global weight (sums and counts, not means of means).
            scaled = total / _global_count(weight) if in_replica() else loss
        variables = self.trainable_variables
        grads = tape.gradient(scaled, [v.value for v in variables])
        ok = self._guarded_update(loss, grads, variables)
        return self._update_metrics(loss, weight, ok)

    def test_step(self, data):
        total, weight = self._weighted_nll(*self._unpack(data))
        return self._update_metrics(total / weight, weight)

    def _skip_hint(self, loss: bool) -> str:
        if not loss:
            return "A gradient overflowed: lower the learning rate, or standardise the data."
        span = getattr(self, "_data_span", None)
        return (
            f"Likely cause: data values too large for {self.flow.dtype.name} arithmetic"
            + (f" (the data spans [{span[0]:g}, {span[1]:g}])" if span else "")
            + ": standardise the data. `tfp_flows.diagnostics.find_first_nonfinite(model.flow, "
            "batch)` names the first layer whose output is not finite."
        )

    def _checked_fit_arguments(self, arguments: dict) -> dict:
        x, c = arguments.get("x"), arguments.get("y")
        if x is None:
            raise ValueError(
                "DensityModel.fit needs data: fit(x) with x of shape [N, "
                f"{', '.join(map(str, self.flow.event_shape))}], or a tf.data.Dataset of batches."
            )
        if not isinstance(x, tf.data.Dataset | keras.utils.PyDataset) and not _is_batches(x):
            self._check_condition_given(c is not None, "x")
        arguments["x"] = self._validated(x, "x")
        if c is not None:
            arguments["y"] = self._validated(c, "c", check_event=False)
        weights = arguments.get("sample_weight")
        if weights is not None and isinstance(arguments["x"], np.ndarray):
            arguments["sample_weight"] = _checked_sample_weight(weights, len(arguments["x"]))
            if c is None:
                arguments["y"] = _no_condition(arguments["x"])
        data = arguments.get("validation_data")
        if data is not None and not isinstance(data, tf.data.Dataset):
            parts = tuple(data) if isinstance(data, tuple | list) else (data,)
            if len(parts) > 3:
                raise ValueError(
                    "validation_data must be x, (x, c) or (x, c, sample_weight); got a "
                    f"sequence of {len(parts)}."
                )
            parts = (*parts, None, None)[:3]
            self._check_condition_given(parts[1] is not None, "validation_data")
            vx = self._validated(parts[0], "validation x")
            vc = None if parts[1] is None else self._validated(parts[1], "validation c", False)
            vw = None if parts[2] is None else _checked_sample_weight(parts[2], len(vx))
            if vw is not None:
                vc = _no_condition(vx) if vc is None else vc
                arguments["validation_data"] = (vx, vc, vw)
            else:
                arguments["validation_data"] = (vx, vc) if vc is not None else vx
        elif data is not None:
            arguments["validation_data"] = data.map(self._batch_check)
        return arguments

    def _check_condition_given(self, given: bool, name: str) -> None:
        if given != (self.conditional_size is not None):
            raise ValueError(
                f"{name}: a conditional flow needs (x, c) data; an unconditional one takes x "
                f"alone (this flow's conditional_size={self.conditional_size}, and "
                f"{'a' if given else 'no'} condition was given)."
            )

    def _validated(self, data, name: str, check_event: bool = True):
        """Checks arrays up front and datasets batch by batch, before any training step."""
        if isinstance(data, tf.data.Dataset):
            return data.map(self._batch_check)
        if data is None or isinstance(data, keras.utils.PyDataset):
            return data
        if _is_batches(data):  # a generator of batches: each checked as it comes
            return self._checked_batches(data, name)
        if self.dequantize and check_event:  # x (not a condition): pixels
            return self._pixel_levels(data, name)
        check_dtype(self.flow, data, name=name)
        array = np.asarray(data)
        if check_event:
            check_event_shape(self.flow, array.shape, name=name)
            if array.shape[0] == 0:
                raise ValueError(f"{name} is empty (0 examples): there is nothing to fit.")
        try:
            check_values(self.flow, array, name=name)
        except ValueError as e:
            raise ValueError(f"{e} No training step was run.") from None
        if check_event and array.size:
            self._data_span = (float(array.min()), float(array.max()))
        return array.astype(self.flow.dtype.as_numpy_dtype, copy=False)

    def _checked_batches(self, batches, name: str):
        for batch in batches:
            parts = batch if isinstance(batch, tuple) else (batch,)
            x = self._validated(parts[0], name)
            c = None if len(parts) < 2 or parts[1] is None else self._validated(parts[1], "c", 0)
            self._check_condition_given(c is not None, name)
            yield (x, *parts[1:])  # Keras takes a generator's batches as tuples

    def _batch_check(self, *batch):
        """In-graph checks of a dataset's batch: finite values, and the pre-transform's range."""
        domain = data_domain(self.flow)
        checked = []
        for i, t in enumerate(batch):
            if i == 0 and self.dequantize:
                t = self._pixel_batch_check(t)
            elif t.dtype.is_floating:
                t = tf.debugging.assert_all_finite(t, "non-finite values (NaN or inf) in the data")
                if i == 0 and domain is not None:
                    message = (
                        f"data outside [{domain[0]:g}, {domain[1]:g}], the domain of this flow's "
                        "logit pre-transform: scale pixel levels (tfp_flows.images.dequantize)"
                    )
                    with tf.control_dependencies(
                        [
                            tf.debugging.assert_greater_equal(
                                t, tf.cast(domain[0], t.dtype), message
                            ),
                            tf.debugging.assert_less_equal(t, tf.cast(domain[1], t.dtype), message),
                        ]
                    ):
                        t = tf.identity(t)
            checked.append(t)
        return tuple(checked) if len(checked) > 1 else checked[0]

    def _pixel_batch_check(self, t):
        """In-graph `_pixel_levels`: levels in `[0, num_bins - 1]`, or floats on the grid."""
        top = self.num_bins - 1
        if t.dtype.is_integer:
            levels = tf.cast(t, tf.int64)
            message = f"pixel levels outside [0, {top}] (num_bins={self.num_bins})"
            checks = [
                tf.debugging.assert_greater_equal(levels, tf.constant(0, tf.int64), message),
                tf.debugging.assert_less_equal(levels, tf.constant(top, tf.int64), message),
            ]
        elif t.dtype.is_floating:
            t = tf.debugging.assert_all_finite(t, "non-finite values (NaN or inf) in the data")
            scaled = tf.cast(t, tf.float64) * top
            off = tf.abs(scaled - tf.round(scaled))
            tolerance = _grid_tolerance(t.dtype.as_numpy_dtype, top)
            message = (
                f"pixel values outside [0, 1] or off the grid k / {top}: with dequantize=True, "
                f"pass the pixels (integers, or floats k / {top}), not data dequantised already"
            )
            checks = [
                tf.debugging.assert_greater_equal(t, tf.cast(0, t.dtype), message),
                tf.debugging.assert_less_equal(t, tf.cast(1, t.dtype), message),
                tf.debugging.assert_less_equal(off, tf.constant(tolerance, tf.float64), message),
            ]
        else:  # refused by `check_data` in the step, naming the dtype
            return t
        with tf.control_dependencies(checks):
            return tf.identity(t)


def _is_integer(x) -> bool:
    """Whether `x` (a tensor, an array or a nested list) has an integer dtype."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        dtype = np.asarray(x).dtype
    try:
        return tf.as_dtype(dtype).is_integer
    except TypeError:
        return False


def _grid_tolerance(dtype, top: int) -> float:
    """How far (in levels) a float `k / top` of `dtype` may lie from `k` after rounding."""
    return max(1e-3, top * float(np.finfo(dtype).eps))


def _is_batches(data) -> bool:
    """A Python generator or iterator of batches (not an array, list or dataset)."""
    return isinstance(data, types.GeneratorType) or (
        hasattr(data, "__next__") and not hasattr(data, "__array__")
    )


def _no_condition(x: np.ndarray) -> np.ndarray:
    """An empty `[N, 0]` condition for an unconditional flow's `(x, y, sample_weight)` data:
    Keras drops the sample weights of data without `y` (`pack_x_y_sample_weight`)."""
    return np.zeros([len(x), 0], x.dtype)


def _checked_sample_weight(weights, num_examples: int) -> np.ndarray:
    w = np.asarray(weights)
    if w.dtype.kind not in "biuf" or w.shape != (num_examples,):
        raise ValueError(
            f"sample_weight must be {num_examples} numbers, one per example; got shape "
            f"{w.shape} and dtype {w.dtype}."
        )
    w = w.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise ValueError(
            "sample_weight must be finite and non-negative, with a positive sum; got values in "
            f"[{w.min():g}, {w.max():g}]."
        )
    return w


def _step_logs(logs: dict) -> dict:
    """Step logs in the shape Keras can reduce across replicas.

    Keras (3.15) reduces step logs over the workers of a `MultiWorkerMirroredStrategy` with
    `strategy.reduce(MEAN, value, axis=0)`, which fails on scalars: there they are returned with
    shape `[1]` (and reduced to scalars). Epoch logs are read from the metrics' variables,
    summed over all replicas, so they are exact global means in every case.
    """
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and in_replica():
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def _global_count(count: tf.Tensor) -> tf.Tensor:
    """`count` summed over all replicas (replica context)."""
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, count)


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
        return [*self._metrics, self._skipped]

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
        n = tf.cast(tf.size(log_w), log_w.dtype)
        lse = tf.reduce_logsumexp(log_w)
        values = (
            tf.reduce_mean(log_w),
            lse - tf.math.log(n),
            tf.exp(2.0 * lse - tf.reduce_logsumexp(2.0 * log_w)),
        )
        weight = 1.0 if ok is None else tf.cast(ok, log_w.dtype)
        for metric, value in zip(self._metrics, values):  # a skipped step does not count
            metric.update_state(value if ok is None else tf.where(ok, value, 0.0), weight)
        return {m.name: m.result() for m in self.metrics}

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
        grads = tape.gradient(loss, [v.value for v in variables])
        logs = self._step_metrics(log_w, self._guarded_update(loss, grads, variables))
        if self._count_nonfinite:
            logs[_NONFINITE_COUNTS_LOG] = _nonfinite_counts(z, log_q, log_w)
        return logs

    def test_step(self, data):
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
