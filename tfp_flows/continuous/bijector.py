"""`ContinuousFlow`: a velocity field's ODE flow map as a TFP bijector, on `tfb.FFJORD`.

Time runs from the base (latent, `t = 0`) to the data (`t = 1`), the convention of flow
matching (Lipman et al. 2023, https://arxiv.org/abs/2210.02747) and of TFP (`forward` samples):

    forward:  y = x(1),  dx/dt = v(x, t[, c]),  x(0) = x;
    inverse:  x = x(0),  integrated back from x(1) = y;
    fldj:     log|det dy/dx| = int_0^1 tr(dv/dx (x(t), t)) dt = -ildj(y).

Each direction is one solve of the state augmented with the log-det (`tfb.FFJORD`); the log-det
is cached with the transform (`FlowBijector`), so `TransformedDistribution.log_prob` and
`experimental_sample_and_log_prob` solve once.
"""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows.bijectors import FlowBijector
from tfp_flows.continuous.solvers import METHODS, FixedStep, make_solver
from tfp_flows.continuous.trace import exact_trace, hutchinson_trace

tfb = tfp.bijectors

__all__ = ["ContinuousFlow"]

TRACES = ("auto", "exact", "hutchinson")


def _checked_velocity(velocity, dtype):
    """`(dtype, keras layers)` of a velocity field; `ValueError`s name the problem."""
    if not callable(velocity):
        raise ValueError(
            f"`velocity` must be callable as v(x, t[, conditional]); got {velocity!r}."
        )
    if not isinstance(velocity, keras.layers.Layer):
        return tf.as_dtype(dtype or tf.float32), []
    if not velocity.built or not velocity.weights:
        raise ValueError(
            f"`velocity` {velocity.name!r} is an unbuilt Keras layer: call it once on a batch "
            "(or use tfp_flows.continuous.VelocityMLP / VelocityConv, built at construction)."
        )
    layer_dtype = tf.as_dtype(velocity.dtype_policy.variable_dtype)
    if dtype is not None and tf.as_dtype(dtype) != layer_dtype:
        raise ValueError(
            f"`dtype` {tf.as_dtype(dtype).name} differs from the field's {layer_dtype.name}."
        )
    return layer_dtype, [velocity]


class ContinuousFlow(FlowBijector):
    """The flow map of an ODE `dx/dt = v(x, t[, c])` from `t = 0` (base) to `t = 1` (data).

    Args:
      velocity: the field, `v(x, t)` or `v(x, t, conditional=c)` with `x: [..., *event]`, `t`
        broadcasting to `[...]`; e.g. `VelocityMLP` or any Keras layer / callable of yours.
      event_ndims: event rank of `x` (1 for vectors, 3 for images).
      solver: `"rk4"`, `"midpoint"`, `"euler"` (fixed steps, XLA-compatible, backprop through
        the steps) or `"dopri"` (adaptive Dormand-Prince, `rtol`/`atol`, adjoint gradients).
      num_steps: steps of a fixed-step solver.
      rtol, atol: tolerances of `"dopri"`.
      trace: `"exact"` (`D` reverse passes per evaluation), `"hutchinson"` (one per probe; an
        unbiased estimate of the log-det, see `trace`), or `"auto"`: exact for event size
        `D <= exact_trace_max_dims`, else Hutchinson.
      hutchinson_samples: probes per solve.
      seed: Hutchinson's probes: `None` fresh at every solve, an int for the same at every solve.
      dtype: float dtype; defaults to a Keras field's variable dtype.

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.continuous import ContinuousFlow, VelocityMLP
    >>> flow = ContinuousFlow(VelocityMLP(2, hidden_units=(8,)), num_steps=4)
    >>> flow.forward(tf.ones([3, 2])).shape  # a new field is zero: the identity
    TensorShape([3, 2])
    """

    def __init__(
        self,
        velocity,
        *,
        event_ndims: int = 1,
        solver: str = "rk4",
        num_steps: int = 16,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        trace: str = "auto",
        exact_trace_max_dims: int = 16,
        hutchinson_samples: int = 1,
        seed=None,
        dtype=None,
        validate_args: bool = False,
        name: str = "continuous_flow",
    ):
        parameters = dict(locals())
        dtype, layers = _checked_velocity(velocity, dtype)
        if solver not in METHODS:
            raise ValueError(f"`solver` must be one of {METHODS}; got {solver!r}.")
        if trace not in TRACES:
            raise ValueError(f"`trace` must be one of {TRACES}; got {trace!r}.")
        super().__init__(
            forward_min_event_ndims=check.integer(event_ndims, "event_ndims"),
            dtype=dtype,
            keras_layers=layers,
            validate_args=validate_args,
            parameters=parameters,
            name=name,
        )
        self._velocity, self._event_ndims, self._trace = velocity, event_ndims, trace
        self._solver_options = dict(
            method=solver, num_steps=check.integer(num_steps, "num_steps"), rtol=rtol, atol=atol
        )
        self._max_exact = check.integer(exact_trace_max_dims, "exact_trace_max_dims", minimum=0)
        traces = {
            "exact": exact_trace(event_ndims),
            "hutchinson": hutchinson_trace(
                check.integer(hutchinson_samples, "hutchinson_samples"), seed=seed
            ),
        }
        solve = make_solver(**self._solver_options)
        self._ffjords = {
            k: tfb.FFJORD(self._field, ode_solve_fn=solve, trace_augmentation_fn=fn, dtype=dtype)
            for k, fn in traces.items()
        }
        # tf.Module does not look inside Keras layers: list their variables for
        # `trainable_variables` (tapes, checkpoints, tfp.vi).
        self._layer_variables = [w.value for layer in layers for w in layer.weights]

    @property
    def velocity(self):
        """The velocity field `v(x, t[, conditional])`."""
        return self._velocity

    @property
    def solver(self) -> str:
        return self._solver_options["method"]

    @property
    def conditional_size(self) -> int | None:
        return getattr(self._velocity, "conditional_size", None)

    def _field(self, time, x, conditional=None):
        if conditional is None:
            return self._velocity(x, time)
        return self._velocity(x, time, conditional=conditional)

    def _ffjord(self, x) -> tfb.FFJORD:
        if self._trace != "auto":
            return self._ffjords[self._trace]
        size = math.prod(x.shape[x.shape.rank - self._event_ndims :])
        return self._ffjords["exact" if size <= self._max_exact else "hutchinson"]

    def _check_event_shape(self, shape, what):
        super()._check_event_shape(shape, what)
        event = getattr(self._velocity, "event_shape", None)
        n = self._event_ndims
        if event is not None and shape.rank is not None and shape[shape.rank - n :] != event:
            raise ValueError(
                f"{self.name}: the {what} input must have shape [..., "
                f"{', '.join(map(str, event))}]; got {shape}."
            )

    def _forward_and_log_det(self, x, **kwargs):
        ffjord = self._ffjord(x)
        y = ffjord.forward(x, **kwargs)
        return y, ffjord.forward_log_det_jacobian(x, event_ndims=self._event_ndims, **kwargs)

    def _inverse_and_log_det(self, y, **kwargs):
        ffjord = self._ffjord(y)
        x = ffjord.inverse(y, **kwargs)
        return x, ffjord.inverse_log_det_jacobian(y, event_ndims=self._event_ndims, **kwargs)

    def trajectory(self, x, times, conditional=None) -> tf.Tensor:
        """The states `x(t)` at `times` (increasing, in `[0, 1]`), starting from `x(times[0])
        = x`: shape `[len(times), *x.shape]`. With a fixed-step solver each interval gets
        `ceil(num_steps * length)` steps."""
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if times.size < 1 or not np.all(np.isfinite(times)):
            raise ValueError(f"`times` must be finite values in [0, 1]; got {times}.")
        if times.min() < 0 or times.max() > 1 or np.any(np.diff(times) <= 0):
            raise ValueError(f"`times` must increase strictly within [0, 1]; got {times}.")
        x = tf.convert_to_tensor(x, dtype=self.dtype)
        self._check_event_shape(x.shape, "trajectory")
        kwargs = {} if conditional is None else {"conditional": tf.cast(conditional, x.dtype)}
        states = [x]
        for t0, t1 in itertools.pairwise(times):
            solve = self._interval_solver(t1 - t0)
            result = solve(self._field, t0, states[-1], [t1], constants=kwargs)
            states.append(result.states[-1])
        return tf.stack(states)

    def _interval_solver(self, length: float):
        options = self._solver_options
        if options["method"] == "dopri":
            return make_solver(**options)
        return FixedStep(options["method"], max(1, math.ceil(options["num_steps"] * length))).solve
