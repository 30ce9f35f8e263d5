"""Affine coupling (NICE, Real NVP, Glow): `Coupling` with an affine transformer."""

from __future__ import annotations

from collections.abc import Callable

from tfp_flows import _validation as check
from tfp_flows.bijectors import transformers as tr
from tfp_flows.bijectors.coupling import Coupling

__all__ = ["AffineCoupling"]

_SCALES = ("exp", "sigmoid", "additive")


class AffineCoupling(Coupling):
    r"""Affine coupling layer: the kept part `x_a` sets a shift and scale for the other part `x_b`.

    `Coupling(conditioner, transformer, ...)` with the transformer chosen by `scale`. With
    `(t, h) = conditioner(x_a)` and `s` the forward log-scale derived from `h`:

        forward (latent to data):   y_a = x_a,  y_b = x_b * exp(s) + t
        inverse (data to latent):   x_a = y_a,  x_b = (y_b - t) * exp(-s)
        log|det J_forward| = sum(s),   log|det J_inverse| = -sum(s)

    summed over the transformed part of the event. Masks as for `Coupling`.

    Scales (how `s` is derived from the conditioner's `h`):

    * `"exp"` (Real NVP, `transformers.Affine`): `s = c * tanh(h / c)` with
      `c = log_scale_clamp`, which is `h` near 0 and bounded by `c`; `None` gives `s = h`.
    * `"sigmoid"` (Glow, `transformers.SigmoidAffine`): the scale applied in the data-to-latent
      direction (`inverse`, which `log_prob` runs) is `sigmoid(h + 2)`, i.e.
      `s = -log_sigmoid(h + 2)`. A zero-initialised layer starts near (not at) the identity,
      with scale `sigmoid(2) ~ 0.88`.
    * `"additive"` (NICE, `transformers.Additive`): `s = 0`, shift only; volume preserving
      with `is_constant_jacobian`. The conditioner may return `None` as its log-scale.

    Args:
      conditioner: a callable `conditioner(x_a) -> (shift, log_scale)`, both of the
        transformed part's shape, or params of that shape plus `[2]` (`[1]` for additive).
      scale: `"exp"`, `"sigmoid"` or `"additive"`.
      log_scale_clamp: bound of the soft clamp of `"exp"`; `None` disables it.
      mask, reverse, split, validate_args, dtype, name: as for `Coupling`.

    References (Real NVP and neural spline flows: see `Coupling`):
      Dinh, Krueger & Bengio (2014), NICE: Non-linear Independent Components Estimation,
      https://arxiv.org/abs/1410.8516

      Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions,
      https://arxiv.org/abs/1807.03039 (the sigmoid scale: its code, not the paper's text)

    Example (Glow's scale, which starts near, not at, the identity):

    >>> import numpy as np, tensorflow as tf
    >>> from tfp_flows.bijectors import AffineCoupling
    >>> from tfp_flows.nn import MLPConditioner
    >>> glow_like = AffineCoupling(MLPConditioner(2, 2, hidden_units=(16,)), scale="sigmoid")
    >>> y = tf.random.stateless_normal([5, 4], seed=[0, 1])
    >>> x, ildj = glow_like.inverse(y), glow_like.inverse_log_det_jacobian(y, event_ndims=1)
    >>> bool(np.allclose(ildj, 2 * np.log(1 / (1 + np.exp(-2.0)))))  # 2 dims scaled by sigmoid(2)
    True
    """

    def __init__(
        self,
        conditioner: Callable,
        *,
        scale: str = "exp",
        log_scale_clamp: float | None = 3.0,
        name: str = "affine_coupling",
        **options,
    ):
        # `options`: `Coupling`'s mask, reverse, split, validate_args and dtype (the full
        # signature, for `help` and `inspect`, is `__signature__` below).
        arguments = _SIGNATURE.bind(self, conditioner, scale=scale, name=name, **options)
        arguments.apply_defaults()
        parameters = {k: v for k, v in arguments.arguments.items() if k != "self"}
        if scale not in _SCALES:
            raise ValueError(f"`scale` must be one of {_SCALES}; got {scale!r}.")
        log_scale_clamp = check.clamp_bound(log_scale_clamp)
        name_ = {"exp": "affine", "sigmoid": "sigmoid", "additive": "additive"}[scale]
        transformer = tr.get(name_, log_scale_clamp=log_scale_clamp)
        shared = {k: parameters[k] for k in _COUPLING_OPTIONS}
        super().__init__(conditioner, transformer, name=name, **shared)
        # TFP's `parameters` (`copy`, `__repr__`) are this constructor's, not `Coupling`'s.
        self._parameters = self._no_dependency(parameters)
        self._scale = scale

    @property
    def scale(self) -> str:
        return self._scale


_COUPLING_OPTIONS = ("mask", "reverse", "split", "validate_args", "dtype")
_SIGNATURE = check.derived_signature(
    Coupling.__init__,
    AffineCoupling.__init__,
    drop=("transformer", "options"),
    name="affine_coupling",
)
AffineCoupling.__init__.__signature__ = _SIGNATURE
