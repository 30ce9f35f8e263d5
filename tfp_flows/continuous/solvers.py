"""ODE solvers for continuous flows: fixed-step Runge-Kutta (XLA) and TFP's Dormand-Prince.

`tfb.FFJORD` takes any `ode_solve_fn(ode_fn, initial_time, initial_state, solution_times,
constants=...)` returning `tfp.math.ode.Results`. TFP ships adaptive solvers only
(`DormandPrince`, `BDF`), whose step-size control does not compile under XLA; `FixedStep` is the
one solver written here, a `tf.while_loop` of `num_steps` equal steps `h = (t1 - t0) / n`:

    euler:     y' = y + h f(t, y)                                   (order 1, 1 evaluation)
    midpoint:  y' = y + h f(t + h/2, y + h/2 f(t, y))               (order 2, 2 evaluations)
    rk4:       y' = y + h/6 (k1 + 2 k2 + 2 k3 + k4)                 (order 4, 4 evaluations)

Gradients: through `FixedStep` by backpropagation through the loop (exact gradients of the
discrete map; memory grows with `num_steps` times the batch), through `DormandPrince` by TFP's
adjoint method (memory constant in the number of steps, one more backward solve).

Example:

>>> import tensorflow as tf
>>> solver = FixedStep("rk4", num_steps=10)
>>> result = solver.solve(lambda t, y: -y, 0.0, tf.constant([1.0]), [1.0])
>>> round(float(result.states[-1][0]), 5)  # exp(-1) = 0.36788
0.36788
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check

__all__ = ["METHODS", "FixedStep", "make_solver"]

METHODS = ("euler", "midpoint", "rk4", "dopri")


def _axpy(h, k, y):
    """`y + h * k` over nested structures."""
    return tf.nest.map_structure(lambda a, b: b + tf.cast(h, b.dtype) * a, k, y)


def _step(method: str, f, t, y, h):
    if method == "euler":
        return _axpy(h, f(t, y), y)
    if method == "midpoint":
        return _axpy(h, f(t + h / 2, _axpy(h / 2, f(t, y), y)), y)
    k1 = f(t, y)
    k2 = f(t + h / 2, _axpy(h / 2, k1, y))
    k3 = f(t + h / 2, _axpy(h / 2, k2, y))
    k4 = f(t + h, _axpy(h, k3, y))
    slope = tf.nest.map_structure(lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6, k1, k2, k3, k4)
    return _axpy(h, slope, y)


class FixedStep:
    """A fixed-step Runge-Kutta solver with the interface of `tfp.math.ode.Solver.solve`.

    Args:
      method: `"euler"`, `"midpoint"` or `"rk4"`.
      num_steps: equal steps from the initial to the (last) solution time.

    `solve(ode_fn, initial_time, initial_state, solution_times, constants=None)` integrates
    `dy/dt = ode_fn(t, y, **constants)` (`y` any nest of tensors) and returns
    `tfp.math.ode.Results` whose `states` stack the solution at the last of `solution_times`
    on a leading axis of length 1 (all `FFJORD` asks for).
    """

    def __init__(self, method: str = "rk4", num_steps: int = 16):
        if method not in METHODS[:3]:
            raise ValueError(f"`method` must be one of {METHODS[:3]}; got {method!r}.")
        self.method = method
        self.num_steps = check.integer(num_steps, "num_steps")

    def solve(self, ode_fn, initial_time, initial_state, solution_times, constants=None, **_):
        constants = dict(constants or {})
        dtype = tf.nest.flatten(initial_state)[0].dtype
        t0 = tf.cast(initial_time, dtype)
        t1 = tf.cast(tf.reshape(solution_times, [-1])[-1], dtype)
        h = (t1 - t0) / self.num_steps

        def f(t, y):
            return ode_fn(t, y, **constants)

        def body(i, y):
            t = t0 + tf.cast(i, dtype) * h
            return i + 1, _step(self.method, f, t, y, h)

        _, final = tf.while_loop(
            lambda i, _: i < self.num_steps, body, (tf.constant(0), initial_state)
        )
        states = tf.nest.map_structure(lambda s: s[None], final)
        return tfp.math.ode.Results(
            times=t1[None], states=states, diagnostics=None, solver_internal_state=None
        )


def make_solver(method: str = "rk4", *, num_steps: int = 16, rtol=1e-5, atol=1e-5):
    """The `ode_solve_fn` for `tfb.FFJORD`: `FixedStep(method, num_steps).solve`, or for
    `method="dopri"` `tfp.math.ode.DormandPrince(rtol=rtol, atol=atol).solve` (adaptive; not
    under XLA)."""
    if method == "dopri":
        return tfp.math.ode.DormandPrince(rtol=rtol, atol=atol).solve
    return FixedStep(method, num_steps).solve
