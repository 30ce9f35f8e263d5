"""Affine transformers: Real NVP's clamped exp scale, Glow's sigmoid scale and NICE's shift."""

from __future__ import annotations

import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.bijectors.transformers.base import Transformer, soft_clamp

__all__ = ["Additive", "Affine", "SigmoidAffine"]


class Affine(Transformer):
    r"""Affine map with an exponential, soft-clamped scale (Real NVP, MAF).

    With `t = params[..., 0]`, `h = params[..., 1]` and `s = c tanh(h / c)`
    (`c = log_scale_clamp`; `s = h` when it is None):

        y = x exp(s) + t,   x = (y - t) exp(-s),   log g'(x) = s

    The clamp keeps `|s| < c` however the conditioner drifts; near zero it is the identity, so
    zero params give the identity map.

    Args:
      log_scale_clamp: bound `c > 0` of the soft clamp, or `None` for no clamp.

    References:
      Dinh, Sohl-Dickstein & Bengio (2016), Density estimation using Real NVP,
      https://arxiv.org/abs/1605.08803

    Example:

    >>> import tensorflow as tf
    >>> y, log_det = Affine().forward_and_log_det(tf.constant([1.0]), tf.constant([[0.5, 0.0]]))
    >>> float(y[0]), float(log_det[0])
    (1.5, 0.0)
    """

    num_params = 2

    def __init__(self, log_scale_clamp: float | None = 3.0):
        self.log_scale_clamp = check.clamp_bound(log_scale_clamp)

    def shift_and_log_scale(self, params):
        """`(t, s)`: the shift and the forward log-scale, each of shape `params.shape[:-1]`."""
        return params[..., 0], soft_clamp(params[..., 1], self.log_scale_clamp)

    def forward_and_log_det(self, x, params):
        shift, log_scale = self.shift_and_log_scale(params)
        return x * tf.exp(log_scale) + shift, log_scale

    def inverse_and_log_det(self, y, params):
        shift, log_scale = self.shift_and_log_scale(params)
        return (y - shift) * tf.exp(-log_scale), -log_scale

    def get_config(self) -> dict:
        return {"name": "affine", "log_scale_clamp": self.log_scale_clamp}


class SigmoidAffine(Affine):
    r"""Affine map with Glow's sigmoid scale, bounded in the data-to-latent direction.

    With `t = params[..., 0]`, `h = params[..., 1]`, the inverse (data to latent, what
    `log_prob` runs) scales by `sigmoid(h + 2)`, so the forward log-scale is
    `s = -log sigmoid(h + 2) = softplus(-(h + 2)) > 0`:

        y = x exp(s) + t,   x = (y - t) sigmoid(h + 2),   log g'(x) = s

    Zero params are *not* the identity: the inverse scale is `sigmoid(2) ~ 0.88` (the offset 2
    starts a zero-initialised layer near it).

    References:
      Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions,
      https://arxiv.org/abs/1807.03039

    Example:

    >>> import tensorflow as tf
    >>> x, log_det = SigmoidAffine().inverse_and_log_det(tf.constant([1.0]), tf.zeros([1, 2]))
    >>> round(float(x[0]), 4), round(float(log_det[0]), 4)  # sigmoid(2), log sigmoid(2)
    (0.8808, -0.1269)
    """

    def __init__(self):
        self.log_scale_clamp = None

    def shift_and_log_scale(self, params):
        return params[..., 0], tf.math.softplus(-(params[..., 1] + 2.0))

    def get_config(self) -> dict:
        return {"name": "sigmoid"}


class Additive(Transformer):
    r"""A shift only (NICE): volume preserving.

    With `t = params[..., 0]` (`num_params = 1`):

        y = x + t,   x = y - t,   log g'(x) = 0

    `is_constant_jacobian` is True, so a layer built on it reports a constant log-det.

    References:
      Dinh, Krueger & Bengio (2014), NICE: Non-linear Independent Components Estimation,
      https://arxiv.org/abs/1410.8516

    Example:

    >>> import tensorflow as tf
    >>> y, log_det = Additive().forward_and_log_det(tf.constant([1.0]), tf.constant([[0.5]]))
    >>> float(y[0]), float(log_det[0])
    (1.5, 0.0)
    """

    num_params = 1
    is_constant_jacobian = True

    def forward_and_log_det(self, x, params):
        y = x + params[..., 0]
        return y, tf.zeros_like(y)

    def inverse_and_log_det(self, y, params):
        x = y - params[..., 0]
        return x, tf.zeros_like(x)

    def get_config(self) -> dict:
        return {"name": "additive"}
