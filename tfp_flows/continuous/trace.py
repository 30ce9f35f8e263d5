"""Trace of the velocity's Jacobian along the ODE: exact, or Hutchinson's estimator.

The log-density of a continuous flow follows the instantaneous change of variables (Chen et
al. 2018, https://arxiv.org/abs/1806.07366):

    d/dt log p_t(x_t) = -tr(dv/dx (x_t, t)),
    log|det dF/dx0| = int_0^1 tr(dv/dx (x_t, t)) dt.

Both functions here return an FFJORD `trace_augmentation_fn`: `(ode_fn, state_shape, dtype) ->
augmented(t, (x, ldj)) = (v, diag)`, with `diag` unreduced (shape of `x`; FFJORD sums it over
the event dims).

* `exact_trace(event_ndims)`: the diagonal `J_ii = (e_i^T J)_i`, one reverse pass per event
  element `D` (cost `D + 1` network passes per evaluation): exact, for small `D`.
* `hutchinson_trace(...)`: `z ⊙ (z^T J)`, whose event sum is `z^T J z` with `E[z z^T] = I`
  (Hutchinson 1989; Grathwohl et al. 2019, https://arxiv.org/abs/1810.01367), one reverse pass
  per probe. The probe `z` is drawn once per solve and kept along the trajectory, so the
  estimate of `log|det|` is `z^T (int_0^1 J_t dt) z`: unbiased, with variance (Rademacher `z`)
  `sum_{i<j} (A_ij + A_ji)^2 / k` for `A = int J_t dt` and `k` probes (Gaussian `z` adds
  `2 sum_i A_ii^2`). The density `exp(log p)` is then biased (Jensen); the log-density is not.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["exact_trace", "hutchinson_trace"]


def exact_trace(event_ndims: int = 1):
    """An FFJORD trace function computing `diag(dv/dx)` exactly (`D` reverse passes)."""

    def augmentation(ode_fn, state_shape, dtype):
        del state_shape, dtype

        def augmented(time, state_and_ldj, **kwargs):
            x, _ = state_and_ldj
            event = x.shape[x.shape.rank - event_ndims :]
            size = math.prod(event)
            with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
                tape.watch(x)
                v = ode_fn(time, x, **kwargs)
            flat_shape = tf.concat([tf.shape(x)[: x.shape.rank - event_ndims], [size]], 0)
            diag = []
            for i in range(size):
                e = tf.reshape(tf.one_hot(i, size, dtype=x.dtype), event)
                row = tape.gradient(v, x, output_gradients=tf.broadcast_to(e, tf.shape(v)))
                diag.append(tf.reshape(row, flat_shape)[..., i])
            del tape
            return v, tf.reshape(tf.stack(diag, -1), tf.shape(x))

        return augmented

    return augmentation


def hutchinson_trace(num_samples: int = 1, *, seed=None, noise: str = "rademacher"):
    """An FFJORD trace function estimating the trace with `num_samples` probes per solve.

    Args:
      num_samples: probes `k`; the variance falls as `1 / k`, the cost rises as `k` reverse
        passes per evaluation.
      seed: `None` (fresh probes at every solve) or an int / stateless seed pair (the same
        probes at every solve: a deterministic `log_prob`).
      noise: `"rademacher"` (+-1, the lower variance) or `"gaussian"`.
    """
    # An int is a stateless pair: TFP's `sanitize_seed(int)` would seed a stateful draw instead.
    seed_pair = (seed, 0) if isinstance(seed, int) else seed
    if noise not in ("rademacher", "gaussian"):
        raise ValueError(f"`noise` must be 'rademacher' or 'gaussian'; got {noise!r}.")

    def augmentation(ode_fn, state_shape, dtype):
        shape = tf.concat([[num_samples], tf.cast(state_shape, tf.int32)], 0)
        s = tfp.random.sanitize_seed(seed_pair)
        if noise == "rademacher":
            probes = tfp.random.rademacher(shape, dtype=dtype, seed=s)
        else:
            probes = tf.random.stateless_normal(shape, seed=s, dtype=dtype)

        def augmented(time, state_and_ldj, **kwargs):
            x, _ = state_and_ldj
            with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
                tape.watch(x)
                v = ode_fn(time, x, **kwargs)
            estimates = [z * tape.gradient(v, x, output_gradients=z) for z in tf.unstack(probes)]
            del tape
            return v, tf.add_n(estimates) / num_samples

        return augmented

    return augmentation
