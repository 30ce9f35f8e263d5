"""The compiled training step, run up to `MAX_STEPS_PER_CALL` times in one call.

A Python loop that calls a compiled step once per step pays, every step, for the call, for
converting its arguments and for reading its results back. For the small flows of VI and
density fitting that costs more than the step: on 2 loaded cores, `vi.fit`'s default step
(a 2-D Real NVP, stick-the-landing) took 11.8 ms from such a loop and 3.7 ms as part of a call of
many (2.75x), an 8-layer MAF's maximum-likelihood step 10.1 vs 3.4 ms (2.97x;
`benchmarks/loop_overhead.md`). So `make_steps` compiles the step into a loop whose trip count
is an argument (one trace for every count), and `minimize` sizes each call to about
`TARGET_CALL_S` of work.

Each step of a call has its own learning rate (given as a vector: exact for a step-indexed
schedule, predicted from the measured step time for a budget-indexed one) and its own loss and
finiteness flags (returned as vectors), so a call of `k` steps does what `k` calls of one step
did; only the clock is read less often.
"""

from __future__ import annotations

import inspect

import keras
import tensorflow as tf

from tfp_flows.train.guard import guarded_apply

__all__ = ["MAX_STEPS_PER_CALL", "TARGET_CALL_S", "make_steps", "steps_for_call"]

MAX_STEPS_PER_CALL = 64  # the length of the per-step vectors a call takes and returns
TARGET_CALL_S = 0.05  # about this much work per call: the clock is read 20 times a second


def _takes_step(fn) -> bool:
    """Whether `fn` has a required positional parameter (then it gets the step number)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in kinds and p.default is inspect.Parameter.empty for p in params)


def make_steps(loss_fn, variables, optimizer, jit_compile: bool, traces=None):
    """The compiled `(start, count, lrs) -> (losses [M], finite [M, 3])`, `M` the maximum.

    Runs steps `start, ..., start + count - 1`; step `start + k` uses learning rate `lrs[k]`
    (`< 0`: the optimizer's own). Entries past `count` are NaN / False. `traces` (a
    `StepTraces`) records the graphs it is traced in, for `release()` once the run is over.
    """
    call = (lambda i: loss_fn(i)) if _takes_step(loss_fn) else (lambda i: loss_fn())
    owns_rate = isinstance(optimizer._learning_rate, keras.Variable)
    size = MAX_STEPS_PER_CALL

    def one(i, lr):
        if owns_rate:
            optimizer.learning_rate.assign(tf.where(lr < 0, optimizer.learning_rate, lr))
        with tf.GradientTape() as tape:
            loss = tf.convert_to_tensor(call(i))
        grads = tape.gradient(loss, variables)
        return loss, guarded_apply(optimizer, loss, grads, variables)

    @tf.function(jit_compile=jit_compile, autograph=False)
    def steps(start, count, lrs):
        if traces is not None:
            traces.note()

        def body(k, losses, flags):
            loss, finite = one(start + k, lrs[k])
            at = tf.reshape(k, [1, 1])
            losses = tf.tensor_scatter_nd_update(
                losses, at, tf.reshape(tf.cast(loss, tf.float64), [1])
            )
            flags = tf.tensor_scatter_nd_update(flags, at, tf.reshape(finite, [1, 3]))
            return k + 1, losses, flags

        init = (tf.constant(0), tf.fill([size], tf.constant(float("nan"), tf.float64)))
        init += (tf.zeros([size, 3], tf.bool),)
        _, losses, flags = tf.while_loop(lambda k, *_: k < count, body, init)
        return losses, flags

    return steps


def steps_for_call(step_s: float | None, steps_left: int | None, seconds_left: float | None) -> int:
    """How many steps the next call runs: about `TARGET_CALL_S` of them at `step_s` seconds a
    step (1 while no step time is measured), no more than the steps or (about) the seconds left."""
    if not step_s:
        return 1
    count = int(TARGET_CALL_S / step_s)
    if seconds_left is not None:
        count = min(count, int(seconds_left / step_s))
    if steps_left is not None:
        count = min(count, steps_left)
    return max(1, min(count, MAX_STEPS_PER_CALL))
