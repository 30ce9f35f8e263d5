"""Reverse-KL fitting on the one training loop: `fit` (a surrogate to a posterior) and `distill`.

Both minimise `KL(q || p) - log Z = E_q[log q(z) - log p~(z)]` (`tfp_flows.losses.reverse_kl`)
with `tfp_flows.train.minimize`: compiled, guarded steps, a wall-clock budget and a cosine
learning-rate decay that follows it.

`fit`'s defaults are measured (`benchmarks/vi_defaults.md`): a two-minute wall-clock budget
(not a step count) that a cosine learning-rate decay spans, so a run always ends at the end of
its schedule; Adam at a peak rate of 3e-3; 256 samples a step; and the stick-the-landing
gradient, which vanishes at `q = p` instead of adding noise there. On Real NVP surrogates, on a
2-core CPU, they left KL(q || p) at 0.019 nats (median of 3 seeds) on a 31-coefficient Bayesian
logistic regression (best of five tuned minutes: 0.018) and 0.0010 nats (median of 5 seeds;
one seed stuck at 0.011) on the 2-D energy U1 (best: 0.0006).
"""

from __future__ import annotations

import collections.abc
from collections.abc import Callable

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows import train
from tfp_flows.losses import reverse_kl

tfd = tfp.distributions

__all__ = ["FitResult", "call_target", "distill", "fit"]

FitResult = train.TrainResult  # what `fit` returns: losses, steps, elapsed_s, stopped_by, ...


def call_target(target_log_prob_fn: Callable, z):
    """Calls `target_log_prob_fn` on `z` as `tfp.vi` does: `*z` for lists, `**z` for dicts."""
    if isinstance(z, collections.abc.Mapping):
        return target_log_prob_fn(**z)
    if isinstance(z, list | tuple) and not hasattr(z, "_fields"):
        return target_log_prob_fn(*z)
    return target_log_prob_fn(z)


def _check_fit_args(surrogate, target_log_prob_fn, sample_size, trainable_variables) -> tuple:
    """Raises unless the arguments make sense; returns the variables to train."""
    # Duck-typed: TFP's own surrogate builders return `DeferredModule`s that act as distributions.
    if not all(hasattr(surrogate, a) for a in ("log_prob", "sample", "trainable_variables")):
        raise TypeError(
            "`surrogate` must be a distribution with trainable variables (e.g. from "
            f"`flow_surrogate_posterior(model)`); got a {type(surrogate).__name__}."
        )
    if not callable(target_log_prob_fn):
        raise TypeError(
            "`target_log_prob_fn` must be callable (e.g. a pinned model's "
            f"`unnormalized_log_prob`); got a {type(target_log_prob_fn).__name__}."
        )
    if int(sample_size) < 1:
        raise ValueError(f"`sample_size` must be >= 1; got {sample_size}.")
    variables = tuple(
        surrogate.trainable_variables if trainable_variables is None else trainable_variables
    )
    if not variables:
        raise ValueError("The surrogate has no trainable variables to fit.")
    return variables


def _negative_elbo(surrogate, target_log_prob_fn, sample_size, seed, stick_the_landing):
    """The loss of step `step`: `reverse_kl` with a stateless seed from `seed` and `step`."""
    base_seed = tf.constant([int(seed), 0], tf.int32)

    def loss(step):
        return reverse_kl(
            surrogate,
            lambda z: call_target(target_log_prob_fn, z),
            sample_size,
            seed=tf.random.experimental.stateless_fold_in(base_seed, step),
            stick_the_landing=stick_the_landing,
        )

    return loss


def fit(
    surrogate: tfd.Distribution,
    target_log_prob_fn: Callable,
    *,
    time_budget_s: float | None = 120.0,
    num_steps: int | None = None,
    learning_rate: float = 3e-3,
    schedule: str | None = "cosine",
    sample_size: int = 256,
    stick_the_landing: bool = True,
    optimizer: keras.optimizers.Optimizer | None = None,
    seed: int = 0,
    jit_compile: bool = True,
    report_every: float | None = 10.0,
    trainable_variables=None,
    max_skipped_steps: int = 3,
    print_fn: Callable[[str], None] = print,
) -> FitResult:
    """Minimises the reverse KL `E_q[log q(z) - log p~(z)]` within a wall-clock budget.

    Reproducible: step `i` samples with a stateless seed from `(seed, i)`. A target of the
    wrong shape (one log-density per sample is needed) raises `ValueError` before any update.
    Non-finite steps are skipped; `max_skipped_steps` in a row raise `NonFiniteLossError`.

    Args:
      surrogate: the variational distribution (e.g. from `flow_surrogate_posterior`).
      target_log_prob_fn: the unnormalised log posterior, called as in `tfp.vi`.
      time_budget_s: wall-clock seconds, compilation included, that the schedule spans.
      num_steps: the most steps (`None`: until the budget is spent).
      learning_rate: the peak learning rate.
      schedule: `"cosine"` (to 0 when the run ends), `"constant"`, `None` (`optimizer`'s own).
      sample_size: Monte Carlo samples per step.
      stick_the_landing: the lower-variance gradient of Roeder et al. 2017 (`reverse_kl`).
      optimizer: a Keras optimizer; default `keras.optimizers.Adam`.
      seed: an integer seed.
      jit_compile: compile the step with XLA (faster steps, slower first step).
      report_every: seconds between progress lines (and a summary); `None`: silent.
      trainable_variables: what to optimise; default `surrogate.trainable_variables`.
      max_skipped_steps: non-finite steps in a row skipped before raising.
      print_fn: where progress lines go.

    Returns:
      A `FitResult` (`tfp_flows.train.TrainResult`): losses, steps, elapsed_s, stopped_by.
    """
    variables = _check_fit_args(surrogate, target_log_prob_fn, sample_size, trainable_variables)
    loss = _negative_elbo(surrogate, target_log_prob_fn, int(sample_size), seed, stick_the_landing)
    return train.minimize(
        loss,
        variables,
        num_steps=num_steps,
        time_budget_s=time_budget_s,
        optimizer=optimizer,
        learning_rate=learning_rate,
        schedule=schedule,
        max_skipped_steps=max_skipped_steps,
        jit_compile=jit_compile,
        report_every=report_every,
        print_fn=print_fn,
        label="fit",
    )


_DISTILL_DEFAULTS = {  # distill's defaults for `fit`'s arguments; 256 samples whatever fit's are
    "num_steps": 2000,
    "time_budget_s": None,
    "sample_size": 256,
    "learning_rate": 1e-3,
    "stick_the_landing": False,
    "report_every": None,
}


def distill(teacher: tfd.Distribution, student: tfd.Distribution, **options) -> train.TrainResult:
    """Trains `student` to match `teacher` by reverse KL, using only the teacher's `log_prob`.

    Minimises `KL(student || teacher) = E_s[log s(z) - log t(z)]` over the student's variables
    (the teacher's stay fixed), with samples from the student alone: the recipe of Parallel
    WaveNet's probability density distillation (https://arxiv.org/abs/1711.10433). The natural
    pair is a MAF teacher (density in one pass, fit to data by `forward_kl`) and an IAF student
    (sampling with its log-density in one pass).

    Args:
      teacher: a trained flow with a cheap `log_prob`.
      student: the flow to train; its `experimental_sample_and_log_prob` should be cheap.
      **options: `fit`'s keyword arguments (all but `trainable_variables`: the student's own),
        with other defaults: 2,000 steps and no time budget, 256 samples a step, a peak
        learning rate of 1e-3 (cosine-decayed to 0), the plain gradient
        (`stick_the_landing=False`) and no progress lines. `inspect.signature(distill)` lists
        them all.

    Returns:
      A `TrainResult`; its `losses` are the sampled `KL(student || teacher)` in nats.
    """
    bound = distill.__signature__.bind(teacher, student, **options)
    bound.apply_defaults()
    options = {k: v for k, v in bound.arguments.items() if k not in ("teacher", "student")}
    if teacher.event_shape != student.event_shape:
        raise ValueError(
            f"teacher and student must share an event shape; got {teacher.event_shape} and "
            f"{student.event_shape}."
        )
    teacher_variables = {id(v) for v in teacher.trainable_variables}
    variables = [v for v in student.trainable_variables if id(v) not in teacher_variables]
    # KL(student || teacher) is the reverse KL of the student to `teacher.log_prob`.
    return fit(student, teacher.log_prob, trainable_variables=variables, **options)


distill.__signature__ = check.derived_signature(
    fit, distill, drop=("trainable_variables",), defaults=_DISTILL_DEFAULTS
)
