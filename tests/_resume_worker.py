"""Training that gets killed, for `tests/test_resume.py`.

`python tests/_resume_worker.py OUT_DIR` trains a small flow with `BackupAndRestore` (a backup at
every epoch end), a `CSVLogger` and a `ModelCheckpoint` that saves every 2 batches. In epoch
`CRASH_EPOCH`, the checkpoint save after batch `CRASH_BATCH` stops half-way through writing the
file (patched to block there), writes `OUT_DIR/ready` and waits to be killed with SIGKILL: a crash
in the middle of an epoch, and in the middle of writing a model file.

The test imports this module for the same model, data and callbacks, to resume in its own process.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from tfp_flows.keras import DensityModel

EPOCHS, BATCH, ROWS = 4, 32, 128  # 4 steps per epoch
CRASH_EPOCH, CRASH_BATCH = 2, 1
FLOW = ("real_nvp", {"event_shape": [2], "num_layers": 3, "hidden_units": [16]})


def make_model() -> DensityModel:
    keras.utils.set_random_seed(0)
    model = DensityModel(*FLOW)
    # Eager steps: a few dozen of them cost less than tracing the step (same in every run).
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    return model


def data() -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.normal(size=[ROWS, 2]) * [2.0, 0.5] + [1.0, -3.0]).astype("float32")


def fit(model: DensityModel, callbacks: list) -> keras.callbacks.History:
    return model.fit(
        data(), batch_size=BATCH, epochs=EPOCHS, shuffle=False, callbacks=callbacks, verbose=0
    )


class Probe(keras.callbacks.Callback):
    """Records where training starts (after any restore) and the weights at each epoch end."""

    def __init__(self, out_dir: str):
        super().__init__()
        self.out_dir = out_dir
        self.first_epoch = None
        self.start_iterations = None
        self.start_weights = None

    def on_train_begin(self, logs=None):
        self.start_iterations = int(self.model.optimizer.iterations.numpy())
        self.start_weights = [v.numpy() for v in self.model.weights]

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.out_dir, f"weights_epoch{epoch}.npz")
        np.savez(path, *[v.numpy() for v in self.model.weights])


def callbacks(out_dir: str) -> list:
    return [
        keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup")),
        keras.callbacks.CSVLogger(os.path.join(out_dir, "history.csv"), append=True),
    ]


class _CrashWhileSaving(keras.callbacks.Callback):
    """Arms the crash: the next model file write after batch CRASH_BATCH of CRASH_EPOCH blocks."""

    armed = False

    def on_train_batch_begin(self, batch, logs=None):
        _CrashWhileSaving.armed = self.epoch == CRASH_EPOCH and batch == CRASH_BATCH

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


def _block_mid_write(out_dir: str) -> None:
    from keras.src.saving import saving_lib

    original = saving_lib._save_state

    def save_state(*args, **kwargs):
        if _CrashWhileSaving.armed:
            # The archive is open and its config written: the file on disk is partial.
            with open(os.path.join(out_dir, "ready"), "w") as f:
                json.dump({"pid": os.getpid()}, f)
            time.sleep(600)
        return original(*args, **kwargs)

    saving_lib._save_state = save_state


def main(out_dir: str) -> None:
    _block_mid_write(out_dir)
    checkpoint = keras.callbacks.ModelCheckpoint(os.path.join(out_dir, "ckpt.keras"), save_freq=2)
    fit(make_model(), [*callbacks(out_dir), _CrashWhileSaving(), checkpoint, Probe(out_dir)])
    raise SystemExit("not killed: the crash point was never reached")


if __name__ == "__main__":
    main(sys.argv[1])
