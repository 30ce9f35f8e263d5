"""Importance weights of a flow `q` against an unnormalised target `p~`, and their summary.

With `log w = log p~(z) - log q(z)`, `z ~ q`, one place computes what reverse-KL training and
its monitoring report (`tfp_flows.vi`, the Keras `VariationalModel`'s per-step metrics):

    elbo  = mean(log w)                         a lower bound on log Z
    log_z = log mean(w)                         the importance-sampled estimate of log Z
    ess   = (sum w)^2 / sum w^2                 the effective sample size, in [1, N]
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

__all__ = ["importance_diagnostics", "importance_summary", "sample_and_log_weights"]


def sample_and_log_weights(dist, target_log_prob_fn: Callable, num_samples: int, *, seed=None):
    """Samples `z ~ q` and returns `(z, log q(z), log p~(z) - log q(z))`.

    Uses `experimental_sample_and_log_prob`, which for this package's flows computes each
    network once (the log-det is cached during sampling). Raises `ValueError` unless the target
    returns one log-density per sample (shape `[num_samples]` for a flow without batch shape),
    and `TypeError` unless it is a floating-point tensor.
    """
    z, log_q = dist.experimental_sample_and_log_prob(num_samples, seed=seed)
    log_p = tf.convert_to_tensor(target_log_prob_fn(z))
    if not log_p.dtype.is_floating:
        raise TypeError(
            f"target_log_prob_fn returned dtype {log_p.dtype.name}; it must return a floating "
            f"log-density ({log_q.dtype.name}) that depends differentiably on the samples "
            "(an integer result has no gradient, so nothing would train)."
        )
    if log_p.shape.rank is None or log_p.shape != log_q.shape:
        raise ValueError(
            f"target_log_prob_fn returned shape {log_p.shape} for {num_samples} samples of shape "
            f"{z.shape}; it must return one log-density per sample, shape {log_q.shape} (reduce "
            "over the event dimensions)."
        )
    return z, log_q, tf.cast(log_p, log_q.dtype) - log_q


def importance_summary(log_w) -> dict:
    """`elbo`, `log_z`, `ess` and `ess_fraction` (scalars) of the log-weights `log_w` `[N]`.

    `log_z` is consistent but biased low for finite `N`, by about `var(w) / (2 N mean(w)^2)`.
    """
    log_w = tf.convert_to_tensor(log_w)
    n = tf.cast(tf.size(log_w), log_w.dtype)
    lse = tf.reduce_logsumexp(log_w)
    ess = tf.exp(2.0 * lse - tf.reduce_logsumexp(2.0 * log_w))
    return {
        "elbo": tf.reduce_mean(log_w),
        "log_z": lse - tf.math.log(n),
        "ess": ess,
        "ess_fraction": ess / n,
    }


def importance_diagnostics(dist, target_log_prob_fn: Callable, num_samples: int, *, seed=None):
    """`importance_summary` of `num_samples` draws from `dist` against the target `p~`."""
    _, _, log_w = sample_and_log_weights(dist, target_log_prob_fn, num_samples, seed=seed)
    return importance_summary(log_w)
