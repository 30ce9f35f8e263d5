"""A property suite for bijectors, public so users can check their own.

`check_bijector(bijector, x)` runs every check this package runs on its own bijectors and raises
`AssertionError` naming the first property that fails:

* round trips `inverse(forward(x)) == x` and `forward(inverse(x)) == x`, with the bijector cache
  broken by `tf.identity` so a wrong inverse cannot hide behind it;
* `forward_log_det_jacobian(x)` equal to `log|det J|` of the autodiff Jacobian of the flattened
  event (`batch_jacobian` and `slogdet`), and the same for the inverse;
* `fldj(x) == -ildj(forward(x))`;
* output and log-det shapes for sample shapes `[]`, `[3]` and `[2, 3]`, and output event shapes
  equal to `forward_event_shape` / `inverse_event_shape` (a squeeze may change the shape);
* eager, `tf.function` and `tf.function(jit_compile=True)` agree;
* gradients: every trainable variable gets a finite gradient, not all zeros, from a
  log-likelihood-like loss of both directions, `mean(inverse(x)**2) - mean(ildj(x)) +
  mean(forward(x)**2) + mean(fldj(x))` (a variable the outputs or log-dets ignore fails), and the
  gradients of both log-dets with respect to every variable equal those of the autodiff
  log-dets (so a log-det right in value but cut off from a variable, e.g. by `stop_gradient`,
  fails; a variable the log-det does not depend on, such as a shift, passes with zeros).

Example:

>>> import tensorflow as tf
>>> import tensorflow_probability as tfp
>>> from tfp_flows.testing import check_bijector
>>> x = tf.random.stateless_normal([6, 3], seed=[0, 1], dtype=tf.float64)
>>> scale = tfp.bijectors.Scale(tf.constant(2.0, tf.float64))
>>> report = check_bijector(scale, x, event_ndims=1, require_variables=False)
>>> report["max_fldj_error"] < 1e-8
True
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["check_bijector", "perturb_variables", "autodiff_log_det_jacobian"]

_DEFAULT_TOL = {tf.float64: (1e-8, 1e-8), tf.float32: (1e-4, 1e-4)}


def perturb_variables(bijector: tf.Module, scale: float = 0.1, seed: int = 0) -> None:
    """Adds Gaussian noise of standard deviation `scale` to every trainable float variable.

    Zero-initialised networks make a new flow the identity, and the identity passes most checks by
    accident; perturb before testing so the checks can fail.
    """
    rng = np.random.default_rng(seed)
    for v in bijector.trainable_variables:
        if v.dtype.is_floating:
            noise = rng.normal(scale=scale, size=v.shape)
            v.assign_add(tf.constant(noise, dtype=v.dtype))


def autodiff_log_det_jacobian(fn, x: tf.Tensor, event_ndims: int) -> tf.Tensor:
    """`log|det J_fn(x)|` per batch member, from the autodiff Jacobian of the flattened event.

    `fn` may change the event shape (e.g. a squeeze), as long as it keeps the event size.
    """
    x = tf.convert_to_tensor(x)
    event_shape = x.shape[x.shape.rank - event_ndims :]
    batch_shape = tf.shape(x)[: x.shape.rank - event_ndims]
    n = math.prod(event_shape)
    flat = tf.reshape(x, [-1, n])
    with tf.GradientTape(persistent=n <= 16) as tape:  # small: a loop is faster than pfor
        tape.watch(flat)
        y = fn(tf.reshape(flat, tf.concat([[-1], event_shape], 0)))
        y_flat = tf.reshape(y, [-1, n])
    jacobian = tape.batch_jacobian(y_flat, flat, experimental_use_pfor=n > 16)
    _, log_abs_det = tf.linalg.slogdet(jacobian)
    return tf.reshape(log_abs_det, batch_shape)


def _close(name, actual, expected, rtol, atol, broadcast=False):
    actual, expected = np.asarray(actual), np.asarray(expected)
    if broadcast:  # constant-Jacobian TFP bijectors return one log-det for the whole batch
        actual = np.broadcast_to(actual, np.broadcast_shapes(actual.shape, expected.shape))
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} != expected {expected.shape}")
    if not np.all(np.isfinite(actual)):
        raise AssertionError(f"{name}: non-finite values {actual}")
    err = np.abs(actual - expected)
    bound = atol + rtol * np.abs(expected)
    if not np.all(err <= bound):
        worst = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(
            f"{name}: max error {err.max():.3g} (at {worst}: {actual[worst]!r} vs "
            f"{expected[worst]!r}) exceeds atol={atol} + rtol={rtol} * |expected|"
        )
    return float(err.max()) if err.size else 0.0


class _Calls:
    """The bijector's four methods, each on a `tf.identity` copy (so the cache cannot help)."""

    def __init__(self, bijector, event_ndims: int, kwargs: dict):
        self.bijector, self.event_ndims, self.kwargs = bijector, event_ndims, kwargs

    def fwd(self, t):
        return self.bijector.forward(tf.identity(t), **self.kwargs)

    def inv(self, t):
        return self.bijector.inverse(tf.identity(t), **self.kwargs)

    def fldj(self, t):
        return self.bijector.forward_log_det_jacobian(
            tf.identity(t), event_ndims=self.event_ndims, **self.kwargs
        )

    def ildj(self, t):
        return self.bijector.inverse_log_det_jacobian(
            tf.identity(t), event_ndims=self.event_ndims, **self.kwargs
        )

    def all_outputs(self, t):
        return self.fwd(t), self.inv(t), self.fldj(t), self.ildj(t)


def check_bijector(
    bijector: tfb.Bijector,
    x,
    *,
    event_ndims: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    sample_shapes=((), (3,), (2, 3)),
    modes=("eager", "function", "jit"),
    check_gradients: bool = True,
    require_variables: bool = True,
    require_non_identity: bool = True,
    bijector_kwargs: dict | None = None,
    strict_log_det_shape: bool | None = None,
) -> dict:
    """Runs the property suite on `bijector` with inputs `x` and returns the measured errors.

    Args:
      bijector: the bijector to check, with non-trivial parameters (see `perturb_variables`).
      x: a batch of at least 6 events, shape `[N, *event_shape]`, in the forward domain. The
        inverse-direction checks also run on `x`, so for a shape-changing bijector pick an
        event shape valid in both directions (for a squeeze, channels divisible by 4).
      event_ndims: event rank; defaults to `bijector.forward_min_event_ndims`.
      rtol, atol: tolerances; default 1e-8 for float64 and 1e-4 for float32.
      sample_shapes: leading shapes to test; each is filled with events from `x`.
      modes: any of `"eager"`, `"function"`, `"jit"`.
      check_gradients: check the gradients of the loss and of the log-dets (see above).
      require_variables: fail if the bijector has no trainable variables.
      require_non_identity: fail if `forward(x) == x` (identity parameters prove nothing).
      bijector_kwargs: keyword arguments for every bijector call (e.g. a conditional input).
      strict_log_det_shape: require log-dets of the full sample shape. By default required
        unless `bijector.is_constant_jacobian` (TFP's constant-Jacobian bijectors return one
        value that broadcasts).

    Returns:
      A dict of the largest errors found per property.
    """
    x = tf.convert_to_tensor(x)
    default = _DEFAULT_TOL.get(x.dtype, (1e-4, 1e-4))
    tol = tuple(d if v is None else v for v, d in zip((rtol, atol), default))
    event_ndims = bijector.forward_min_event_ndims if event_ndims is None else event_ndims
    if x.shape.rank != event_ndims + 1 or x.shape[0] < 6:
        raise ValueError(f"x must be a batch of >= 6 events of rank {event_ndims}; got {x.shape}")
    if strict_log_det_shape is None:
        strict_log_det_shape = not bijector.is_constant_jacobian
    calls = _Calls(bijector, event_ndims, dict(bijector_kwargs or {}))
    y = calls.fwd(x)
    _check_setup(calls, x, y, tol, require_variables, require_non_identity)
    report = {"max_roundtrip_error": _check_round_trips(calls, x, y, tol)}
    tape, mean_log_dets = _check_log_dets(
        calls, x, y, tol, not strict_log_det_shape, check_gradients, report
    )
    _check_sample_shapes(calls, x, y, sample_shapes, tol, not strict_log_det_shape)
    _check_modes(calls, x, modes, tol, report)
    if check_gradients:
        _check_gradients(calls, x, tape, mean_log_dets, tol, report)
    return report


def _check_round_trips(calls, x, y, tol) -> float:
    return max(
        _close("inverse(forward(x))", calls.inv(y), x, *tol),
        _close("forward(inverse(x))", calls.fwd(calls.inv(x)), x, *tol),
    )


def _check_setup(calls, x, y, tol, require_variables, require_non_identity) -> None:
    """Output dtype, reachable variables, event shapes, and parameters away from identity."""
    bijector, event_shape = calls.bijector, x.shape[1:]
    if y.dtype != x.dtype:
        raise AssertionError(f"forward changed dtype {x.dtype} -> {y.dtype}")
    if require_variables and not bijector.trainable_variables:
        raise AssertionError(f"{bijector.name}: no trainable variables are reachable")
    # Shape-changing bijectors (e.g. a squeeze) must report their output event shape.
    y_event_shape = y.shape[1:]
    if bijector.forward_event_shape(event_shape) != y_event_shape:
        raise AssertionError(
            f"forward_event_shape({event_shape}) = {bijector.forward_event_shape(event_shape)}, "
            f"but forward maps it to {y_event_shape}"
        )
    if bijector.inverse_event_shape(y_event_shape) != event_shape:
        raise AssertionError(
            f"inverse_event_shape({y_event_shape}) = "
            f"{bijector.inverse_event_shape(y_event_shape)}; expected {event_shape}"
        )
    if (
        require_non_identity
        and y.shape == x.shape
        and np.allclose(y.numpy(), x.numpy(), rtol=0, atol=10 * tol[1])
    ):
        raise AssertionError(
            f"{bijector.name}: forward(x) == x; perturb the parameters so the checks can fail"
        )


def _check_log_dets(calls, x, y, tol, loose, check_gradients, report):
    """Both log-dets against autodiff Jacobians, taped for their gradients; fldj vs -ildj."""
    event_ndims = calls.event_ndims
    with tf.GradientTape(persistent=True, watch_accessed_variables=check_gradients) as tape:
        log_dets = {
            "fldj": (calls.fldj(x), autodiff_log_det_jacobian(calls.fwd, x, event_ndims)),
            "ildj": (calls.ildj(x), autodiff_log_det_jacobian(calls.inv, x, event_ndims)),
        }
        mean_log_dets = {k: [tf.reduce_mean(t) for t in pair] for k, pair in log_dets.items()}
    for name, what in (("fldj", "forward"), ("ildj", "inverse")):
        report[f"max_{name}_error"] = _close(
            f"{what}_log_det_jacobian vs autodiff", *log_dets[name], *tol, broadcast=loose
        )
    report["max_fldj_ildj_error"] = _close(
        "fldj(x) vs -ildj(forward(x))", calls.fldj(x), -calls.ildj(y), *tol, loose
    )
    return tape, mean_log_dets


def _check_sample_shapes(calls, x, y, sample_shapes, tol, loose) -> None:
    event_shape, y_event_shape = x.shape[1:], y.shape[1:]
    for shape in sample_shapes:
        n = math.prod(shape)
        xs = tf.reshape(x[:n], [*shape, *event_shape])
        ys = calls.fwd(xs)
        if ys.shape != [*shape, *y_event_shape]:
            raise AssertionError(f"forward: shape {ys.shape} for input {xs.shape}")
        for name, value in (("fldj", calls.fldj(xs)), ("ildj", calls.ildj(ys))):
            if tuple(value.shape) != tuple(shape) and not (loose and value.shape.rank == 0):
                raise AssertionError(
                    f"{name}: shape {value.shape} for sample shape {shape}; expected {shape}"
                )
        _close(f"inverse(forward(x)) at sample shape {shape}", calls.inv(ys), xs, *tol)


def _check_modes(calls, x, modes, tol, report) -> None:
    """Eager vs `tf.function` vs XLA."""
    reference = [v.numpy() for v in calls.all_outputs(x)]
    compiled = {
        "eager": calls.all_outputs,
        "function": tf.function(calls.all_outputs),
        "jit": tf.function(calls.all_outputs, jit_compile=True),
    }
    report["max_mode_error"] = 0.0
    for mode in modes:
        got = compiled[mode](x)
        for name, a, b in zip(("forward", "inverse", "fldj", "ildj"), got, reference):
            err = _close(f"{name} in mode {mode!r} vs eager", a, b, *tol)
            report["max_mode_error"] = max(report["max_mode_error"], err)


def _check_gradients(calls, x, tape, mean_log_dets, tol, report) -> None:
    """Finite, non-zero loss gradients for every variable; log-det gradients as autodiff's."""
    variables = calls.bijector.trainable_variables
    with tf.GradientTape() as loss_tape:
        loss = tf.reduce_mean(tf.square(calls.inv(x))) - tf.reduce_mean(calls.ildj(x))
        loss += tf.reduce_mean(tf.square(calls.fwd(x))) + tf.reduce_mean(calls.fldj(x))
    for v, g in zip(variables, loss_tape.gradient(loss, variables)):
        if g is None:
            raise AssertionError(f"no gradient reaches variable {v.name}")
        g = tf.convert_to_tensor(g).numpy()
        if not np.all(np.isfinite(g)):
            raise AssertionError(f"non-finite gradient for variable {v.name}")
        if not np.any(g != 0):
            raise AssertionError(f"zero gradient for variable {v.name}")
    # A log-det right in value but cut off from a variable (e.g. by `stop_gradient`) would
    # train the wrong objective: its gradients must be those of the autodiff log-det.
    report["max_log_det_gradient_error"] = 0.0
    for name, targets in mean_log_dets.items():
        ours, reference = (
            tape.gradient(t, variables, unconnected_gradients="zero") for t in targets
        )
        for v, a, b in zip(variables, ours, reference):
            err = _close(
                f"gradient of {name} for variable {v.name} vs autodiff",
                tf.convert_to_tensor(a),
                tf.convert_to_tensor(b),
                *tol,
            )
            report["max_log_det_gradient_error"] = max(report["max_log_det_gradient_error"], err)
    report["num_variables_checked"] = len(variables)
