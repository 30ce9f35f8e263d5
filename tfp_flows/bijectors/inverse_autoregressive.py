"""Inverse autoregressive flow (IAF): the inverse of a MAF, and its slow-path warning."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows._tfp_compat import Invert as _Invert
from tfp_flows.bijectors.autoregressive import MaskedAutoregressiveFlow

__all__ = ["InverseAutoregressiveFlow", "PerformanceWarning", "warn_once_together"]


class PerformanceWarning(UserWarning):
    """A computation takes a slow path that a different call would avoid."""


class _SequentialMAF(MaskedAutoregressiveFlow):
    """The MAF inside an IAF: its D-pass forward (the IAF inverse) warns once.

    Layers tied by `warn_once_together` (the IAF layers of one flow: `flows.iaf` ties them)
    share the warning: the first of them to run its inverse warns for all, so a chain of IAF
    layers warns once, not once per layer, and never again (retracing included).
    """

    _warned = False
    _group: list | None = None  # the layers tied to this one, itself included

    def _forward_and_log_det(self, x, conditional=None):
        if not self._warned:
            group = self._group or [self]
            for layer in group:
                layer._warned = True
            d = self._event_size or x.shape[-1] or "D"
            who = f"this flow's {len(group)} IAF layers" if len(group) > 1 else repr(self.name)
            warnings.warn(
                f"InverseAutoregressiveFlow {who}: the density of points not sampled by the "
                f"flow (its inverse) takes {d} sequential conditioner passes per IAF layer. To get "
                "samples with their log-prob in one pass, use "
                "`dist.experimental_sample_and_log_prob(n)`.",
                PerformanceWarning,
                stacklevel=_user_stacklevel(),
            )
        return super()._forward_and_log_det(x, conditional=conditional)


def warn_once_together(layers) -> None:
    """Ties the `InverseAutoregressiveFlow`s among `layers` (one flow's) to one slow-path
    `PerformanceWarning`, instead of one per layer."""
    group = [b.bijector for b in layers if isinstance(b, InverseAutoregressiveFlow)]
    for layer in group:
        layer._group = group


class InverseAutoregressiveFlow(_Invert):
    r"""Inverse autoregressive flow: the inverse of a `MaskedAutoregressiveFlow`.

    With `theta = conditioner(x)` autoregressive in `x` and `g` the transformer (affine by
    default, or a spline):

        forward (sampling):  y_d = g(x_d; theta_d(x))          one pass
        inverse (density):   x_d = g^{-1}(y_d; theta_d(x))     D sequential passes
        log|det J_forward| = sum_d log g'(x_d; theta_d(x))

    MAF vs IAF, which direction is cheap: an IAF samples in one pass and, since the log-det of
    the forward pass is cached, `dist.experimental_sample_and_log_prob(n)` returns samples with
    their log-prob from that same pass. The density of new points (`log_prob` on data) solves for
    `x` one dimension at a time, `D` passes; the first time that runs, one `PerformanceWarning` is
    emitted for the whole flow (a `tfb.Chain` of IAF layers warns once, not once per layer). A
    MAF is the reverse: density in one pass, sampling in `D`.

    It is `tfb.Invert(MaskedAutoregressiveFlow(...))` (an instance of TFP's non-composite
    `Invert` base class, which is what `tfb.Invert` returns for a bijector holding a Keras
    network), so the two share one implementation; `trainable_variables`, `keras_layers` and
    `keras_variables` reach the conditioner's, also through a `tfb.Chain` or a distribution.

    Args:
      conditioner: as for `MaskedAutoregressiveFlow` (a MADE, or a callable returning
        `[..., D, num_params]` or `(shift, log_scale)`), called on the latent `x`.
      transformer: `"affine"`, `"sigmoid"`, `"additive"`, `"spline"` or an object
        implementing the `transformers.Transformer` protocol, as for the MAF.
      log_scale_clamp: bound of the soft clamp on the affine log-scale, or `None`.
      validate_args: check inputs for NaN and inf at run time, and, once, that the conditioner
        is autoregressive, as for the MAF.
      name: name of the bijector.

    References:
      Kingma et al. (2016), Improving Variational Inference with Inverse Autoregressive Flow,
      https://arxiv.org/abs/1606.04934
      Papamakarios et al. (2017), Masked Autoregressive Flow for Density Estimation,
      https://arxiv.org/abs/1705.07057

    Example:

    >>> from tensorflow_probability import distributions as tfd
    >>> from tfp_flows.bijectors import InverseAutoregressiveFlow
    >>> from tfp_flows.nn import MADE
    >>> q = tfd.TransformedDistribution(
    ...     tfd.Sample(tfd.Normal(0.0, 1.0), 3),
    ...     InverseAutoregressiveFlow(MADE(3, hidden_units=(16,))))
    >>> z, log_q = q.experimental_sample_and_log_prob(5, seed=(1, 2))  # one MADE pass
    >>> z.shape, log_q.shape
    (TensorShape([5, 3]), TensorShape([5]))
    """

    def __init__(self, conditioner: Callable, **options):  # the MAF's (`__signature__`)
        arguments = _SIGNATURE.bind(self, conditioner, **options)  # a TypeError names a wrong one
        arguments.apply_defaults()
        parameters = dict(arguments.arguments)
        del parameters["self"]
        maf = _SequentialMAF(**parameters)
        super().__init__(
            maf, validate_args=maf.validate_args, parameters=parameters, name=parameters["name"]
        )

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


_SIGNATURE = check.signature_named(MaskedAutoregressiveFlow.__init__, "inverse_autoregressive_flow")
InverseAutoregressiveFlow.__init__.__signature__ = _SIGNATURE
