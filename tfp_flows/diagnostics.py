"""Finding where a flow first produces NaN or inf, and stopping training when it does.

* `find_first_nonfinite(flow, x)` runs the flow's data-to-latent pass (the `inverse` that
  `log_prob` runs) one bijector at a time and returns the first bijector whose output or
  log-determinant is not finite (a `NonFiniteFinding`), or `None`.
* `StopOnNonFinite` is a Keras callback for `tfp_flows.keras.DensityModel.fit` and
  `VariationalModel.fit`. The models' own step already skips any update whose loss, gradients
  or weights are not finite (`tfp_flows.keras.SkippedSteps`) and stops after a few in a row; this
  callback is the richer diagnosis on top. At the first skipped step (or non-finite logged
  value) it stops training, names the step and where the first non-finite value appeared (the
  bijector, on the offending batch; or the target log-density, on the offending step's samples),
  puts back the last good weights and optimizer state, saves the weights, and raises
  `NonFiniteLossError`.

Example:

>>> import numpy as np
>>> from tfp_flows import flows
>>> from tfp_flows.diagnostics import find_first_nonfinite
>>> dist = flows.real_nvp([2], num_layers=2, hidden_units=[8])
>>> print(find_first_nonfinite(dist, np.zeros([4, 2], np.float32)))
None
>>> _ = dist.bijector.bijectors[2].conditioner.output_layer.bias.assign([np.nan, 0.0])
>>> finding = find_first_nonfinite(dist, np.zeros([4, 2], np.float32))
>>> finding.bijector, finding.kind, finding.where
('coupling_1', 'AffineCoupling', 'inverse output')
>>> finding.variables
('mlp_1/shift_and_log_scale/bias',)
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import flows as flow_factories
from tfp_flows.bijectors import FactorOut
from tfp_flows.keras import _NONFINITE_COUNTS_LOG
from tfp_flows.train import NonFiniteLossError

tfb = tfp.bijectors

__all__ = ["NonFiniteFinding", "NonFiniteLossError", "StopOnNonFinite", "find_first_nonfinite"]


@dataclasses.dataclass(frozen=True)
class NonFiniteFinding:
    """Where a flow's data-to-latent pass first produced a non-finite value.

    Attributes:
      bijector: the bijector's name (`"<data>"` for the input itself, `"<base distribution>"`
        for the base log-density of a finite latent; for a `VariationalModel` step, `"<flow>"`
        for its samples or their log-density, `"<target>"` for the target log-density).
      kind: the bijector's class name (the flow's or target's, for `"<flow>"`/`"<target>"`).
      where: `"input"`, `"inverse output"`, `"inverse log-det"` or `"base log-prob"`; for a
        `VariationalModel` step, which quantity was not finite and at how many samples.
      path: the names of the enclosing chains, outermost first, ending with `bijector`.
      variables: names of the bijector's variables that hold NaN or inf (if any).
    """

    bijector: str
    kind: str
    where: str
    path: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.bijector in ("<flow>", "<target>"):  # a VariationalModel's step
            return f"the {self.where} ({self.kind})"
        text = f"bijector {self.bijector!r} ({self.kind}), {self.where}"
        if self.variables:
            text += f"; non-finite variables: {', '.join(self.variables)}"
        return text


def _all_finite(value) -> bool:
    value = np.asarray(value)
    return not np.issubdtype(value.dtype, np.floating) or bool(np.isfinite(value).all())


def _bad_variables(bijector: tf.Module) -> tuple[str, ...]:
    """Names (Keras paths where known) of the bijector's variables holding NaN or inf."""
    paths = {}
    for layer in getattr(bijector, "keras_layers", ()):
        for w in layer.weights:
            prefixed = w.path.startswith(f"{layer.name}/")
            paths[id(w.value)] = w.path if prefixed else f"{layer.name}/{w.path}"
    for v in getattr(bijector, "keras_variables", ()):
        paths[id(v.value)] = f"{bijector.name}/{v.path}"
    return tuple(
        paths.get(id(v), v.name.rsplit(":", 1)[0]) for v in bijector.variables if not _all_finite(v)
    )


def _leaf_kwargs(bijector, conditional) -> dict:
    if conditional is None:
        return {}
    return flow_factories._route(bijector, {"conditional": conditional}) or {}


def _walk(bijector, y, conditional, path):
    """Runs `bijector.inverse` piece by piece; returns `(x, None)` or `(partial x, finding)`."""
    path = (*path, bijector.name)
    if isinstance(bijector, tfb.Composition):  # tfb.Chain: bijectors[0] is applied first here
        for inner in bijector.bijectors:
            y, finding = _walk(inner, y, conditional, path)
            if finding is not None:
                return y, finding
        return y, None
    if isinstance(bijector, FactorOut):
        kept, rest = y[..., : bijector.split], y[..., bijector.split :]
        rest, finding = _walk(bijector.bijector, rest, conditional, path)
        if finding is not None:
            return rest, finding
        return tf.concat([kept, rest], axis=-1), None
    kwargs = _leaf_kwargs(bijector, conditional)
    x = bijector.inverse(y, **kwargs)
    ildj = bijector.inverse_log_det_jacobian(
        y, event_ndims=bijector.inverse_min_event_ndims, **kwargs
    )
    for where, value in (("inverse output", x), ("inverse log-det", ildj)):
        if not _all_finite(value):
            finding = NonFiniteFinding(
                bijector.name, type(bijector).__name__, where, path, _bad_variables(bijector)
            )
            return x, finding
    return x, None


def find_first_nonfinite(flow, x, conditional=None) -> NonFiniteFinding | None:
    """The first bijector whose inverse output or log-det is NaN or inf on the data `x`.

    Runs eagerly, in the order `log_prob` runs the flow (data to latent), descending into
    `tfb.Chain`s and `FactorOut`s, so the finding names the innermost bijector. The flow's
    variables are restored afterwards (an uninitialised `ActNorm` would otherwise initialise
    from `x`).

    Args:
      flow: a flow from `tfp_flows.flows` (a `TransformedDistribution`) or its bijector.
      x: data, shape `[..., *event_shape]`.
      conditional: the condition, for a conditional flow.

    Returns:
      A `NonFiniteFinding`, or `None` if every value (and the base log-density) is finite.
    """
    bijector = getattr(flow, "bijector", flow)
    x = tf.convert_to_tensor(x, dtype_hint=bijector.dtype)
    if not _all_finite(x):
        return NonFiniteFinding("<data>", type(x).__name__, "input", ("<data>",))
    if conditional is not None:
        conditional = tf.convert_to_tensor(conditional, dtype_hint=bijector.dtype)
        if not _all_finite(conditional):
            return NonFiniteFinding("<conditional>", type(x).__name__, "input", ("<data>",))
    variables = list(bijector.variables)
    saved = [v.numpy() for v in variables]
    try:
        z, finding = _walk(bijector, tf.identity(x), conditional, ())
    finally:
        for v, value in zip(variables, saved):
            v.assign(value)
    if finding is not None:
        return finding
    base = getattr(flow, "distribution", None)
    if base is not None and not _all_finite(base.log_prob(z)):
        name = "<base distribution>"
        return NonFiniteFinding(name, type(base).__name__, "base log-prob", (name,))
    return None


_PROBE_X, _PROBE_C = "_nonfinite_probe_x", "_nonfinite_probe_c"
_PROBE_COUNTS = _NONFINITE_COUNTS_LOG  # what VariationalModel's step logs when asked


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
       how many samples (the step counts them itself while this callback watches, so the
       counts are exact under XLA too);
    3. puts back the last good state: the weights *and the optimizer's variables* (Adam's
       moments, its step count) of the last step whose loss was finite, as they were *before*
       that step's update, or the initial state if no step was finite; and writes the weights
       to `filepath` (if given) atomically, through a temporary file in the same directory;
    4. stops training and raises `NonFiniteLossError` with the message (or, with
       `raise_error=False`, warns and keeps the message in `self.message`).

    Training can then resume with another `fit` call, from exactly the state the last finite
    step started from (lower the learning rate first, or fix the data or target). A
    `VariationalModel`'s sample counter is not rewound, so the resumed `fit` draws new samples.

    To see the offending batch, the callback wraps a `DensityModel`'s `train_step` for the
    duration of `fit` so the step also returns its batch (popped from the logs before other
    callbacks see them, if this callback comes first in the list); the first `fit` with the
    callback, and the first after it, re-trace the train step. It keeps two copies of the
    weights and optimizer variables in memory, taken after every batch by one compiled read.
    With `steps_per_execution > 1`, a step is one execution of that many batches (the last
    good state is the one before the last finite execution; a `VariationalModel`'s counts are
    those of the execution's last step). Under a `tf.distribute`
    strategy the snapshots are of the mirrored variables, so every replica is restored.

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
        self._original_train_step = None

    # -- the probe in the train step -------------------------------------------------------

    def set_model(self, model):
        super().set_model(model)
        self._install(model)

    def _install(self, model):
        if self._original_train_step is not None or not hasattr(model, "flow"):
            return
        if hasattr(model, "target_log_prob_fn"):  # VariationalModel: no data to probe;
            model._count_nonfinite = True  # its step counts its own non-finite samples
            model.train_function = None
            self._original_train_step = "variational"
            return
        original = model.train_step

        def train_step(data):
            logs = dict(original(data))
            x, c, _ = keras.utils.unpack_x_y_sample_weight(data)
            logs[_PROBE_X] = x
            if c is not None:
                logs[_PROBE_C] = c
            return logs

        self._original_train_step = original
        object.__setattr__(model, "train_step", train_step)
        model.train_function = None  # rebuilt from the wrapped step by `fit`

    def _uninstall(self):
        if self._original_train_step is None:
            return
        if self._original_train_step == "variational":
            self.model._count_nonfinite = False
        self.model.__dict__.pop("train_step", None)
        self.model.train_function = None
        self._original_train_step = None

    # -- callback hooks --------------------------------------------------------------------

    def on_train_begin(self, logs=None):
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
        self._current = self._snapshot()  # the weights the next step starts from
        self._good = None  # the weights of the last step whose loss was finite

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self._skipped = 0  # the model's `skipped_steps` count is per epoch

    def on_epoch_end(self, epoch, logs=None):
        for key in (_PROBE_X, _PROBE_C, _PROBE_COUNTS):
            (logs or {}).pop(key, None)

    def on_train_end(self, logs=None):
        self._uninstall()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs if logs is not None else {}
        x, c = logs.pop(_PROBE_X, None), logs.pop(_PROBE_C, None)
        counts = logs.pop(_PROBE_COUNTS, None)
        self.step += 1
        checked = {k: v for k, v in logs.items() if self.monitor is None or k in self.monitor}
        bad = sorted(k for k, v in checked.items() if not _all_finite(v))
        skipped = int(np.asarray(logs.get("skipped_steps", 0)).reshape(-1)[0])
        if skipped > self._skipped:  # the step's own guard skipped an update: say why
            self._skipped = skipped
            bad = bad or self._skip_causes()
        if not bad:
            self._good, self._current = self._current, self._snapshot()
            return
        self._stop(batch, bad, x, c, counts)

    def _skip_causes(self) -> list[str]:
        """The names of the skipped step's non-finite values (the loss under its log name)."""
        loss = "nll" if not hasattr(self.model, "target_log_prob_fn") else "elbo"
        causes = self.model._skipped.causes()
        return [loss if cause == "loss" else cause for cause in causes] or [loss]

    def _snapshot(self) -> list[tf.Tensor]:
        return self._read()

    def _restore(self, values) -> None:
        for v, value in zip(self._variables, values):
            v.assign(value)

    def _variational_finding(self, counts) -> NonFiniteFinding | None:
        """What the failing step's own samples held: counted inside the step, so exact."""
        model = self.model
        n = model.num_samples
        bad_z, bad_q, bad_p = (int(v) for v in np.asarray(counts).reshape(-1)[:3])
        flow_kind = type(model.flow).__name__.lstrip("_")
        if bad_z:
            return NonFiniteFinding(
                "<flow>", flow_kind, f"flow samples z at {bad_z} of {n} samples", ("<flow>",)
            )
        if bad_q:
            return NonFiniteFinding(
                "<flow>", flow_kind, f"flow log q(z) at {bad_q} of {n} samples", ("<flow>",)
            )
        if bad_p:
            target = model.target_log_prob_fn
            return NonFiniteFinding(
                "<target>",
                getattr(target, "__name__", type(target).__name__),
                f"target log p~(z) at {bad_p} of {n} finite flow samples (is z outside its "
                "support?)",
                ("<target>",),
            )
        return None

    def _variables_finding(self) -> NonFiniteFinding | None:
        for bijector in flow_factories.flow_bijectors(self.model.flow):
            if _bad_variables(bijector):
                return NonFiniteFinding(
                    bijector.name,
                    type(bijector).__name__,
                    "variables",
                    (bijector.name,),
                    _bad_variables(bijector),
                )
        return None

    def _diagnose(self, x, c, counts) -> NonFiniteFinding | None:
        model = self.model
        if hasattr(model, "target_log_prob_fn"):  # weights first: NaN weights make NaN samples
            finding = self._variables_finding()
            if finding is None and counts is not None:
                finding = self._variational_finding(counts)
            return finding
        finding = find_first_nonfinite(model.flow, x, c) if x is not None else None
        return finding if finding is not None else self._variables_finding()

    def _stop(self, batch, bad_logs, x, c, counts=None):
        model = self.model
        variational = hasattr(model, "target_log_prob_fn")
        self._restore(self._current)  # the weights the failing step started from
        try:
            finding = self._diagnose(x, c, counts)
        finally:  # whatever the diagnosis does, the model ends with the last good state
            if self._good is not None:
                self._restore(self._good)
        if finding is not None:
            where = f"first non-finite value in {finding}"
        elif variational:
            where = (
                "the step's samples, their log q and the target's log p~ were all finite (the "
                "loss's mean overflowed, or the non-finite value is in the gradient)"
            )
        else:
            where = (
                "no single bijector's output or log-det is non-finite (the loss's sum "
                "overflowed, or the non-finite value is in the gradient)"
            )
        message = (
            f"non-finite {_and(bad_logs)} at step {self.step} (epoch {self.epoch + 1}, "
            f"batch {batch + 1}): {where}."
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
            _atomic_save(model, self.filepath)
            message += f" and the weights saved to {self.filepath}"
        message += "; `fit` resumes from there."
        self.message, self.finding = message, finding
        model.stop_training = True
        self._uninstall()
        if self.raise_error:
            raise NonFiniteLossError(message, finding, self.step)
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def _and(names: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _atomic_save(model, filepath: str) -> None:
    """The models' own `save_weights` / `save` write atomically (`tfp_flows.saving`)."""
    if filepath.endswith(".weights.h5"):
        model.save_weights(filepath)
    else:
        model.save(filepath)
