"""Masked and inverse autoregressive flows (MAF and IAF) with a MADE conditioner."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

import keras
import tensorflow as tf
import tensorflow_probability as tfp

# `tfb.Invert(b)` returns an instance of this non-`CompositeTensor` base class whenever `b` is not
# a `CompositeTensor` (as a MAF holding a Keras network is not). Subclassing the public
# `tfb.Invert` instead would make the IAF a `CompositeTensor` with no tensor components, and
# `tf.Module` expands composites instead of walking them: a `tfb.Chain` or distribution holding
# the IAF would lose its variables.
from tensorflow_probability.python.bijectors.invert import _Invert

from tfp_flows import _validation as check
from tfp_flows.bijectors._base import FlowBijector, soft_clamp

tfb = tfp.bijectors

__all__ = ["InverseAutoregressiveFlow", "MaskedAutoregressiveFlow", "PerformanceWarning"]


class PerformanceWarning(UserWarning):
    """A computation takes a slow path that a different call would avoid."""


class MaskedAutoregressiveFlow(FlowBijector):
    r"""Masked autoregressive flow: an affine map whose shift and log-scale are autoregressive.

    With `(shift, s) = conditioner(y)` autoregressive in `y` (output `d` depends only on the
    dimensions before `d` in the conditioner's ordering) and `s` soft-clamped to
    `(-log_scale_clamp, log_scale_clamp)`:

        forward (sampling):  y = x * exp(s(y)) + shift(y)      D sequential passes
        inverse (density):   x = (y - shift(y)) * exp(-s(y))   one pass
        log|det J_forward| = sum(s(y)) = -log|det J_inverse|

    The forward map is solved dimension by dimension: starting from `y = 0`, pass `k` fixes the
    `k`-th dimension in the ordering, so `D` passes give `y`, in a `tf.while_loop` with a static
    trip count that compiles under XLA. The log-scales of the last pass are already those at the
    final `y` (dimension `d` of `s` only sees dimensions before `d`), so the log-det comes out of
    the loop without an extra pass.

    MAF vs IAF, which direction is cheap: a MAF evaluates the density (`log_prob`, the inverse)
    in one pass and samples in `D` passes, so it suits density estimation. An IAF
    (`InverseAutoregressiveFlow`, the inverse of a MAF) samples in one pass, and gets the
    log-prob of its own samples in the same pass (`experimental_sample_and_log_prob`), but the
    density of new points takes `D` passes, so it suits variational inference.

    Args:
      conditioner: a `tfp_flows.nn.MADE` with `num_params=2`, or any callable `y -> (shift,
        log_scale)` (each `[..., D]`, `None` meaning zero) or `y -> params` of shape
        `[..., D, 2]`; it must be autoregressive. With a conditional input it is called as
        `conditioner(y, conditional=c)`, `c` being the bijector keyword argument `conditional`.
        A Keras layer must be built (its variables are tracked by this bijector).
      log_scale_clamp: bound of the soft clamp `b * tanh(s / b)` on the log-scale, or `None`.
      validate_args: check inputs for NaN and inf at run time.
      name: name of the bijector.

    References:
      Papamakarios et al. (2017), Masked Autoregressive Flow for Density Estimation,
      https://arxiv.org/abs/1705.07057
      Germain et al. (2015), MADE: Masked Autoencoder for Distribution Estimation,
      https://arxiv.org/abs/1502.03509

    Example:

    >>> import tensorflow as tf
    >>> import tensorflow_probability as tfp
    >>> from tfp_flows.bijectors import MaskedAutoregressiveFlow
    >>> from tfp_flows.nn import MADE
    >>> maf = MaskedAutoregressiveFlow(MADE(3, hidden_units=(16,)))
    >>> dist = tfp.distributions.TransformedDistribution(
    ...     tfp.distributions.MultivariateNormalDiag(tf.zeros(3)), maf)
    >>> dist.log_prob(tf.zeros([5, 3])).shape  # one MADE pass
    TensorShape([5])
    >>> len(maf.trainable_variables)  # the MADE's kernels and biases
    4
    """

    def __init__(
        self,
        conditioner: Callable,
        *,
        log_scale_clamp: float | None = 3.0,
        validate_args: bool = False,
        name: str = "masked_autoregressive_flow",
    ):
        parameters = dict(locals())
        if not callable(conditioner):
            raise ValueError(f"`conditioner` must be callable; got {type(conditioner).__name__}.")
        log_scale_clamp = check.clamp_bound(log_scale_clamp)
        is_layer = isinstance(conditioner, keras.layers.Layer)
        if is_layer and not conditioner.built:
            raise ValueError(
                "`conditioner` is a Keras layer that is not built; build it first so its "
                "variables exist when the bijector is constructed."
            )
        if getattr(conditioner, "num_params", 2) != 2:
            raise ValueError(
                f"`conditioner` must output 2 params per dimension (shift, log-scale); it has "
                f"num_params={conditioner.num_params}."
            )
        with tf.name_scope(name) as name:
            super().__init__(
                forward_min_event_ndims=1,
                validate_args=validate_args,
                dtype=tf.as_dtype(conditioner.dtype_policy.variable_dtype) if is_layer else None,
                parameters=parameters,
                name=name,
                keras_layers=[conditioner] if is_layer else [],
            )
            self._conditioner = conditioner
            self._layer_variables = [w.value for w in conditioner.weights] if is_layer else []
            self._log_scale_clamp = log_scale_clamp
            self._event_size = getattr(conditioner, "event_size", None)
            self._conditional_size = getattr(conditioner, "conditional_size", None)

    @property
    def conditioner(self) -> Callable:
        return self._conditioner

    @property
    def log_scale_clamp(self) -> float | None:
        return self._log_scale_clamp

    def _check_event_shape(self, shape, what):
        super()._check_event_shape(shape, what)
        d = self._event_size
        if d is not None and shape.rank is not None and shape[-1] not in (None, d):
            raise ValueError(
                f"{self.name}: expected events of size {d} on the last axis of the {what} input; "
                f"got shape {shape}."
            )

    def _shift_and_log_scale(self, y, conditional):
        if conditional is None:
            if self._conditional_size is not None:
                raise ValueError(
                    f"{self.name}: the conditioner takes a conditional input of size "
                    f"{self._conditional_size}; pass `conditional=...` to the bijector (through "
                    "a distribution: `bijector_kwargs={'conditional': c}`)."
                )
            params = self._conditioner(y)
        else:
            params = self._conditioner(y, conditional=conditional)
        d = y.shape[-1]
        if isinstance(params, (tuple, list)):
            if len(params) != 2:
                raise ValueError(
                    f"{self.name}: the conditioner must return (shift, log_scale); got a "
                    f"{type(params).__name__} of length {len(params)}."
                )
            shift, log_scale = (
                tf.zeros_like(y) if p is None else tf.cast(p, y.dtype) for p in params
            )
            for what, p in (("shift", shift), ("log_scale", log_scale)):
                if p.shape.rank is not None and (p.shape.rank < 1 or p.shape[-1] not in (None, d)):
                    raise ValueError(
                        f"{self.name}: the conditioner's {what} must have shape [..., {d}] for "
                        f"input shape {y.shape}; got {p.shape}."
                    )
        else:
            params = tf.cast(params, y.dtype)  # a mixed-precision MADE computes in bfloat16
            if params.shape.rank is not None and (
                params.shape.rank < 2 or params.shape[-2:] != [d, 2]
            ):
                raise ValueError(
                    f"{self.name}: the conditioner must return (shift, log_scale) or params of "
                    f"shape [..., {d}, 2] for input shape {y.shape}; got shape {params.shape}."
                )
            shift, log_scale = params[..., 0], params[..., 1]
        return shift, soft_clamp(log_scale, self._log_scale_clamp)

    def _forward_and_log_det(self, x, conditional=None):
        # Pass 1 from y = 0 fixes the first dimension in the ordering (and the output shape, if
        # a conditional input broadcasts against x); each later pass fixes one more.
        shift, log_scale = self._shift_and_log_scale(tf.zeros_like(x), conditional)
        y = x * tf.exp(log_scale) + shift
        d = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]

        def step(i, y, _):
            shift, log_scale = self._shift_and_log_scale(y, conditional)
            return i + 1, x * tf.exp(log_scale) + shift, log_scale

        _, y, log_scale = tf.while_loop(
            lambda i, y, s: i < d - 1,
            step,
            (tf.constant(0), y, log_scale),
            maximum_iterations=d - 1,
        )
        return y, tf.reduce_sum(log_scale, axis=-1)

    def _inverse_and_log_det(self, y, conditional=None):
        shift, log_scale = self._shift_and_log_scale(y, conditional)
        return (y - shift) * tf.exp(-log_scale), -tf.reduce_sum(log_scale, axis=-1)


class _SequentialMAF(MaskedAutoregressiveFlow):
    """The MAF inside an IAF: warns the first time its D-pass forward (the IAF inverse) runs."""

    _warned = False

    def _forward_and_log_det(self, x, conditional=None):
        if not self._warned:
            self._warned = True
            d = self._event_size or x.shape[-1] or "D"
            warnings.warn(
                f"InverseAutoregressiveFlow '{self.name}': the inverse (density of points not "
                f"sampled by this flow) takes {d} sequential conditioner passes. To get samples "
                "with their log-prob in one pass, use `dist.experimental_sample_and_log_prob(n)`.",
                PerformanceWarning,
                stacklevel=_user_stacklevel(),
            )
        return super()._forward_and_log_det(x, conditional=conditional)


class InverseAutoregressiveFlow(_Invert):
    r"""Inverse autoregressive flow: the inverse of a `MaskedAutoregressiveFlow`.

    With `(shift, s) = conditioner(x)` autoregressive in `x`:

        forward (sampling):  y = x * exp(s(x)) + shift(x)      one pass
        inverse (density):   x = (y - shift(x)) * exp(-s(x))   D sequential passes
        log|det J_forward| = sum(s(x))

    MAF vs IAF, which direction is cheap: an IAF samples in one pass and, since the log-det of
    the forward pass is cached, `dist.experimental_sample_and_log_prob(n)` returns samples with
    their log-prob from that same pass. The density of new points (`log_prob` on data) solves for
    `x` one dimension at a time, `D` passes; the first time that runs, a `PerformanceWarning` is
    emitted. A MAF is the reverse: density in one pass, sampling in `D`.

    It is `tfb.Invert(MaskedAutoregressiveFlow(...))` (an instance of TFP's non-composite
    `Invert` base class, which is what `tfb.Invert` returns for a bijector holding a Keras
    network), so the two share one implementation; `trainable_variables`, `keras_layers` and
    `keras_variables` reach the conditioner's, also through a `tfb.Chain` or a distribution.

    Args:
      conditioner: as for `MaskedAutoregressiveFlow` (a MADE, or a callable returning
        `(shift, log_scale)` or `[..., D, 2]`), called on the latent `x`.
      log_scale_clamp: bound of the soft clamp on the log-scale, or `None`.
      validate_args: check inputs for NaN and inf at run time.
      name: name of the bijector.

    References:
      Kingma et al. (2016), Improving Variational Inference with Inverse Autoregressive Flow,
      https://arxiv.org/abs/1606.04934
      Papamakarios et al. (2017), Masked Autoregressive Flow for Density Estimation,
      https://arxiv.org/abs/1705.07057

    Example:

    >>> import tensorflow as tf
    >>> import tensorflow_probability as tfp
    >>> from tfp_flows.bijectors import InverseAutoregressiveFlow
    >>> from tfp_flows.nn import MADE
    >>> iaf = InverseAutoregressiveFlow(MADE(3, hidden_units=(16,)))
    >>> dist = tfp.distributions.TransformedDistribution(
    ...     tfp.distributions.MultivariateNormalDiag(tf.zeros(3)), iaf)
    >>> samples, log_prob = dist.experimental_sample_and_log_prob(5, seed=1)  # one MADE pass
    >>> log_prob.shape
    TensorShape([5])
    """

    def __init__(
        self,
        conditioner: Callable,
        *,
        log_scale_clamp: float | None = 3.0,
        validate_args: bool = False,
        name: str = "inverse_autoregressive_flow",
    ):
        parameters = dict(locals())
        maf = _SequentialMAF(
            conditioner, log_scale_clamp=log_scale_clamp, validate_args=validate_args, name=name
        )
        super().__init__(maf, validate_args=validate_args, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict()  # a network with no batch shape, as for the MAF

    @property
    def conditioner(self) -> Callable:
        return self.bijector.conditioner

    @property
    def keras_layers(self) -> list:
        """The Keras 3 layers (the conditioner) of the inner MAF."""
        return self.bijector.keras_layers

    @property
    def keras_variables(self) -> list:
        """The Keras 3 variables owned by the inner MAF (not those of its layers)."""
        return self.bijector.keras_variables


_LIBRARY_DIRS = tuple(
    os.path.dirname(m.__file__) + os.sep
    for m in (sys.modules["tfp_flows"], tf, tfp, keras)
    if getattr(m, "__file__", None)
)


def _user_stacklevel() -> int:
    """The `stacklevel` that points a warning at the first frame outside these libraries."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame, level = frame.f_back, level + 1
    return level
