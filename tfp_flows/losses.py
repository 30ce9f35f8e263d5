"""Training objectives for flows, in plain TF2: forward KL (from data) and reverse KL (variational).

* `forward_kl(dist, x)`: maximum likelihood, `-mean log q(x)` on data `x ~ p`.
* `reverse_kl(dist, target_log_prob_fn, num_samples)`: the sampled negative ELBO,
  `mean(log q(z) - log p~(z))` with `z ~ q`, from one `experimental_sample_and_log_prob` pass.
  Its minimum is `-log Z` where `Z` normalises the target `p~`.
* `importance_diagnostics`: the importance-sampled estimate of `log Z` and the effective sample
  size of the weights `p~(z) / q(z)`.

All of them run eagerly, in `tf.function` and under `jit_compile=True`.

Example:

>>> import tensorflow as tf
>>> import tensorflow_probability as tfp
>>> from tfp_flows.losses import reverse_kl
>>> q = tfp.distributions.Normal(tf.Variable(0.0), 1.0)
>>> target = tfp.distributions.Normal(0.0, 1.0).log_prob
>>> abs(float(reverse_kl(q, target, 64, seed=1)))  # q == p, so the KL is exactly 0
0.0
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
    "check_data",
    "check_event_shape",
    "forward_kl",
    "importance_diagnostics",
    "reverse_kl",
    "sample_and_log_weights",
]


def check_data(dist: tfd.Distribution, x, *, name: str = "x") -> tf.Tensor:
    """Converts `x` to the flow's dtype and checks its event shape statically.

    Raises `TypeError` for non-float or integer data of the wrong kind, `ValueError` for a shape
    whose trailing dimensions do not match `dist.event_shape`.
    """
    x_dtype = getattr(x, "dtype", None)
    if x_dtype is not None and not tf.as_dtype(x_dtype).is_floating:
        raise TypeError(
            f"{name} has dtype {tf.as_dtype(x_dtype).name}; the flow needs {dist.dtype.name} data. "
            "Integer image data must be dequantised first (e.g. (x + uniform noise) / levels)."
        )
    x = tf.convert_to_tensor(x, dtype=dist.dtype)
    check_event_shape(dist, x.shape, name=name)
    return x


def check_event_shape(dist: tfd.Distribution, shape, *, name: str = "x") -> None:
    """Raises `ValueError` unless `shape` is `[..., *dist.event_shape]`."""
    shape = tf.TensorShape(shape)
    event_shape = dist.event_shape
    rank = event_shape.rank
    if rank is None or shape.rank is None:
        return
    if shape.rank < rank or not shape[shape.rank - rank :].is_compatible_with(event_shape):
        raise ValueError(
            f"{name} has shape {shape}; the flow's events have shape {event_shape}, so "
            f"{name} must have shape [..., {', '.join(map(str, event_shape))}]."
        )


def forward_kl(dist: tfd.Distribution, x, *, validate: bool = False, **log_prob_kwargs):
    """Negative mean log-likelihood of data `x` (forward KL up to the data's entropy).

    Args:
      dist: the flow (any distribution with `log_prob`).
      x: data of shape `[N, *event_shape]`.
      validate: check at run time that `x` is finite (an `InvalidArgumentError` naming it).
      **log_prob_kwargs: passed to `log_prob` (e.g. `bijector_kwargs` for a conditional flow).

    Returns:
      A scalar: `-mean(log q(x))` in nats.
    """
    x = check_data(dist, x)
    if validate:
        x = tf.debugging.assert_all_finite(x, "forward_kl: the data has NaN or inf values")
    return -tf.reduce_mean(dist.log_prob(x, **log_prob_kwargs))


def sample_and_log_weights(dist, target_log_prob_fn, num_samples: int, *, seed=None):
    """Samples `z ~ q` and returns `(z, log q(z), log p~(z) - log q(z))`.

    Uses `experimental_sample_and_log_prob`, which for this package's flows computes each
    network once (the log-det is cached during sampling). Checks that the target returns one
    value per sample.
    """
    z, log_q = dist.experimental_sample_and_log_prob(num_samples, seed=seed)
    log_p = tf.convert_to_tensor(target_log_prob_fn(z))
    if log_p.shape.rank is not None and log_p.shape != log_q.shape:
        raise ValueError(
            f"target_log_prob_fn returned shape {log_p.shape} for {num_samples} samples; it must "
            f"return one log-density per sample, shape {log_q.shape}."
        )
    return z, log_q, tf.cast(log_p, log_q.dtype) - log_q


def reverse_kl(
    dist,
    target_log_prob_fn,
    num_samples: int,
    *,
    seed=None,
    stick_the_landing: bool = False,
):
    """Sampled negative ELBO, `mean(log q(z) - log p~(z))` with `z ~ q` (reparameterised).

    Args:
      dist: the flow `q`; its samples must be reparameterised (flows are).
      target_log_prob_fn: the unnormalised target log-density `log p~`, mapping `[num_samples,
        *event_shape]` to `[num_samples]`.
      num_samples: Monte Carlo samples per evaluation.
      seed: sampling seed.
      stick_the_landing: drop the score term of the gradient (Roeder et al. 2017,
        https://arxiv.org/abs/1703.09194): lower variance near the optimum. The value of the loss
        is unchanged; it costs one extra `log_prob` on the samples.

    Returns:
      A scalar: `KL(q || p) - log Z` in nats.
    """
    z, _, log_w = sample_and_log_weights(dist, target_log_prob_fn, num_samples, seed=seed)
    loss = -tf.reduce_mean(log_w)
    if stick_the_landing:
        # Subtract a term of value 0 whose gradient is the score term d/dphi log q_phi(z)|z fixed.
        score = tf.reduce_mean(dist.log_prob(tf.stop_gradient(z)))
        loss = loss - score + tf.stop_gradient(score)
    return loss


def importance_diagnostics(dist, target_log_prob_fn, num_samples: int, *, seed=None) -> dict:
    """Importance-sampling diagnostics of `q` as a proposal for the target `p~`.

    Returns a dict of scalars:
      `elbo`: `mean(log w)`, a lower bound on `log Z`;
      `log_z`: `log mean(w)`, the importance-sampled estimate of `log Z` (consistent; biased low
        for finite samples);
      `ess`: the effective sample size `(sum w)^2 / sum w^2`, between 1 and `num_samples`;
      `ess_fraction`: `ess / num_samples`.
    """
    _, _, log_w = sample_and_log_weights(dist, target_log_prob_fn, num_samples, seed=seed)
    n = tf.cast(num_samples, log_w.dtype)
    lse = tf.reduce_logsumexp(log_w)
    ess = tf.exp(2.0 * lse - tf.reduce_logsumexp(2.0 * log_w))
    return {
        "elbo": tf.reduce_mean(log_w),
        "log_z": lse - tf.math.log(n),
        "ess": ess,
        "ess_fraction": ess / n,
    }
