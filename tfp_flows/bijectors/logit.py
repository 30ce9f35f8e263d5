"""Real NVP's logit pre-transform for data in `[0, 1]`."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["LogitTransform"]


class LogitTransform(tfb.Chain):
    r"""Real NVP's logit pre-transform for data in `[0, 1]`, built from TFP primitives.

    Forward (latent to data) and inverse (data to latent), elementwise:

        x = (sigmoid(z) - alpha) / (1 - 2 alpha)
        z = logit(alpha + (1 - 2 alpha) x)

    `alpha` keeps the logit away from 0 and 1, where it diverges. The log-det is TFP's (Sigmoid,
    Shift, Scale), so `log_prob` counts it.

    Args:
      alpha: the margin, in `[0, 0.5)`; Real NVP used 0.05 on CIFAR-10.
      validate_args: let TFP check its inputs at run time.
      dtype: float dtype of the constants (that of the flow).
      name: name of the bijector.

    References:
      Dinh et al. (2017), Density estimation using Real NVP, https://arxiv.org/abs/1605.08803

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.bijectors import LogitTransform
    >>> logit = LogitTransform(0.05)
    >>> z = logit.inverse(tf.constant([0.0, 0.5, 1.0]))
    >>> [round(v, 4) for v in z.numpy().tolist()]  # logit(0.05), 0, logit(0.95)
    [-2.9444, 0.0, 2.9444]
    """

    def __init__(
        self,
        alpha: float = 0.05,
        *,
        validate_args: bool = False,
        dtype=tf.float32,
        name: str = "logit",
    ):
        if not 0.0 <= float(alpha) < 0.5:
            raise ValueError(f"`alpha` must be in [0, 0.5); got {alpha}.")
        self.alpha = float(alpha)
        super().__init__(
            [
                tfb.Scale(tf.constant(1.0 / (1.0 - 2.0 * self.alpha), dtype)),
                tfb.Shift(tf.constant(-self.alpha, dtype)),
                tfb.Sigmoid(),
            ],
            validate_args=validate_args,
            name=name,
        )
