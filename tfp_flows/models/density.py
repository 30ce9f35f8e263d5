"""`DensityModel`: a flow fitted to data by maximum likelihood with `model.fit`."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.checks import check_data
from tfp_flows.images import bits_per_dim
from tfp_flows.models._base import FlowModel
from tfp_flows.models._data import DataChecks
from tfp_flows.models._pixels import dequantized, is_integer, pixel_levels
from tfp_flows.models._record import RECORD_KEY, recorded
from tfp_flows.train import in_replica

__all__ = ["DensityModel"]


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


@keras.saving.register_keras_serializable(package="tfp_flows")
class DensityModel(DataChecks, FlowModel):
    """A flow fitted to data by maximum likelihood (forward KL) with `model.fit`.

    `fit(x)` takes arrays or a `tf.data.Dataset` of batches `[B, *event_shape]`; for a
    conditional flow, `fit(x, c)` (or a dataset of `(x, c)` pairs) with `c` of shape
    `[B, conditional_size]`. Reports `nll` (nats per example) and, with `num_bins`, the
    `bits_per_dim` of dequantised images, for training and `validation_data`; training also
    reports `skipped_steps`. Bad data (wrong shape or dtype, integer images, NaN or inf) raises
    a clear error before any weight changes.

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

    Step record (`record_steps`, see `tfp_flows.models`): `x`, the batch the flow saw
    (dequantised, with `dequantize=True`), and `c`, its condition (conditional flows only).

    Args:
      flow: a factory name from `tfp_flows.flows.FACTORIES` (savable) or a distribution.
      flow_kwargs: keyword arguments for the factory.
      num_bins: pixel levels `K` of image data, to report bits/dim: of data dequantised already
        to `[0, 1)`, or with `dequantize=True` of the pixels the model dequantises.
      dequantize: take pixel levels and dequantise each batch with fresh noise (needs
        `num_bins`).
      seed: an int, the seed of the dequantisation noise.
      max_skipped_steps: stop `fit` after this many consecutive skipped steps.

    Example:

    >>> import numpy as np
    >>> from tfp_flows.models import DensityModel
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

    def _loss_metrics(self) -> list:
        return [m for m in (self._nll, self._bpd) if m is not None]

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
        if self.dequantize and is_integer(x):
            if not tf.is_symbolic_tensor(x):
                x, _ = pixel_levels(self.flow, x, "x", self.num_bins, check_event=False)
            x = self._dequantized(tf.convert_to_tensor(x))
        return super().log_prob(x, conditional)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`; with `dequantize=True`, pixel arrays are checked up front."""
        if self.dequantize:
            x = self._validated(x, "x")
        return super().evaluate(x, y, *args, **kwargs)

    def _dequantized(self, pixels: tf.Tensor) -> tf.Tensor:
        dtype = self.flow.dtype
        return dequantized(pixels, self.num_bins, dtype, self.seed, self._noise_draws)

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
        self._traces.note()
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
        logs = self._update_metrics(loss, weight, ok)
        if self.record_steps:
            c = None if c is None else tf.cast(c, x.dtype)
            logs[RECORD_KEY] = recorded({"x": x, "c": c})
        return logs

    def test_step(self, data):
        self._traces.note()
        total, weight = self._weighted_nll(*self._unpack(data))
        return self._update_metrics(total / weight, weight)

    def _skip_hint(self, loss: bool) -> str:
        if not loss:
            return "A gradient overflowed: lower the learning rate, or standardise the data."
        span = self._data_span
        return (
            f"Likely cause: data values too large for {self.flow.dtype.name} arithmetic"
            + (f" (the data spans [{span[0]:g}, {span[1]:g}])" if span else "")
            + ": standardise the data. `tfp_flows.diagnostics.find_first_nonfinite(model.flow, "
            "batch)` names the first layer whose output is not finite."
        )
