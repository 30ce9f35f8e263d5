"""`FlowMatchingModel`: a continuous flow trained by conditional flow matching with `model.fit`.

Each training step draws `x0 ~ N(0, I)` and `t ~ U[0, 1]` per example, optionally re-pairs
`x0` with the batch by exact minibatch optimal transport, and regresses the field on the
path's velocity (`paths`): no ODE solve and no log-det in the loss. Densities and samples come
from `model.flow`, the trained `ContinuousFlow` over the base, which solves the ODE.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.checks import check_data
from tfp_flows.continuous.paths import PATHS, check_times, flow_matching_loss, ot_pairing
from tfp_flows.models._base import FlowModel
from tfp_flows.models._data import DataChecks

__all__ = ["FlowMatchingModel"]

FOURIER_FEATURES = 64  # the default for vector events

_FLOW_OPTIONS = (
    "hidden_units", "fourier_features", "fourier_scale", "filters", "num_layers",
    "num_frequencies", "conditional_size", "solver",
    "num_steps", "rtol", "atol", "trace", "exact_trace_max_dims", "hutchinson_samples", "seed",
    "dtype",
)  # fmt: skip


class _NLLEpochs(keras.callbacks.Callback):
    """Turns the held-out NLL of the epoch-end validation on every `every` epochs."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every

    def on_epoch_begin(self, epoch, logs=None):
        self.model._set_nll(self.every > 0 and (epoch + 1) % self.every == 0)

    def on_train_end(self, logs=None):
        self.model._set_nll(True)


@keras.saving.register_keras_serializable(package="tfp_flows")
class FlowMatchingModel(DataChecks, FlowModel):
    """A continuous normalizing flow `p(x[ | c])` fitted by conditional flow matching.

    `fit(x)` or `fit(x, c)` (arrays or a `tf.data.Dataset`), with `x: [N, *event_shape]` and
    `c: [N, conditional_size]`. Training reports `fm_loss`, the flow-matching loss
    `mean ||v(x_t, t[, c]) - u_t||^2` (summed over the event), and `skipped_steps`; evaluation
    (and `validation_data`) reports `fm_loss` and the held-out `nll` (nats per example, one ODE
    solve per batch): during `fit` the NLL every `nll_every` epochs (0: never), from
    `evaluate` always. Bad data (wrong shape or dtype, NaN or inf) raises a clear error before
    any weight changes; so do times outside `[0, 1]` in `velocity` and `trajectory`.

    Args:
      event_shape: `[D]` (a `VelocityMLP`) or `[H, W, C]` (a `VelocityConv`).
      path: `"linear"` (rectified flow) or `"gaussian"` (with `sigma_min`), see `paths`.
      sigma_min: the Gaussian path's final width.
      ot: pair each batch by exact minibatch OT (`paths.ot_pairing`; `O(B^3)` per batch on the
        CPU, not under XLA, not with a condition: pairing across conditions would bias
        `p(x0 | c)`).
      fourier_features: for vector events, random Fourier features of `x` in the field
        (default 64, scale `fourier_scale=1`; `VelocityMLP`): on the rings toy set, 300 CPU-s
        of training reached 0.027 nats from the entropy with them, 0.51 without.
      nll_every: epochs between held-out NLLs during `fit` (with `validation_data`).
      max_skipped_steps: stop `fit` after this many consecutive skipped steps.
      **options: of the flow (`continuous_flow`): `hidden_units`, `conditional_size`,
        `solver`, `num_steps`, `trace`, ... and Keras' `name`.

    Example:

    >>> import numpy as np
    >>> from tfp_flows.continuous import FlowMatchingModel
    >>> model = FlowMatchingModel([2], hidden_units=(8,), num_steps=4)
    >>> model.compile(optimizer="adam")
    >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    >>> sorted(model.fit(x, batch_size=32, verbose=0).history)
    ['fm_loss', 'skipped_steps']
    """

    dequantize, num_bins = False, None  # DataChecks: continuous data only

    def __init__(
        self,
        event_shape,
        *,
        path: str = "linear",
        sigma_min: float = 0.0,
        ot: bool = False,
        nll_every: int = 1,
        max_skipped_steps: int = 3,
        **options,
    ):
        flow_kwargs = {k: options.pop(k) for k in _FLOW_OPTIONS if k in options}
        self.event_shape = list(check.shape(event_shape, "event_shape"))
        if len(self.event_shape) == 1:  # sharp data need them (see `continuous_flow`)
            flow_kwargs.setdefault("fourier_features", FOURIER_FEATURES)
        super().__init__(
            "continuous_flow",
            {"event_shape": self.event_shape, **flow_kwargs},
            max_skipped_steps=max_skipped_steps,
            **options,
        )
        if path not in PATHS:
            raise ValueError(f"`path` must be one of {PATHS}; got {path!r}.")
        if not (0.0 <= float(sigma_min) < 1.0) or (path == "linear" and sigma_min):
            raise ValueError(
                f"`sigma_min` must be in [0, 1), and 0 for the linear path; got {sigma_min!r}."
            )
        if not isinstance(ot, bool) or (ot and self.conditional_size is not None):
            raise ValueError(f"`ot` must be True or False, and False with a condition; got {ot!r}.")
        self.probability_path, self.sigma_min, self.ot = path, float(sigma_min), ot
        self.nll_every = check.integer(nll_every, "nll_every", minimum=0)
        self._with_nll, self._test_functions = True, {}
        self._seeds = keras.random.SeedGenerator(0)
        self._fm = keras.metrics.Mean(name="fm_loss")
        self._nll = keras.metrics.Mean(name="nll")

    @property
    def velocity(self):
        """The trained field `v(x, t[, conditional])` (a Keras layer)."""
        return self.flow.bijector.velocity

    def velocity_at(self, x, t, conditional=None) -> tf.Tensor:
        """`v(x, t[, c])`, with `x` and `t` (in `[0, 1]`, broadcasting to the batch) checked."""
        check_times(t)
        x = check_data(self.flow, x)
        t = tf.convert_to_tensor(t, dtype=x.dtype)  # a Keras layer takes tensors positionally
        if conditional is None:
            return self.velocity(x, t)
        return self.velocity(x, t, conditional=conditional)

    def trajectory(self, z, times, conditional=None) -> tf.Tensor:
        """Sample paths: `x(t)` at `times` in `[0, 1]` from base points `z` (`x(times[0]) = z`),
        shape `[len(times), *z.shape]`; `times = [0, ..., 1]` ends at `flow.bijector(z)`."""
        check_times(times, "times")
        z = check_data(self.flow, z, name="z")
        return self.flow.bijector.trajectory(z, times, conditional)

    def compile(self, *args, jit_compile="auto", **kwargs):
        """`keras.Model.compile`; with `ot=True` the step cannot be XLA-compiled."""
        if self.ot and jit_compile is True:
            raise ValueError("`ot=True` pairs batches with SciPy, which XLA cannot compile.")
        if self.ot:
            jit_compile = False
        self._test_functions = {}
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def fit(self, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`, with the held-out NLL of `validation_data` every `nll_every`."""
        callbacks = [*(callbacks or []), _NLLEpochs(self.nll_every)]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def _set_nll(self, on: bool) -> None:
        if on != self._with_nll:  # one compiled test step with the NLL, one without
            self._test_functions[self._with_nll] = self.test_function
            self._with_nll = on
            self.test_function = self._test_functions.get(on)

    def _loss_metrics(self) -> list:
        return [self._fm, *((self._nll,) if self._evaluating and self._with_nll else ())]

    def get_config(self):
        config = super().get_config()
        config.pop("flow"), config.pop("max_skipped_steps")
        config.pop("dtype", None)  # Keras' policy; the flow's dtype is among its kwargs
        kwargs = config.pop("flow_kwargs")
        return {
            **config,
            **kwargs,
            "path": self.probability_path,
            "sigma_min": self.sigma_min,
            "ot": self.ot,
            "nll_every": self.nll_every,
            "max_skipped_steps": self.max_skipped_steps,
        }

    def _unpack(self, data):
        x, c, w = keras.utils.unpack_x_y_sample_weight(data)
        if c is not None and c.shape[-1] == 0 and self.conditional_size is None:
            c = None  # the place holder that carries sample weights
        if (c is None) != (self.conditional_size is None):
            raise ValueError(
                "A conditional flow needs (x, c) data; an unconditional one takes x alone "
                f"(conditional_size={self.conditional_size})."
            )
        return check_data(self.flow, x), c, w

    def _weighted(self, values, w):
        """`(sum of w * values, sum of w)` over the batch."""
        if w is None:
            return tf.reduce_sum(values), tf.cast(tf.size(values), values.dtype)
        w = tf.reshape(tf.cast(w, values.dtype), tf.shape(values))
        return tf.reduce_sum(w * values), tf.reduce_sum(w)

    def _fm_loss(self, x1, c, w):
        """The flow-matching loss of a batch: `(weighted sum, weight)`."""
        n, dtype = len(self.event_shape), x1.dtype
        x0 = keras.random.normal(tf.shape(x1), dtype=dtype.name, seed=self._seeds)
        t = keras.random.uniform(tf.shape(x1)[:1], dtype=dtype.name, seed=self._seeds)
        if self.ot:
            x0 = ot_pairing(x0, x1)
        error = flow_matching_loss(
            self.velocity, x0, x1, t, path=self.probability_path, sigma_min=self.sigma_min,
            event_ndims=n, conditional=c,
        )  # fmt: skip
        return self._weighted(error, w)

    def train_step(self, data):
        x, c, w = self._unpack(data)
        with tf.GradientTape() as tape:
            total, weight = self._fm_loss(x, c, w)
            loss = total / weight
        variables = self.trainable_variables
        grads = tape.gradient(loss, [v.value for v in variables])
        ok = self._guarded_update(loss, grads, variables)
        self._fm.update_state(tf.where(ok, loss, 0.0), sample_weight=tf.where(ok, weight, 0.0))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, c, w = self._unpack(data)
        total, weight = self._fm_loss(x, c, w)
        self._fm.update_state(total / weight, sample_weight=weight)
        if self._with_nll:
            nll, weight = self._weighted(-self._flow_for(c).log_prob(x), w)
            self._nll.update_state(nll / weight, sample_weight=weight)
        return {m.name: m.result() for m in self.metrics}

    def _skip_hint(self, loss: bool) -> str:
        span = self._data_span
        return "Standardise the data" + (
            f" (it spans [{span[0]:g}, {span[1]:g}])" if span else ""
        ) + ", or lower the learning rate."  # fmt: skip
