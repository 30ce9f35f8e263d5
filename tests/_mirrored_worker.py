"""Runs `MirroredStrategy` scenarios in a fresh interpreter and prints their figures as JSON.

Logical devices must be configured before TensorFlow initialises its devices, so this runs as a
subprocess of `tests/test_distributed.py`: `python tests/_mirrored_worker.py SCENARIO ...`.
Each scenario compares two replicas (two logical CPU devices) with one device on the same global
batches and reports the largest absolute differences.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from tfp_flows.bijectors import ActNorm
from tfp_flows.flows import flow_bijectors
from tfp_flows.keras import DensityModel

STRATEGY = None  # set by `_setup`, in the subprocess only (pytest imports this for doctests)


def _setup() -> None:
    """Two logical CPU devices (before TF initialises them) and one strategy over both.

    One strategy for the process: several MirroredStrategy objects in one process can hand out
    clashing collective instance keys.
    """
    global STRATEGY
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


FLOWS = {
    "maf": ({"dim": 3, "num_layers": 2, "hidden_units": [16]}, [3]),
    "real_nvp": ({"event_shape": [3], "num_layers": 3, "hidden_units": [16]}, [3]),
    "glow": (
        {"image_shape": [8, 8, 1], "levels": 2, "steps_per_level": 2, "filters": 8},
        [8, 8, 1],
    ),
}


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def actnorm_uneven() -> dict:
    """ActNorm initialised from replica batches of 5 and 11 equals one device on all 16."""
    strategy = STRATEGY
    rng = np.random.default_rng(0)
    # A large mean and small spread: the centred second pass matters here.
    data = (rng.normal(size=[16, 4, 4, 3]) * [0.5, 3.0, 1.0] + [50.0, -7.0, 0.0]).astype("f4")
    parts = [data[:5], data[5:]]
    single = ActNorm(3)
    single.inverse(tf.constant(data))
    out = {}
    for mode in ("function", "eager"):
        with strategy.scope():
            bij = ActNorm(3)
        values = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(parts[ctx.replica_id_in_sync_group])
        )
        fn = tf.function(bij.inverse) if mode == "function" else bij.inverse
        strategy.run(fn, args=(values,))
        shifts = [v.numpy() for v in strategy.experimental_local_results(bij.shift)]
        scales = [v.numpy() for v in strategy.experimental_local_results(bij.log_scale)]
        flags = [bool(v.numpy()) for v in strategy.experimental_local_results(bij.initialized)]
        # What averaging the two replicas' means would give (the pitfall): far from the truth.
        mean_of_means = np.mean([p.mean(axis=(0, 1, 2)) for p in parts], axis=0)
        out[mode] = {
            "flags": flags,
            "shift_diff": max(_max_diff(s, single.shift) for s in shifts),
            "log_scale_diff": max(_max_diff(s, single.log_scale) for s in scales),
            "replicas_equal": bool(
                np.array_equal(shifts[0], shifts[1]) and np.array_equal(scales[0], scales[1])
            ),
            "mean_of_means_diff": _max_diff(mean_of_means, single.shift),
        }
    return out


def _make(flow: str, optimizer: str) -> DensityModel:
    keras.utils.set_random_seed(0)
    model = DensityModel(flow, FLOWS[flow][0])
    lr = 0.005 if flow == "glow" else 0.05  # Glow's NLL is ~100x larger: a smaller step
    opt = {
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(1e-2),
    }[optimizer]()
    model.compile(optimizer=opt)
    return model


def fit(flow: str, optimizer: str = "sgd", rows: int = 89, batch: int = 32) -> dict:
    """Trains one epoch on one device and on two replicas from the same weights and batches.

    89 rows in batches of 32: steps of 32, 32 and 25 examples, the last split 13/12 over the
    replicas, so unequal replica batches are covered.
    """
    rng = np.random.default_rng(1)
    x = (rng.normal(size=[rows, *FLOWS[flow][1]]) * 2.0 + 1.0).astype("float32")
    single = _make(flow, optimizer)
    initial = [v.numpy() for v in single.weights]
    single_hist = single.fit(x, batch_size=batch, epochs=2, shuffle=False, verbose=0)
    strategy = STRATEGY
    with strategy.scope():
        dist = _make(flow, optimizer)
    for variable, value in zip(dist.weights, initial, strict=True):
        variable.assign(value)
    dist_hist = dist.fit(x, batch_size=batch, epochs=2, shuffle=False, verbose=0)
    actnorms = [b for b in flow_bijectors(dist.flow) if isinstance(b, ActNorm)]
    actnorm = {id(v) for b in actnorms for v in b.keras_variables}
    pairs = list(zip(single.weights, dist.weights, strict=True))
    diffs = [_max_diff(v.numpy(), w.numpy()) for v, w in pairs]
    is_actnorm = [id(w) in actnorm for _, w in pairs]
    sizes = [max(1.0, float(np.max(np.abs(v.numpy().astype("f8"))))) for v, _ in pairs]
    floats = [(v, w) for v, w in zip(single.weights, initial) if v.dtype != "bool"]
    moved = max(_max_diff(v.numpy(), w) for v, w in floats)
    reordered = reordered_nll = None
    if optimizer == "adam":
        # The float tolerance of Adam itself: one device, each batch's rows in reverse order
        # (the same mean gradient, summed in another order).
        x_rev = np.concatenate([x[i : i + batch][::-1] for i in range(0, rows, batch)])
        other = _make(flow, optimizer)
        for variable, value in zip(other.weights, initial, strict=True):
            variable.assign(value)
        reordered_nll = other.fit(
            x_rev, batch_size=batch, epochs=2, shuffle=False, verbose=0
        ).history["nll"]
        pairs = zip(single.weights, other.weights, strict=True)
        reordered = max(_max_diff(v.numpy(), w.numpy()) for v, w in pairs)
    return {
        "num_replicas": strategy.num_replicas_in_sync,
        "variable_type": type(dist.trainable_variables[0].value).__name__,
        "single_nll": single_hist.history["nll"],
        "dist_nll": dist_hist.history["nll"],
        "max_weight_diff": max(diffs),
        # Relative to the weights' size (at least 1): float32 rounding scales with it.
        "max_relative_weight_diff": max(d / size for d, size in zip(diffs, sizes)),
        "max_actnorm_diff": max((d for d, a in zip(diffs, is_actnorm) if a), default=None),
        "num_actnorm_variables": sum(is_actnorm),
        "max_weight_change": moved,
        "single_reordered_max_weight_diff": reordered,
        "single_reordered_nll": reordered_nll,
        "iterations": int(dist.optimizer.iterations.numpy()),
    }


def vi_refused() -> dict:
    """VariationalModel refuses several replicas with a clear error (not a silent 2x step)."""
    from tfp_flows.keras import VariationalModel

    with STRATEGY.scope():
        model = VariationalModel(
            "iaf",
            {"dim": 2, "num_layers": 1, "hidden_units": [8]},
            target_log_prob_fn=lambda z: -0.5 * tf.reduce_sum(z**2, -1),
            num_samples=8,
        )
        model.compile(optimizer="sgd")
    try:
        model.fit(steps_per_epoch=1, epochs=1, verbose=0)
    except ValueError as e:
        return {"error": str(e)}
    return {"error": None}


def guard() -> dict:
    """StopOnNonFinite on two replicas: restores weights and Adam state on both, then resumes."""
    from tfp_flows.diagnostics import NonFiniteLossError, StopOnNonFinite

    x = np.random.default_rng(2).normal(size=[256, *FLOWS["maf"][1]]).astype("float32")
    with STRATEGY.scope():
        model = _make("maf", "adam")
    recorded = {}

    class Poison(keras.callbacks.Callback):
        count = 0

        def on_train_batch_end(self, batch, logs=None):
            self.count += 1
            if self.count == 3:  # the state step 4 (the last finite one) starts from
                recorded["weights"] = [v.numpy() for v in model.weights]
                recorded["optimizer"] = [v.numpy() for v in model.optimizer.variables]
            if self.count == 4:  # step 5 sees a NaN kernel on every replica
                kernel = model.trainable_variables[0]
                kernel.assign(tf.fill(kernel.shape, float("nan")))

    message = step = None
    try:
        model.fit(
            x, batch_size=32, shuffle=False, verbose=0, callbacks=[Poison(), StopOnNonFinite()]
        )
    except NonFiniteLossError as error:
        message, step = str(error), error.step

    def max_diff(variables, values):
        return max(
            _max_diff(local.numpy(), value)
            for v, value in zip(variables, values, strict=True)
            for local in STRATEGY.experimental_local_results(getattr(v, "value", v))
        )

    weight_diff = max_diff(model.weights, recorded["weights"])
    optimizer_diff = max_diff(model.optimizer.variables, recorded["optimizer"])
    iterations = int(model.optimizer.iterations.numpy())
    resumed = model.fit(x, batch_size=32, shuffle=False, verbose=0).history["nll"]
    return {
        "message": message,
        "step": step,
        "max_weight_diff": weight_diff,
        "max_optimizer_diff": optimizer_diff,
        "iterations": iterations,
        "resumed_nll": resumed,
    }


def skip() -> dict:
    """No callback: the step itself skips non-finite updates on both replicas, and fit stops.

    One replica's half of each global batch overflows float32 arithmetic (1e20), the other's is
    ordinary data: the decision to skip must be taken for both together.
    """
    from tfp_flows.keras import NonFiniteLossError

    rng = np.random.default_rng(3)
    x = rng.normal(size=[128, *FLOWS["maf"][1]]).astype("float32")
    x[::32][:, 0] = 1e20  # the first row of each global batch of 32: replica 0's share
    with STRATEGY.scope():
        model = _make("maf", "adam")
    # The first fit's one batch of 31 splits 16/15 over the replicas (Keras' own build of the
    # model from the first batch fails on that; the models skip it).
    model.fit(rng.normal(size=x[:31].shape).astype("float32"), batch_size=31, verbose=0)
    before = [
        [v.numpy() for v in STRATEGY.experimental_local_results(w.value)] for w in model.weights
    ]
    optimizer = [v.numpy() for v in model.optimizer.variables]
    message = None
    try:
        model.fit(x, batch_size=32, shuffle=False, verbose=0)
    except NonFiniteLossError as error:
        message = str(error)
    after = [
        [v.numpy() for v in STRATEGY.experimental_local_results(w.value)] for w in model.weights
    ]
    return {
        "message": message,
        "max_weight_diff": max(
            _max_diff(a, b) for w0, w1 in zip(before, after, strict=True) for a, b in zip(w0, w1)
        ),
        "max_optimizer_diff": max(
            _max_diff(a, v.numpy()) for a, v in zip(optimizer, model.optimizer.variables)
        ),
        "skipped": int(model.skipped_steps.consecutive.numpy()),
    }


def record() -> dict:
    """The step record on two replicas: the global batch, both shares in order, also when a
    batch splits unevenly (16 + 15) and holds values whose float32 sum would overflow."""
    x = np.random.default_rng(4).normal(size=[63, *FLOWS["maf"][1]]).astype("float32")
    x[40, 0] = 3.0e38  # in the second batch: its step is skipped, and recorded exactly
    with STRATEGY.scope():
        model = _make("maf", "adam")
    model.record_steps = True
    seen = []

    class Keep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(model.step_record["x"].numpy())

    model.fit(x, batch_size=32, shuffle=False, verbose=0, callbacks=[Keep()])
    batches = [x[:32], x[32:]]
    return {
        "shapes": [list(s.shape) for s in seen],
        "dtypes": [str(s.dtype) for s in seen],
        "equal": [bool(np.array_equal(s, b)) for s, b in zip(seen, batches)],
        "skipped": int(model.skipped_steps.result().numpy()),
    }


SCENARIOS = {
    "actnorm_uneven": actnorm_uneven,
    "vi_refused": vi_refused,
    "guard": guard,
    "skip": skip,
    "record": record,
}

if __name__ == "__main__":
    _setup()
    results = {}
    for arg in sys.argv[1:]:
        name, _, opt = arg.partition(":")
        results[arg] = SCENARIOS[name]() if name in SCENARIOS else fit(name, opt or "sgd")
    print("RESULTS " + json.dumps(results))
