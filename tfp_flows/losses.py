"""Training objectives for flows, in plain TF2: forward KL (from data) and reverse KL (variational).

* `forward_kl(dist, x)`: maximum likelihood, `-mean log q(x)` on data `x ~ p`.
* `reverse_kl(dist, target_log_prob_fn, num_samples)`: the sampled negative ELBO,
  `mean(log q(z) - log p~(z))` with `z ~ q`, from one `experimental_sample_and_log_prob` pass.
  Its minimum is `-log Z` where `Z` normalises the target `p~`.
* `importance_diagnostics`: the importance-sampled estimate of `log Z` and the effective sample
  size of the weights `p~(z) / q(z)`.
* `minimize`: a lean Adam loop around a zero-argument loss, its step compiled with XLA.
* `distill`: trains a fast-sampling student flow (e.g. an IAF) by reverse KL against a trained
  teacher's `log_prob` (e.g. a MAF), with no samples from the teacher.

All losses run eagerly, in `tf.function` and under `jit_compile=True`. Bad input (data of the
wrong shape or dtype, integer pixels, data outside a logit flow's `[0, 1]`, non-finite eager
data, a target log-density of the wrong shape) raises an error naming it when the loss is
called or traced, so before an optimizer can apply any update. XLA drops run-time assertions:
check data once up front (`check_data`) when training under `jit_compile=True`.

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

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
    "check_data",
    "check_dtype",
    "check_event_shape",
    "check_values",
    "data_domain",
    "distill",
    "forward_kl",
    "importance_diagnostics",
    "minimize",
    "reverse_kl",
    "sample_and_log_weights",
]


def _data_end_bijector(dist):
    """The bijector applied last when sampling (first on data), looking into chains."""
    bijector = getattr(dist, "bijector", None)
    while isinstance(bijector, tfp.bijectors.Composition) and bijector.bijectors:
        from tfp_flows.images import LogitTransform  # a Chain subclass; stop at it

        if isinstance(bijector, LogitTransform):
            break
        bijector = bijector.bijectors[0]
    return bijector


def check_data(dist: tfd.Distribution, x, *, name: str = "x") -> tf.Tensor:
    """Converts `x` to the flow's dtype and checks it; returns the tensor.

    Static checks (also when traced in a `tf.function`):

    * `TypeError` for data of the wrong dtype (see `check_dtype`);
    * `ValueError` for a shape that is not `[..., *dist.event_shape]`.

    Value checks, when `x` is concrete (eager tensors, NumPy arrays): see `check_values`.
    """
    check_dtype(dist, x, name=name)
    concrete = None if tf.is_symbolic_tensor(x) else x  # values known now (eager, NumPy)
    if concrete is not None:
        check_values(dist, concrete, name=name)
    x = tf.convert_to_tensor(x, dtype=dist.dtype)
    check_event_shape(dist, x.shape, name=name)
    return x


def check_dtype(dist: tfd.Distribution, x, *, name: str = "x") -> None:
    """Raises `TypeError` unless `x` is floating-point data the flow takes (a static check).

    Refused: `None`, non-numeric (object, string) data, integer and bool data (images must be
    dequantised first), and a float *tensor* of another precision than the flow's (NumPy arrays
    and lists are cast).
    """
    if x is None:
        raise TypeError(f"{name} is None; pass data of shape [..., {_event_text(dist)}].")
    x_dtype = getattr(x, "dtype", None)
    try:
        x_dtype = tf.as_dtype(np.asarray(x).dtype if x_dtype is None else x_dtype)
    except TypeError:  # object or str arrays: None inside, ragged lists, a generator
        x_dtype = None
    if x_dtype is None or x_dtype == tf.string:
        raise TypeError(
            f"{name} must be numeric data of shape [..., {_event_text(dist)}]; got "
            f"{type(x).__name__} of dtype {getattr(x, 'dtype', '?')}."
        )
    if x_dtype.is_integer or x_dtype == tf.bool:
        raise TypeError(
            f"{name} has integer dtype {x_dtype.name}; flows model continuous "
            f"({dist.dtype.name}) data. Integer images must be dequantised first "
            "(tfp_flows.images.dequantize: (k + uniform noise) / num_bins)."
        )
    if not x_dtype.is_floating:
        raise TypeError(f"{name} has dtype {x_dtype.name}; the flow needs {dist.dtype.name} data.")
    if tf.is_tensor(x) and x_dtype != dist.dtype:
        raise TypeError(
            f"{name} is a {x_dtype.name} tensor; the flow computes in {dist.dtype.name}. Cast it "
            "(tf.cast) or build the flow with the matching `dtype=`."
        )


def _event_text(dist) -> str:
    return ", ".join(map(str, dist.event_shape))


def data_domain(dist: tfd.Distribution) -> tuple[float, float] | None:
    """The interval the flow's data must lie in (`(0, 1)`-style bounds of a logit pre-transform
    as `(0.0, 1.0)`), or `None` for data on the whole real line."""
    from tfp_flows.images import LogitTransform

    return (0.0, 1.0) if isinstance(_data_end_bijector(dist), LogitTransform) else None


def check_values(dist: tfd.Distribution, values, *, name: str = "x") -> None:
    """Raises `ValueError` naming the problem unless the concrete data `values` fit the flow.

    * NaN or inf values (counted, the first one located);
    * float64 values that overflow the flow's float32 (e.g. 1e39 becomes inf when cast);
    * values outside `[0, 1]` when the flow starts with a `LogitTransform` (e.g. raw pixel
      levels that were not scaled).
    """
    values = np.asarray(values)
    if values.dtype.kind != "f" or not values.size:
        return
    finite = np.isfinite(values)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name} has {int((~finite).sum())} non-finite values (NaN or inf), the first at "
            f"index {index}."
        )
    low, high = float(values.min()), float(values.max())
    limit = float(np.finfo(dist.dtype.as_numpy_dtype).max)
    if max(-low, high) > limit:
        raise ValueError(
            f"{name} has values in [{low:g}, {high:g}], beyond the largest {dist.dtype.name} "
            f"({limit:g}): they become inf when cast. Rescale (standardise) the data."
        )
    domain = data_domain(dist)
    if domain is not None and (low < domain[0] or high > domain[1]):
        raise ValueError(
            f"{name} has values in [{low:g}, {high:g}], but this flow's logit pre-transform "
            f"needs data in [{domain[0]:g}, {domain[1]:g}]: dequantise and scale pixel levels "
            "with tfp_flows.images.dequantize(pixels, num_bins)."
        )


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


def sample_and_log_weights(dist, target_log_prob_fn, num_samples: int, *, seed=None):
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


def _skip_actnorm_initialisation(dist) -> None:
    """Marks ActNorm layers initialised: their data-dependent init has no data in reverse KL."""
    from tfp_flows.bijectors import ActNorm

    bijector = getattr(dist, "bijector", None)
    if isinstance(bijector, tf.Module):
        for module in (bijector, *bijector.submodules):
            if isinstance(module, ActNorm):
                module.initialized.assign(True)


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


def importance_diagnostics(dist, target_log_prob_fn, num_samples: int, *, seed=None) -> dict:
    """Importance-sampling diagnostics of `q` as a proposal for the target `p~`.

    With `log w = log p~(z) - log q(z)`, `z ~ q`, returns a dict of scalars:
      `elbo`: `mean(log w)`, a lower bound on `log Z`;
      `log_z`: `log mean(w)`, the importance-sampled estimate of `log Z` (consistent; biased low
        for finite samples, by about `var(w) / (2 N mean(w)^2)`);
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


def minimize(
    loss_fn: Callable[[], tf.Tensor],
    variables,
    *,
    steps: int,
    learning_rate: float = 1e-3,
    decay: bool = True,
    jit_compile: bool = True,
    log_every: int = 0,
) -> np.ndarray:
    """Minimises `loss_fn()` over `variables` with Adam, one compiled step per iteration.

    `loss_fn` takes no arguments: draw minibatches (or samples) inside it, e.g.
    `tf.gather(data, tf.random.uniform([256], 0, n, tf.int32))`, so no input pipeline sits on the
    hot path. Static errors (bad data, bad target shapes) surface when the step is traced, before
    the first update.

    Args:
      loss_fn: zero-argument callable returning a scalar loss.
      variables: the variables to train (e.g. `dist.trainable_variables`).
      steps: number of optimizer steps.
      learning_rate: Adam's (initial) learning rate.
      decay: cosine-decay the learning rate to 0 over `steps`.
      jit_compile: compile the step with XLA.
      log_every: print the loss every this many steps (0: never).

    Returns:
      The loss at every step, a NumPy array of shape `[steps]`.
    """
    variables = list(variables)
    if not variables:
        raise ValueError("`variables` is empty: nothing to train.")
    schedule = (
        tf.keras.optimizers.schedules.CosineDecay(learning_rate, steps) if decay else learning_rate
    )
    optimizer = tf.keras.optimizers.Adam(schedule)
    optimizer.build(variables)

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn()
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses = np.empty(steps)
    for i in range(steps):
        losses[i] = step()
        if log_every and (i + 1) % log_every == 0:
            print(f"step {i + 1:6d}  loss {losses[i]:.4f}")
    return losses


def distill(
    teacher: tfd.Distribution,
    student: tfd.Distribution,
    *,
    steps: int = 2000,
    num_samples: int = 256,
    learning_rate: float = 1e-3,
    stick_the_landing: bool = False,
    jit_compile: bool = True,
) -> np.ndarray:
    """Trains `student` to match `teacher` by reverse KL, using only the teacher's `log_prob`.

    Minimises `KL(student || teacher) = E_s[log s(z) - log t(z)]` over the student's variables
    (the teacher's stay fixed), with samples from the student alone: the recipe of Parallel
    WaveNet's probability density distillation (https://arxiv.org/abs/1711.10433). The natural
    pair is a MAF teacher (density in one pass, fit to data by `forward_kl`) and an IAF student
    (sampling with its log-density in one pass).

    Args:
      teacher: a trained flow with a cheap `log_prob`.
      student: the flow to train; its `experimental_sample_and_log_prob` should be cheap.
      steps: optimizer steps.
      num_samples: student samples per step.
      learning_rate: Adam's initial learning rate (cosine-decayed to 0).
      stick_the_landing: use the STL gradient (see `reverse_kl`).
      jit_compile: compile the train step with XLA.

    Returns:
      The loss (the sampled `KL(student || teacher)` in nats) at every step.
    """
    if teacher.event_shape != student.event_shape:
        raise ValueError(
            f"teacher and student must share an event shape; got {teacher.event_shape} and "
            f"{student.event_shape}."
        )
    teacher_variables = {id(v) for v in teacher.trainable_variables}
    variables = [v for v in student.trainable_variables if id(v) not in teacher_variables]

    def loss_fn():
        return reverse_kl(
            student, teacher.log_prob, num_samples, stick_the_landing=stick_the_landing
        )

    return minimize(
        loss_fn, variables, steps=steps, learning_rate=learning_rate, jit_compile=jit_compile
    )
