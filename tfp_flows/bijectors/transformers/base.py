"""The transformer protocol, and the soft clamp every log-scale goes through."""

from __future__ import annotations

import numbers

import tensorflow as tf

__all__ = ["Transformer", "is_transformer", "soft_clamp"]


def soft_clamp(log_scale: tf.Tensor, bound: float | None) -> tf.Tensor:
    """Smoothly bounds `log_scale` to `(-bound, bound)`: `bound * tanh(log_scale / bound)`.

    Near zero it is the identity (slope 1), so a zero-initialised conditioner still gives an
    identity layer; `bound=None` disables the clamp.

    >>> import tensorflow as tf
    >>> soft_clamp(tf.constant([0.0, 100.0]), 3.0).numpy().tolist()
    [0.0, 3.0]
    """
    if bound is None:
        return log_scale
    bound = tf.cast(bound, log_scale.dtype)
    return bound * tf.tanh(log_scale / bound)


class Transformer:
    r"""An invertible elementwise map `y = g(x; theta)` whose parameters a conditioner predicts.

    The protocol (duck-typed: any object with these members plugs into `Coupling`,
    `MaskedAutoregressiveFlow` and `InverseAutoregressiveFlow`; subclassing is optional):

    * `num_params`: the number `P` of parameters per element.
    * `forward_and_log_det(x, params) -> (y, log|g'(x)|)`,
    * `inverse_and_log_det(y, params) -> (x, -log|g'(x)|)`,

      with `params` of shape `x.shape + [P]` (leading dims may broadcast), both outputs
      elementwise, of `x`'s shape: the layer sums the log-dets over the event.
    * `get_config() -> dict`: the constructor arguments, plus `"name"`.
    * optional `is_constant_jacobian` (default False): `log|g'|` never depends on `x` or
      `params` (e.g. a shift only).

    All-zero `params` should give the identity, so a layer whose conditioner's output layer
    starts at zero starts as the identity (`SigmoidAffine` is the documented exception).

    Example, a user-defined transformer with a softplus scale:

    >>> import tensorflow as tf
    >>> class SoftplusAffine(Transformer):
    ...     num_params = 2
    ...     def forward_and_log_det(self, x, params):
    ...         scale = tf.nn.softplus(params[..., 1] + 0.5413248546129181)  # 1 at zero
    ...         return x * scale + params[..., 0], tf.math.log(scale)
    ...     def inverse_and_log_det(self, y, params):
    ...         scale = tf.nn.softplus(params[..., 1] + 0.5413248546129181)
    ...         return (y - params[..., 0]) / scale, -tf.math.log(scale)
    >>> y, log_det = SoftplusAffine().forward_and_log_det(tf.ones([3]), tf.zeros([3, 2]))
    >>> [round(v, 5) for v in y.numpy().tolist()]
    [1.0, 1.0, 1.0]
    """

    num_params: int
    is_constant_jacobian: bool = False

    def forward_and_log_det(self, x: tf.Tensor, params: tf.Tensor):
        raise NotImplementedError

    def inverse_and_log_det(self, y: tf.Tensor, params: tf.Tensor):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": type(self).__name__}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def is_transformer(obj) -> bool:
    """Whether `obj` implements the protocol (`num_params` and the two fused methods)."""
    return (
        isinstance(getattr(obj, "num_params", None), numbers.Integral)
        and callable(getattr(obj, "forward_and_log_det", None))
        and callable(getattr(obj, "inverse_and_log_det", None))
    )
