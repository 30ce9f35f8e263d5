"""Training objectives for flows, in plain TF2: forward KL (from data) and reverse KL (variational).

* `forward_kl(dist, x)`: maximum likelihood, `-mean log q(x)` on data `x ~ p`.
* `reverse_kl(dist, target_log_prob_fn, num_samples)`: the sampled negative ELBO,
  `mean(log q(z) - log p~(z))` with `z ~ q`, from one `experimental_sample_and_log_prob` pass.
  Its minimum is `-log Z` where `Z` normalises the target `p~`.

Train with `tfp_flows.train.minimize` (or `tfp_flows.vi.fit` for reverse KL); summarise the
importance weights (ELBO, log Z, ESS) with `tfp_flows.train.importance_diagnostics`.

Both losses run eagerly, in `tf.function` and under `jit_compile=True`. Bad input (data of the
wrong shape or dtype, integer pixels, data outside a logit flow's `[0, 1]`, non-finite eager
data, a target log-density of the wrong shape) raises an error naming it when the loss is
called or traced, so before an optimizer can apply any update. XLA drops run-time assertions:
check data once up front (`tfp_flows.checks.check_data`) when training under `jit_compile=True`.

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

import importlib
from collections.abc import Callable

import tensorflow as tf
import tensorflow_probability as tfp

# Importable from here as before; they live in `checks` (the data validator) and `train`.
from tfp_flows.checks import (  # noqa: F401
    check_data,
    check_dtype,
    check_event_shape,
    check_values,
    data_domain,
)
from tfp_flows.train import importance_diagnostics, sample_and_log_weights  # noqa: F401

tfd = tfp.distributions

__all__ = ["forward_kl", "reverse_kl"]


def forward_kl(dist: tfd.Distribution, x, *, validate: bool = False, **log_prob_kwargs):
    """Negative mean log-likelihood of data `x` (forward KL up to the data's entropy).

    `KL(p || q) = E_p[log p(x)] - E_p[log q(x)]`; the first term does not depend on `q`, so
    minimising `-mean(log q(x))` over data `x ~ p` minimises the KL.

    Args:
      dist: the flow (any distribution with `log_prob`).
      x: data of shape `[N, *event_shape]`, checked with `check_data`.
      validate: also check in-graph that `x` is finite (an `InvalidArgumentError` naming it,
        raised before the loss exists). Not honoured under XLA, which drops assertions.
      **log_prob_kwargs: passed to `log_prob` (e.g. `bijector_kwargs` for a conditional flow).

    Returns:
      A scalar: `-mean(log q(x))` in nats.
    """
    x = check_data(dist, x)
    if validate:
        x = tf.debugging.assert_all_finite(x, "forward_kl: the data has NaN or inf values")
    return -tf.reduce_mean(dist.log_prob(x, **log_prob_kwargs))


def _skip_actnorm_initialisation(dist) -> None:
    """Marks ActNorm layers initialised: their data-dependent init has no data in reverse KL."""
    from tfp_flows.bijectors import ActNorm
    from tfp_flows.flows import flow_bijectors

    if isinstance(getattr(dist, "bijector", None), tf.Module):
        for bijector in flow_bijectors(dist):
            if isinstance(bijector, ActNorm):
                bijector.initialized.assign(True)


def reverse_kl(
    dist,
    target_log_prob_fn: Callable,
    num_samples: int,
    *,
    seed=None,
    stick_the_landing: bool = False,
):
    """Sampled negative ELBO, `mean(log q(z) - log p~(z))` with `z ~ q` (reparameterised).

    `KL(q || p) = E_q[log q(z) - log p~(z)] + log Z`, so the loss is `KL - log Z >= -log Z`.
    Samples and `log q(z)` come from one `experimental_sample_and_log_prob` pass (one network
    pass per layer for Real NVP, Glow and IAF; a MAF samples in `D` passes).

    Args:
      dist: the flow `q`; its samples must be reparameterised (flows are).
      target_log_prob_fn: the unnormalised target log-density `log p~`, mapping `[num_samples,
        *event_shape]` to `[num_samples]`; another shape is a `ValueError`.
      num_samples: Monte Carlo samples per evaluation.
      seed: sampling seed (`None`: stateful sampling, fine in a compiled train step).
      stick_the_landing: drop the score term `d/dphi log q_phi(z)|z fixed` from the gradient
        (Roeder, Wu & Duvenaud 2017, https://arxiv.org/abs/1703.09194): the same expected
        gradient with lower variance near the optimum, exactly zero at `q = p`. The loss value is
        unchanged. It costs one `log_prob` pass on the samples (for an IAF, `D` passes).
        ActNorm layers are marked initialised first, so that pass cannot initialise them from
        the samples.

    Returns:
      A scalar: `KL(q || p) - log Z` in nats.
    """
    if stick_the_landing:
        _skip_actnorm_initialisation(dist)
    z, _, log_w = sample_and_log_weights(dist, target_log_prob_fn, num_samples, seed=seed)
    loss = -tf.reduce_mean(log_w)
    if stick_the_landing:
        # Subtract a term of value 0 whose gradient is the score term, log q_phi(z) at fixed z.
        score = tf.reduce_mean(dist.log_prob(tf.nest.map_structure(tf.stop_gradient, z)))
        loss = loss - score + tf.stop_gradient(score)
    return loss


def _minimize(loss_fn, variables, *, steps: int, **kwargs):
    """`tfp_flows.train.minimize(loss_fn, variables, num_steps=steps, ...).losses`."""
    from tfp_flows import train

    return train.minimize(loss_fn, variables, num_steps=steps, **kwargs).losses


_MOVED = {"distill": "tfp_flows.vi"}


def __getattr__(name: str):
    """Names that moved out of `losses`, still importable from it (issue 12)."""
    if name == "minimize":
        return _minimize
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'tfp_flows.losses' has no attribute {name!r}")
