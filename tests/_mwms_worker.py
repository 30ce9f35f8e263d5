"""One worker of a `MultiWorkerMirroredStrategy` run, for `tests/test_distributed.py`.

`TF_CONFIG` (set by the parent) names the cluster and this worker's index. Every worker builds
the same flow in the strategy scope and trains it with Keras `fit` on the same dataset, which
`tf.distribute` shards across the workers; the chief (worker 0) writes the model file and then
trains a one-device copy from the same initial weights on the same global batches, to compare.
Each worker writes `result_<index>.json` and `weights_<index>.npz` to the output directory.

Usage: python tests/_mwms_worker.py OUT_DIR FLOW EPOCHS
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from tfp_flows.keras import DensityModel

FLOWS = {
    "maf": ({"dim": 3, "num_layers": 2, "hidden_units": [16]}, [3]),
    "real_nvp": ({"event_shape": [3], "num_layers": 3, "hidden_units": [16]}, [3]),
}
ROWS, GLOBAL_BATCH = 64, 16


def _model(flow: str) -> DensityModel:
    keras.utils.set_random_seed(0)
    model = DensityModel(flow, FLOWS[flow][0])
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    return model


def _dataset(x: np.ndarray) -> tf.data.Dataset:
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy.DATA  # in-memory data: shard by element
    options.experimental_distribute.auto_shard_policy = policy
    return tf.data.Dataset.from_tensor_slices(x).batch(GLOBAL_BATCH).with_options(options)


def main(out_dir: str, flow: str, epochs: int) -> None:
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    index = int(task["index"])
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x = (np.random.default_rng(1).normal(size=[ROWS, *FLOWS[flow][1]]) * 2.0 + 1.0).astype("f4")
    with strategy.scope():
        model = _model(flow)
    initial = [v.numpy() for v in model.weights]
    history = model.fit(_dataset(x), epochs=epochs, verbose=0)
    weights = [v.numpy() for v in model.weights]
    result = {
        "index": index,
        "num_replicas": strategy.num_replicas_in_sync,
        "is_chief": index == 0,
        "nll": history.history["nll"],
        "iterations": int(model.optimizer.iterations.numpy()),
    }
    if index == 0:  # the chief alone writes the model file
        model.save(os.path.join(out_dir, "model.keras"))
        single = _model(flow)
        for variable, value in zip(single.weights, initial, strict=True):
            variable.assign(value)
        single_history = single.fit(
            x, batch_size=GLOBAL_BATCH, epochs=epochs, shuffle=False, verbose=0
        )
        result["single_nll"] = single_history.history["nll"]
        result["max_weight_diff_vs_single"] = max(
            float(np.max(np.abs(np.asarray(a, "f8") - np.asarray(b.numpy(), "f8"))))
            for a, b in zip(weights, single.weights, strict=True)
        )
        result["max_weight_change"] = max(
            float(np.max(np.abs(np.asarray(a, "f8") - np.asarray(b, "f8"))))
            for a, b in zip(weights, initial, strict=True)
            if a.dtype != bool
        )
    np.savez(os.path.join(out_dir, f"weights_{index}.npz"), *weights)
    with open(os.path.join(out_dir, f"result_{index}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
