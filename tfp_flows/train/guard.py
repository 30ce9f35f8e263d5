"""The guarded update: the one place where every training loop of the package applies an update.

`guarded_apply` is the one place where an optimizer update is applied: it checks the loss, the
gradients and the weights it would update, and applies the update only if all are finite (as
loss-scaling optimizers do), inside the compiled step, so it holds under XLA and, the decision
being all-reduced, on every replica of a `tf.distribute` strategy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["SKIP_CAUSES", "NonFiniteLossError", "all_finite", "guarded_apply", "in_replica"]

# What the flags of `guarded_apply` (and a skipped step's cause bits 1, 2, 4) stand for.
SKIP_CAUSES = ("loss", "gradient", "weights")


class NonFiniteLossError(FloatingPointError):
    """Training met NaN or inf: raised after `max_skipped_steps` consecutive skipped steps, and
    by `tfp_flows.diagnostics.StopOnNonFinite` at the first one."""

    def __init__(self, message: str, finding=None, step: int = 0):
        super().__init__(message)
        self.finding = finding
        self.step = step


def all_finite(tensors) -> tf.Tensor:
    """A scalar bool: whether every tensor in `tensors` (`None`s ignored) is free of NaN and inf."""
    flags = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors if t is not None]
    return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)


def in_replica() -> bool:
    """Whether this runs in one replica of several (under a `tf.distribute` strategy)."""
    ctx = tf.distribute.get_replica_context()
    return ctx is not None and ctx.num_replicas_in_sync > 1


def _read(variable):
    """The tensor a Keras variable holds (`.value`), or a `tf.Variable` itself."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _apply_if(ok, optimizer, grads, variables) -> None:
    """`optimizer.apply(grads, variables)` if `ok` (the same on every replica), else nothing."""
    if tf.distribute.has_strategy() and not (
        tf.__internal__.distribute.strategy_supports_no_merge_call()
    ):
        # Under a strategy the optimizer calls `merge_call`, which a `tf.cond` branch in a
        # replica context may not: branch in the cross-replica context instead (as Keras'
        # LossScaleOptimizer does).
        def cross_replica(strategy, ok, grads):
            def apply():
                strategy.extended.call_for_each_replica(optimizer.apply, args=(grads, variables))

            tf.cond(strategy.experimental_local_results(ok)[0], apply, lambda: None)

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(ok, grads))
    else:
        tf.cond(ok, lambda: optimizer.apply(grads, variables), lambda: None)


def guarded_apply(optimizer, loss, grads, variables) -> tf.Tensor:
    """Applies `grads` to `variables` (Keras 3 variables, or the `tf.Variable`s a flow's
    `trainable_variables` lists) with `optimizer` unless the loss, a gradient or a weight is NaN
    or inf.

    Returns bool `[3]`: whether the loss, the gradients and the weights were finite (the same on
    every replica: one replica's NaN skips the step on all). The update was applied iff all are.
    """
    finite = tf.stack(
        [all_finite([loss]), all_finite(grads), all_finite([_read(v) for v in variables])]
    )
    if in_replica():
        ctx = tf.distribute.get_replica_context()
        bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(~finite, tf.float32))
        finite = tf.equal(bad, 0.0)
    _apply_if(tf.reduce_all(finite), optimizer, grads, variables)
    return finite
