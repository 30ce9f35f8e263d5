"""The models' count of skipped training steps, and the callback that stops `fit` on too many."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfp_flows.train import SKIP_CAUSES, NonFiniteLossError

__all__ = ["SkipLimit", "SkippedSteps", "skip_message"]


class SkippedSteps(keras.metrics.Metric):
    """Training steps whose update was skipped because a value was NaN or inf.

    Every training step of `DensityModel` and `VariationalModel` checks its loss, its gradients
    and the weights it would update, and applies the update only if all are finite (as
    loss-scaling optimizers do), inside the compiled step: so it holds under XLA, with
    `steps_per_execution > 1` and, the decision being all-reduced, on every replica. `result()`
    is this epoch's count (logged as `skipped_steps`, in training logs only); `consecutive`
    counts the skips since the last applied update and `cause` holds the bits (1 loss,
    2 gradient, 4 weights) of the last skip; neither is reset between epochs.
    """

    def __init__(self, name: str = "skipped_steps", **kwargs):
        super().__init__(name=name, **kwargs)
        # Every replica makes the same decision: read the first replica's count.
        add = lambda n: self.add_variable(  # noqa: E731
            (), "zeros", dtype="int32", aggregation="only_first_replica", name=n
        )
        self.count, self.consecutive, self.cause = add("count"), add("consecutive"), add("cause")

    def update_state(self, finite):
        """`finite`: bool `[3]`, whether the loss, the gradients and the weights were finite."""
        ok = tf.reduce_all(finite)
        bits = tf.reduce_sum(tf.cast(~finite, tf.int32) * tf.constant([1, 2, 4]))
        self.count.assign_add(tf.cast(~ok, tf.int32))
        self.consecutive.assign(tf.where(ok, 0, self.consecutive + 1))
        self.cause.assign(tf.where(ok, self.cause, bits))

    def result(self):
        return tf.identity(self.count)

    def reset_state(self):
        self.count.assign(0)

    def causes(self) -> list[str]:
        """The names of what was not finite at the last skipped step."""
        bits = int(self.cause.numpy())
        return [name for i, name in enumerate(SKIP_CAUSES) if bits & (1 << i)]


def skip_message(causes: list[str], skipped: int, epoch: int, batch: int, hint: str) -> str:
    """Why `fit` stopped after `skipped` consecutive skipped steps, ending in `hint`."""
    what = " and ".join(causes) or "loss"
    text = (
        f"{skipped} consecutive training steps were skipped, the last at epoch {epoch + 1}, "
        f"batch {batch + 1}: the {what} {'were' if len(causes) > 1 else 'was'} NaN or inf, "
        "so no update was applied and the weights and optimizer state are those from before "
        "the first skipped step. "
    )
    if "weights" in causes:
        return text + (
            "The model's weights already held NaN or inf (set outside training?): restore "
            "them from a checkpoint."
        )
    return text + hint


class SkipLimit(keras.callbacks.Callback):
    """Stops `fit` with `NonFiniteLossError` after `limit` consecutive skipped steps.

    The model's `fit` adds it; the message ends with the model's `_skip_hint(loss)`, a likely
    cause (`loss`: whether the loss itself was not finite, rather than a gradient).
    """

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def on_train_begin(self, logs=None):
        self.model.skipped_steps.consecutive.assign(0)  # counted within one `fit`

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        metric = self.model.skipped_steps
        skipped = int(metric.consecutive.numpy())
        if skipped >= self.limit:
            self.model.stop_training = True
            causes = metric.causes()
            hint = self.model._skip_hint("loss" in causes)
            raise NonFiniteLossError(skip_message(causes, skipped, self.epoch, batch, hint))
