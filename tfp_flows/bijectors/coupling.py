"""Coupling layer: one part of the input parametrises any transformer applied to the other part."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from tfp_flows.bijectors import transformers as tr
from tfp_flows.bijectors._conditioning import (
    ConditionedBijector,
    call_conditioner,
    conditioner_params,
)
from tfp_flows.bijectors._masks import MASKS, make_mask

__all__ = ["Coupling"]


class Coupling(ConditionedBijector):
    r"""Coupling layer: the kept part `x_a` sets the parameters of a map `g` of the other part.

    With `theta = conditioner(x_a)` (plus `conditional=c` when given) and `g` the transformer,
    elementwise on the transformed part `x_b`:

        forward (latent to data):   y_a = x_a,  y_b = g(x_b; theta)
        inverse (data to latent):   x_a = y_a,  x_b = g^{-1}(y_b; theta)
        log|det J_forward| = sum log g'(x_b; theta) = -log|det J_inverse|

    summed over the transformed part of the event (one value per batch member). Both directions
    are one conditioner pass; the kept part passes through unchanged, so the Jacobian is
    triangular.

    Masks (which part is kept):

    * `"half"`: vector events `[D]`. Keeps `x[..., :split]` and transforms `x[..., split:]`;
      `reverse=True` keeps `x[..., split:]` and transforms `x[..., :split]`.
    * `"channel"`: image events `[H, W, C]`, split on the channel axis the same way
      (`split` defaults to `C // 2`, so an odd `C` is fine; `C < 2` is a `ValueError`).
    * `"checkerboard"`: image events `[H, W, C]` with even `H` and `W`. The pixels where
      `(i + j + reverse)` is even are kept, in all channels. The conditioner gets `x * m` (the
      full image, transformed pixels zeroed) and returns full-image params, used only where
      `m == 0`.

    Args:
      conditioner: a callable `conditioner(x_a) -> params` (called as
        `conditioner(x_a, conditional=c)` when the bijector gets `conditional=c`), `params` of
        shape `transformed_shape + [num_params]`: `[..., D - split, P]` (`half`),
        `[..., H, W, C - split, P]` (`channel`) or `[..., H, W, C, P]` (`checkerboard`).
        For a 2-param transformer it may return `(shift, log_scale)`, each of the transformed
        shape, and for `Additive` `(shift, None)`. Keras layers (`tfp_flows.nn.MLPConditioner`
        and `ConvConditioner` with `num_params=P`) must be built already and hold variables of
        the bijector's dtype; their variables are the bijector's `trainable_variables`. Under a
        mixed Keras policy they may compute in bfloat16: their outputs are cast.
      transformer: `"affine"`, `"sigmoid"`, `"additive"`, `"spline"` or an object implementing
        the `transformers.Transformer` protocol (`num_params`, `forward_and_log_det`,
        `inverse_and_log_det`).
      mask: `"half"`, `"checkerboard"` or `"channel"`.
      reverse: which part is kept (see the masks above).
      split: for `"half"` and `"channel"`, the size of the first slice of the last axis;
        default half of it, rounded down.
      validate_args: check inputs for NaN and inf at run time.
      dtype: float dtype; by default a Keras conditioner's variable dtype, else any.
      name: name of the bijector.

    References:
      Dinh, Krueger & Bengio (2014), NICE: Non-linear Independent Components Estimation,
      https://arxiv.org/abs/1410.8516

      Dinh, Sohl-Dickstein & Bengio (2016), Density estimation using Real NVP,
      https://arxiv.org/abs/1605.08803

      Durkan et al. (2019), Neural Spline Flows, https://arxiv.org/abs/1906.04032

    Example, a spline coupling:

    >>> import tensorflow as tf
    >>> from tfp_flows.bijectors import Coupling, transformers
    >>> from tfp_flows.nn import MLPConditioner
    >>> spline = transformers.RationalQuadratic(num_bins=4, bound=3.0)
    >>> net = MLPConditioner(2, 2, hidden_units=(16,), num_params=spline.num_params)
    >>> bij = Coupling(net, spline, mask="half")
    >>> x = tf.random.stateless_normal([5, 4], seed=[0, 1])
    >>> bool(tf.reduce_all(tf.abs(bij.forward(x) - x) < 1e-5))  # zero-initialised: identity
    True
    >>> bij.forward_log_det_jacobian(x, event_ndims=1).shape
    TensorShape([5])
    """

    def __init__(
        self,
        conditioner: Callable,
        transformer,
        *,
        mask: str = "half",
        reverse: bool = False,
        split: int | None = None,
        validate_args: bool = False,
        dtype=None,
        name: str = "coupling",
    ):
        parameters = dict(locals())
        if mask not in MASKS:
            raise ValueError(f"`mask` must be one of {MASKS}; got {mask!r}.")
        transformer = tr.get(transformer)
        mask_ = make_mask(mask, split=split, reverse=reverse, name=name)
        with tf.name_scope(name) as name:
            super().__init__(
                conditioner,
                transformer,
                event_ndims=1 if mask == "half" else 3,
                validate_args=validate_args,
                dtype=dtype,
                parameters=parameters,
                name=name,
            )
        mask_.name = self.name
        self._mask, self._mask_kind = mask_, mask

    @property
    def mask(self) -> str:
        return self._mask_kind

    def _check_event_shape(self, shape, what):
        super()._check_event_shape(shape, what)  # rank >= 1 ('half') or 3 (images)
        if shape.rank is not None:
            self._mask.check(shape)

    def _params(self, kept, transformed, conditional):
        output = call_conditioner(self._conditioner, kept, conditional, self.name)
        return conditioner_params(
            output,
            self._transformer,
            transformed,
            self.forward_min_event_ndims,
            self.name,
            none_is_zero=False,
        )

    def _transform(self, x, conditional, transform: str):
        """`transform` (`"forward_and_log_det"` or `"inverse_and_log_det"`) of the masked part."""
        kept, transformed = self._mask.split(x)
        params = self._params(kept, transformed, conditional)
        y, log_det = getattr(self._transformer, transform)(transformed, params)
        log_det = self._mask.restrict(log_det)
        return self._mask.merge(kept, self._mask.restrict(y)), self._mask.sum_event(log_det)

    def _forward_and_log_det(self, x, conditional=None):
        return self._transform(x, conditional, "forward_and_log_det")

    def _inverse_and_log_det(self, y, conditional=None):
        return self._transform(y, conditional, "inverse_and_log_det")
