"""FactorOut: channels that leave a multi-scale flow early, the rest through an inner bijector."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows.bijectors._base import FlowBijector

tfb = tfp.bijectors

__all__ = ["FactorOut"]


class FactorOut(FlowBijector):
    r"""Passes channels `[:split]` through unchanged and the rest through an inner bijector.

    This is the split of multi-scale flows (Real NVP, Glow) written as a bijector on ONE event,
    so a whole multi-scale flow is a plain `tfb.Chain` and its base is one `[H, W, C]` normal.
    With `x1 = x[..., :split]` (the channels factored out at this level) and
    `x2 = x[..., split:]`:

        y = concat(x1, inner.forward(x2))
        x = concat(y1, inner.inverse(y2))
        log|det J_forward| = inner.forward_log_det_jacobian(x2, event_ndims)

    The inner bijector must map `[H, W, C - split]` events to the same shape (it may change the
    shape internally, e.g. `Chain([Invert(Squeeze()), steps..., Squeeze()])`). Keyword arguments
    of `forward`/`inverse` (conditional inputs) are passed to the inner bijector unchanged; an
    inner `tfb.Chain` routes them by sub-bijector name (`inner.forward(x, step_1={...})`).

    Args:
      bijector: the inner bijector, on `[..., C - split]` events of rank `event_ndims`.
      split: the number of leading channels factored out, in `[1, C - 1]`.
      event_ndims: rank of the event: 3 for `[H, W, C]` images (default), 1 for vectors.
      validate_args: check inputs for NaN and inf at run time.
      name: name of the bijector.

    References:
      Dinh, Sohl-Dickstein & Bengio (2017), Density estimation using Real NVP (section 3.6),
      https://arxiv.org/abs/1605.08803
      Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions,
      https://arxiv.org/abs/1807.03039

    Example: a two-level multi-scale flow on `8x8x1` images. Each level squeezes, runs its steps
    (here ActNorm and a 1x1 convolution), factors out half its channels, and un-squeezes so the
    event keeps its shape:

    >>> import tensorflow as tf
    >>> import tensorflow_probability as tfp
    >>> from tfp_flows.bijectors import ActNorm, FactorOut, Invertible1x1Conv, Squeeze
    >>> tfb, tfd = tfp.bijectors, tfp.distributions
    >>> def level(channels, inner=None, name="level"):
    ...     steps = [ActNorm(channels, name=f"{name}_actnorm"),
    ...              Invertible1x1Conv(channels, seed=channels, name=f"{name}_conv")]
    ...     if inner is not None:
    ...         steps.append(FactorOut(inner, split=channels // 2))
    ...     return tfb.Chain([tfb.Invert(Squeeze()), *steps, Squeeze()], name=name)
    >>> flow = tfd.TransformedDistribution(
    ...     tfd.Sample(tfd.Normal(0.0, 1.0), [8, 8, 1]),
    ...     level(4, inner=level(8, name="level_2"), name="level_1"))
    >>> images = tf.random.stateless_uniform([16, 8, 8, 1], seed=[0, 1])
    >>> flow.log_prob(images).shape  # the first batch also initialises the ActNorms
    TensorShape([16])
    >>> flow.sample(3, seed=[1, 2]).shape
    TensorShape([3, 8, 8, 1])
    >>> len(flow.trainable_variables)  # ActNorm: 2 each; LU 1x1 conv: 3 each
    10
    """

    def __init__(
        self,
        bijector: tfb.Bijector,
        split: int,
        *,
        event_ndims: int = 3,
        validate_args: bool = False,
        name: str = "factor_out",
    ):
        parameters = dict(locals())
        if not isinstance(bijector, tfb.Bijector):
            raise TypeError(f"`bijector` must be a tfb.Bijector; got {type(bijector).__name__}.")
        split = check.integer(split, "split")  # the channels factored out
        event_ndims = check.integer(event_ndims, "event_ndims")
        with tf.name_scope(name) as name:
            super().__init__(
                forward_min_event_ndims=int(event_ndims),
                is_constant_jacobian=bijector.is_constant_jacobian,
                validate_args=validate_args,
                dtype=bijector.dtype,
                parameters=parameters,
                name=name,
            )
            self._bijector = bijector
            self._split = int(split)

    @property
    def bijector(self) -> tfb.Bijector:
        return self._bijector

    @property
    def split(self) -> int:
        return self._split

    @property
    def keras_variables(self) -> list:
        """The Keras 3 variables of every bijector in the inner tree."""
        return _collect(self, "_keras_variables")

    @property
    def keras_layers(self) -> list:
        """The Keras 3 layers of every bijector in the inner tree."""
        return _collect(self, "_keras_layers")

    def _check_event_shape(self, shape, what):
        super()._check_event_shape(shape, what)
        channels = shape[-1] if shape.rank is not None else None
        if channels is not None and not 1 <= self._split <= channels - 1:
            raise ValueError(
                f"{self.name}: `split`={self._split} must be in [1, C - 1] for the {channels} "
                f"channels of the {what} input (shape {shape})."
            )

    def _apply(self, t, transform, log_det, what, kwargs):
        kept, rest = t[..., : self._split], t[..., self._split :]
        out = transform(rest, **kwargs)
        if out.shape.rank is not None and rest.shape.rank is not None:
            if not out.shape.is_compatible_with(rest.shape):
                raise ValueError(
                    f"{self.name}: the inner bijector {self._bijector.name!r} must preserve the "
                    f"shape of its input; its {what} maps {rest.shape} to {out.shape}."
                )
        # `transform` filled the bijector cache, so this is a cache hit for most bijectors.
        ldj = log_det(rest, event_ndims=self.forward_min_event_ndims, **kwargs)
        batch = tf.shape(t)[: tf.rank(t) - self.forward_min_event_ndims]
        return tf.concat([kept, out], axis=-1), tf.broadcast_to(ldj, batch)

    def _forward_and_log_det(self, x, **kwargs):
        inner = self._bijector
        return self._apply(x, inner.forward, inner.forward_log_det_jacobian, "forward", kwargs)

    def _inverse_and_log_det(self, y, **kwargs):
        inner = self._bijector
        return self._apply(y, inner.inverse, inner.inverse_log_det_jacobian, "inverse", kwargs)


def _collect(module: tf.Module, attribute: str) -> list:
    """Items of the list `attribute` on `module` and all its submodules, each once, in order."""
    seen, items = set(), []
    for m in (module, *module.submodules):
        for item in getattr(m, attribute, ()):
            if id(item) not in seen:
                seen.add(id(item))
                items.append(item)
    return items
