"""Shared machinery of the package's bijectors.

`FlowBijector` lets each bijector implement one fused pair, `_forward_and_log_det` and
`_inverse_and_log_det` (as in FlowJAX), instead of four methods. The log-determinant computed
alongside a transform is stored in TFP's bijector cache, so `TransformedDistribution.log_prob` and
`experimental_sample_and_log_prob` run each network once, not twice.

Variables are created as Keras 3 variables (so a Keras model can track and save them) and the
underlying `tf.Variable` is kept as a module attribute (so `tf.Module.trainable_variables`,
`tf.train.Checkpoint`, `tf.GradientTape` and `tfp.vi` see it).
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["FlowBijector"]


class FlowBijector(tfb.Bijector):
    """Base class: a fused transform-and-log-det pair, cached log-dets and Keras-backed variables.

    Subclasses implement:

    * `_forward_and_log_det(x, **kwargs) -> (y, fldj)` and
    * `_inverse_and_log_det(y, **kwargs) -> (x, ildj)`,

    where the log-dets are summed over `forward_min_event_ndims` (one value per batch member).
    """

    def __init__(self, *, keras_layers=(), **kwargs):
        super().__init__(**kwargs)
        self._keras_variables = []  # Keras 3 variables owned directly by this bijector.
        self._keras_layers = list(keras_layers)  # Keras 3 layers (conditioners) it calls.

    # TFP's `Bijector.__hash__` and `__eq__` walk `parameters` recursively (a whole nested flow,
    # its networks and tensors), and its cache and `tfb.Chain` call them on every lookup. A
    # bijector holding trainable networks is only ever equal to itself: identity is exact, and
    # turns each lookup from a walk of the flow into one `id`.
    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    # -- variables -------------------------------------------------------------------------

    def _add_variable(self, name: str, initial_value, *, trainable: bool = True, dtype=None):
        """Creates a Keras 3 variable and returns its backing `tf.Variable`."""
        variable = keras.Variable(
            initial_value, name=name, dtype=dtype or self.dtype, trainable=trainable
        )
        self._keras_variables.append(variable)
        return variable.value

    @property
    def keras_variables(self) -> list:
        """The Keras 3 variables this bijector owns (not those of its layers or sub-bijectors)."""
        return list(self._keras_variables)

    @property
    def keras_layers(self) -> list:
        """The Keras 3 layers (conditioners, MADE networks) this bijector calls."""
        return list(self._keras_layers)

    @property
    def conditional_size(self) -> int | None:
        """Size of the conditional input this bijector's own networks take, or None."""
        sizes = {getattr(layer, "conditional_size", None) for layer in self._keras_layers}
        sizes.discard(None)
        return sizes.pop() if sizes else None

    # -- input checks ----------------------------------------------------------------------

    def _check_input(self, x: tf.Tensor, what: str) -> tf.Tensor:
        """Static event-shape check, and a finiteness check when `validate_args=True`."""
        self._check_event_shape(x.shape, what)
        if self.validate_args:
            x = tf.debugging.assert_all_finite(
                x, f"{self.name}: non-finite values (NaN or inf) in the {what} input"
            )
        return x

    def _check_event_shape(self, shape: tf.TensorShape, what: str) -> None:
        """Hook for subclasses: raise `ValueError` naming the problem with a static shape."""
        ndims = self.forward_min_event_ndims
        if shape.rank is not None and shape.rank < ndims:
            raise ValueError(
                f"{self.name}: the {what} input must have rank >= {ndims} "
                f"(event rank {ndims}); got shape {shape}."
            )

    # -- TFP's four methods, from the fused pair --------------------------------------------

    def _forward(self, x, **kwargs):
        x = self._check_input(x, "forward")
        y, fldj = self._forward_and_log_det(x, **kwargs)
        self._cache.forward_attributes(x, **kwargs)["ildj"] = -fldj
        return y

    def _inverse(self, y, **kwargs):
        y = self._check_input(y, "inverse")
        x, ildj = self._inverse_and_log_det(y, **kwargs)
        self._cache.inverse_attributes(y, **kwargs)["ildj"] = ildj
        return x

    def _forward_log_det_jacobian(self, x, **kwargs):
        x = self._check_input(x, "forward")
        return self._forward_and_log_det(x, **kwargs)[1]

    def _inverse_log_det_jacobian(self, y, **kwargs):
        y = self._check_input(y, "inverse")
        return self._inverse_and_log_det(y, **kwargs)[1]

    @classmethod
    def _parameter_properties(cls, dtype):
        # Parameters are variables and networks with no batch shape, as in TFP's RealNVP and MAF.
        return dict()
