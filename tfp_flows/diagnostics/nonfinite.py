"""Finding where a flow first produces NaN or inf: on data, in its variables, in its samples."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import flows as flow_factories
from tfp_flows.bijectors import FactorOut

tfb = tfp.bijectors

__all__ = ["NonFiniteFinding", "find_first_nonfinite", "samples_finding", "variables_finding"]


@dataclasses.dataclass(frozen=True)
class NonFiniteFinding:
    """Where a flow's data-to-latent pass first produced a non-finite value.

    Attributes:
      bijector: the bijector's name (`"<data>"` for the input itself, `"<base distribution>"`
        for the base log-density of a finite latent; for a `VariationalModel` step, `"<flow>"`
        for its samples or their log-density, `"<target>"` for the target log-density).
      kind: the bijector's class name (the flow's or target's, for `"<flow>"`/`"<target>"`).
      where: `"input"`, `"inverse output"`, `"inverse log-det"`, `"base log-prob"` or
        `"variables"`; for a `VariationalModel` step, which quantity was not finite and at how
        many samples.
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


def all_finite(value) -> bool:
    """Whether `value` (any array-like) holds no NaN or inf; non-float values always pass."""
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
        paths.get(id(v), v.name.rsplit(":", 1)[0]) for v in bijector.variables if not all_finite(v)
    )


def _leaf_kwargs(bijector, conditional) -> dict:
    if conditional is None:
        return {}
    if getattr(bijector, "conditional_size", None) is not None:
        return {"conditional": conditional}
    try:  # a wrapper (`tfb.Invert`) of a conditional bijector
        return flow_factories.conditional_kwargs(bijector, conditional)
    except ValueError:  # this bijector takes no condition
        return {}


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
        if not all_finite(value):
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
    if not all_finite(x):
        return NonFiniteFinding("<data>", type(x).__name__, "input", ("<data>",))
    if conditional is not None:
        conditional = tf.convert_to_tensor(conditional, dtype_hint=bijector.dtype)
        if not all_finite(conditional):
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
    if base is not None and not all_finite(base.log_prob(z)):
        name = "<base distribution>"
        return NonFiniteFinding(name, type(base).__name__, "base log-prob", (name,))
    return None


def variables_finding(flow) -> NonFiniteFinding | None:
    """The first bijector of `flow` whose variables hold NaN or inf, or `None`."""
    for bijector in flow_factories.flow_bijectors(flow):
        bad = _bad_variables(bijector)
        if bad:
            return NonFiniteFinding(
                bijector.name, type(bijector).__name__, "variables", (bijector.name,), bad
            )
    return None


def samples_finding(flow, target, z, log_q, log_w) -> NonFiniteFinding | None:
    """What a reverse-KL step's samples held: the first of the samples `z`, their `log_q`
    and the target's `log p~` (through `log_w = log p~ - log q`) not finite, with a count."""
    log_q, log_w = np.asarray(log_q), np.asarray(log_w)
    n = len(log_q)
    finite_z = np.isfinite(np.asarray(z).reshape(n, -1)).all(axis=-1)
    finite_q = finite_z & np.isfinite(log_q)
    finite_p = finite_q & np.isfinite(log_w)
    flow_kind = type(flow).__name__.lstrip("_")
    if not finite_z.all():
        where = f"flow samples z at {int((~finite_z).sum())} of {n} samples"
        return NonFiniteFinding("<flow>", flow_kind, where, ("<flow>",))
    if not finite_q.all():
        where = f"flow log q(z) at {int((~finite_q).sum())} of {n} samples"
        return NonFiniteFinding("<flow>", flow_kind, where, ("<flow>",))
    if not finite_p.all():
        where = (
            f"target log p~(z) at {int((~finite_p).sum())} of {n} finite flow samples (is z "
            "outside its support?)"
        )
        kind = getattr(target, "__name__", type(target).__name__)
        return NonFiniteFinding("<target>", kind, where, ("<target>",))
    return None
