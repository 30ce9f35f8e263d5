"""The one training loop: a compiled, guarded step, a wall-clock budget and a schedule that fits it.

`minimize(loss_fn, variables, ...)` serves `tfp_flows.vi.fit`, `tfp_flows.vi.distill` and any
custom objective. Each step computes the loss and its gradients and applies the update through
`guarded_apply`, so a step whose loss, gradients or weights are NaN or inf changes nothing;
`max_skipped_steps` such steps in a row raise `NonFiniteLossError` naming what was not finite.
The step is compiled (XLA by default) into a loop that runs as many steps per call as fill
about 50 ms (`tfp_flows.train.steps`), so no Python work is done per step. When the run ends,
what its step graphs left in TF's and TFP's global registries is removed (`train.traces`), so
a finished run's graphs, and the flows they captured, can be freed.

The learning rate follows the run's *progress* `t` in `[0, 1]`: the larger of the fraction of
`num_steps` taken and the fraction of `time_budget_s` spent after the first (compiling) step.
So a run that the budget stops still ends at the end of its schedule, which a step-indexed
decay (Keras' `CosineDecay(lr, decay_steps)`) cannot do without knowing the step count ahead:

    cosine:    lr(t) = lr0 * (1 + cos(pi * t)) / 2
    constant:  lr(t) = lr0
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.train.guard import SKIP_CAUSES, NonFiniteLossError
from tfp_flows.train.steps import MAX_STEPS_PER_CALL, make_steps, steps_for_call
from tfp_flows.train.traces import StepTraces

__all__ = ["SCHEDULES", "TrainResult", "minimize"]

SCHEDULES = {
    "cosine": lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))),
    "constant": lambda t: 1.0,
}


@dataclasses.dataclass
class TrainResult:
    """What a training run did.

    Attributes:
      losses: the loss at every step taken, shape `[steps]` (NaN or inf where a step was skipped).
      steps: the number of steps taken.
      elapsed_s: wall-clock seconds, tracing and compilation included.
      stopped_by: `"num_steps"` or `"time_budget"`.
      skipped_steps: steps whose update was skipped (a non-finite loss, gradient or weight).
      first_step_s: seconds to the end of the first step (tracing and compilation included).
    """

    losses: np.ndarray
    steps: int
    elapsed_s: float
    stopped_by: str
    skipped_steps: int = 0
    first_step_s: float = 0.0


def _check_args(variables, num_steps, time_budget_s, report_every, schedule):
    variables = list(variables)
    if not variables:
        raise ValueError("`variables` is empty: nothing to train.")
    num_steps = check.integer(num_steps, "num_steps", allow_none=True)
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"`time_budget_s` must be positive or None; got {time_budget_s}.")
    if num_steps is None and time_budget_s is None:
        raise ValueError("Pass `num_steps`, `time_budget_s` or both: the loop needs an end.")
    if report_every is not None and not report_every > 0:
        raise ValueError(f"`report_every` must be positive seconds or None; got {report_every}.")
    if schedule is not None and schedule not in SCHEDULES:
        raise ValueError(
            f"`schedule` must be one of {sorted(SCHEDULES)} or None; got {schedule!r}."
        )
    return variables, num_steps


class _Progress:
    """The loop's clock, its schedule position and its progress lines."""

    def __init__(self, num_steps, time_budget_s, report_every, print_fn, label):
        self.num_steps, self.budget, self.every = num_steps, time_budget_s, report_every
        self.print_fn, self.label = print_fn, label
        self.start = time.perf_counter()
        self.first_step_s = self.last_line = 0.0
        self.recent = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def fraction(self, steps_done: int, ahead_s: float = 0.0) -> float:
        """The run's progress `t` in `[0, 1]`: by steps, or by time after the first step
        (`ahead_s` seconds from now)."""
        t = steps_done / self.num_steps if self.num_steps else 0.0
        if self.budget is not None and self.first_step_s:
            usable = max(self.budget - self.first_step_s, 1e-9)
            t = max(t, (self.elapsed() + ahead_s - self.first_step_s) / usable)
        return min(t, 1.0)

    def left(self, steps_done: int) -> tuple[int | None, float | None]:
        """The steps and seconds left to the run."""
        steps = None if self.num_steps is None else self.num_steps - steps_done
        seconds = None if self.budget is None else self.budget - self.elapsed()
        return steps, seconds

    def done(self, steps_done: int) -> str | None:
        if self.num_steps is not None and steps_done >= self.num_steps:
            return "num_steps"
        if self.budget is not None and self.elapsed() >= self.budget:
            return "time_budget"
        return None

    def report(self, steps_done: int, loss: float, lr: float) -> None:
        elapsed = self.elapsed()
        self.first_step_s = self.first_step_s or elapsed
        self.recent.append(loss)
        if self.every is None or (elapsed - self.last_line < self.every and steps_done > 1):
            return
        of = f"/{self.num_steps}" if self.num_steps else ""
        budget = f"/{self.budget:g}" if self.budget is not None else ""
        self.print_fn(
            f"{self.label}: step {steps_done:>7d}{of}  loss {np.nanmean(self.recent):11.4f} "
            f"(mean of {len(self.recent)})  lr {lr:.2e}  {elapsed:6.1f}{budget} s"
        )
        self.last_line, self.recent = elapsed, []


def minimize(
    loss_fn: Callable[..., tf.Tensor],
    variables,
    *,
    num_steps: int | None = None,
    time_budget_s: float | None = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    learning_rate: float = 1e-3,
    schedule: str | None = "cosine",
    max_skipped_steps: int = 3,
    jit_compile: bool = True,
    steps_per_call: int | None = None,
    report_every: float | None = None,
    print_fn: Callable[[str], None] = print,
    label: str = "minimize",
) -> TrainResult:
    """Minimises `loss_fn` over `variables` until `num_steps` steps or `time_budget_s` seconds.

    Args:
      loss_fn: returns a scalar loss; called with no argument, or with the step number (an
        int32 scalar tensor, e.g. for stateless seeds) if it takes a positional argument. Draw
        minibatches or samples inside it. Static errors (bad data or target shapes) raise when
        the step is traced, before any update.
      variables: what to train (e.g. `flow.trainable_variables`).
      num_steps: the most steps to take (`None`: no limit; then `time_budget_s` ends the run).
      time_budget_s: stop once this many wall-clock seconds have passed, compilation included
        (at least one step runs; calls are sized to end within the budget).
      optimizer: a Keras 3 optimizer; default `keras.optimizers.Adam(learning_rate)`.
      learning_rate: the peak learning rate (the default optimizer's, or the one assigned to
        `optimizer`'s learning-rate variable by the schedule).
      schedule: `"cosine"` (decay to 0 over the run's progress, steps or time), `"constant"`;
        `None` leaves the optimizer's own learning rate (a Keras schedule, say) alone.
      max_skipped_steps: raise `NonFiniteLossError` after this many skipped steps in a row
        (after the compiled call that reached it; a skipped step never changes a variable).
      jit_compile: compile the step with XLA.
      steps_per_call: most steps per compiled call (`None`: ~50 ms' worth, at most 64).
      report_every: seconds between progress lines (step, mean loss, learning rate, time) and
        the summary line at the end; `None` for silence.
      print_fn, label: where progress lines go, and their prefix.

    Returns:
      A `TrainResult`.
    """
    variables, num_steps = _check_args(variables, num_steps, time_budget_s, report_every, schedule)
    optimizer = optimizer or keras.optimizers.Adam(learning_rate)
    if not isinstance(optimizer._learning_rate, keras.Variable):
        schedule = None  # a Keras LearningRateSchedule drives the rate
    optimizer.build(variables)
    limits = check.integer(max_skipped_steps, "max_skipped_steps"), _steps_per_call(steps_per_call)
    clock = _Progress(num_steps, time_budget_s, report_every, print_fn, label)
    rate = (lambda t: learning_rate * SCHEDULES[schedule](t)) if schedule else None
    with StepTraces() as traces:  # the run's step graphs, let go when it ends (`train.traces`)
        step = make_steps(loss_fn, variables, optimizer, jit_compile, traces)
        losses, skipped, stopped_by = _run(step, clock, rate, optimizer, *limits)
    result = TrainResult(
        np.asarray(losses), len(losses), clock.elapsed(), stopped_by, skipped, clock.first_step_s
    )
    if report_every is not None:
        _summary(result, time_budget_s, print_fn, label)
    return result


def _steps_per_call(steps_per_call) -> int:
    most = check.integer(steps_per_call, "steps_per_call", allow_none=True) or MAX_STEPS_PER_CALL
    if most > MAX_STEPS_PER_CALL:
        raise ValueError(f"`steps_per_call` must be <= {MAX_STEPS_PER_CALL}; got {most}.")
    return most


def _run(step, clock, rate, optimizer, max_skipped_steps, most):
    """Calls the compiled `step` (several steps a call once one step's time is known) until
    `clock` says done; `rate(t)` sets each step's learning rate (`None`: left alone)."""
    losses, skipped, consecutive, stopped_by, step_s = [], 0, 0, None, None
    while stopped_by is None:
        done = len(losses)
        count = min(steps_for_call(step_s, *clock.left(done)), most)
        lrs = np.full([MAX_STEPS_PER_CALL], -1.0, np.float32)
        if rate:
            ahead = [k * (step_s or 0.0) for k in range(count)]
            lrs[:count] = [rate(clock.fraction(done + k, a)) for k, a in enumerate(ahead)]
        started = time.perf_counter()
        call_losses, call_finite = step(
            tf.constant(done, tf.int32), tf.constant(count), tf.constant(lrs)
        )
        call_losses, call_finite = call_losses.numpy()[:count], call_finite.numpy()[:count]
        if done:  # the first call compiles: its time is not a step's
            step_s = (time.perf_counter() - started) / count
        own_lr = None if rate else float(optimizer.learning_rate)  # one read per call
        for k in range(count):
            losses.append(float(call_losses[k]))
            ok = bool(np.all(call_finite[k]))
            skipped, consecutive = skipped + (not ok), 0 if ok else consecutive + 1
            if consecutive >= max_skipped_steps:
                raise _non_finite_error(call_finite[k], len(losses), consecutive)
            lr = float(lrs[k]) if rate else own_lr
            clock.report(len(losses), losses[-1], lr)
        stopped_by = clock.done(len(losses))
    return losses, skipped, stopped_by


def _non_finite_error(finite, step: int, consecutive: int) -> NonFiniteLossError:
    causes = [name for name, ok in zip(SKIP_CAUSES, finite) if not ok]
    what = " and ".join(causes)
    return NonFiniteLossError(
        f"{consecutive} consecutive steps were skipped, the last at step {step}: the {what} "
        f"{'were' if len(causes) > 1 else 'was'} NaN or inf, so no update was applied. Check "
        "the loss where it is evaluated (the target's support, the data) or lower the learning "
        "rate.",
        finding=causes,
        step=step,
    )


def _summary(result: TrainResult, time_budget_s, print_fn, label) -> None:
    why = (
        f"time budget of {time_budget_s:g} s reached"
        if result.stopped_by == "time_budget"
        else "done"
    )
    skipped = f"; {result.skipped_steps} non-finite steps skipped" if result.skipped_steps else ""
    print_fn(
        f"{label}: {why} after {result.steps} steps in {result.elapsed_s:.1f} s; final loss "
        f"{result.losses[-1]:.4f}{skipped}"
    )
