"""A continuous flow trained by flow matching, against a spline MAF, on a toy density.

`FlowMatchingModel` trains a velocity field by regression (no ODE solve, no log-det in the
loss); its `flow` is a TFP distribution whose `log_prob` solves the ODE with the exact trace.
A spline MAF (`DensityModel("maf", transformer="spline")`) trains by maximum likelihood on the
same data for the same CPU time. The script reports, for both: held-out NLL and its gap to the
data's entropy, and the time of `log_prob` and of `sample` per 1,000 points. It writes
`flow_matching.png` (the true density, the learned densities, and sample paths `x(t)` from the
base at `t = 0` to the data at `t = 1`) and `metrics.json` into `--out`.

    python examples/flow_matching.py [--set moons] [--seconds 60] [--no-jit] [--out DIR] [--smoke]

Both models train and are evaluated under XLA (`jit_compile=True`), the fast path a comparison
at equal CPU time should use. XLA's CPU compiles are memory-hungry and the process keeps what
they took: this script peaks at about 1.3 GB (each of the two XLA-compiled training steps adds
about 230-280 MB; TensorFlow alone takes 0.7 GB). `--no-jit` runs everything in plain
`tf.function`s (peak about 1.07 GB), with slower steps, so fewer of them in the budget. The
held-out and grid log-densities are computed in chunks of 1,000 and 1,800 points.

`conditional_comparison` (used by `tests/test_continuous_quality.py`) trains both flows as
`p(x | c)` on the rotated moons of `examples/conditional.py`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from tfp_flows import datasets
from tfp_flows.continuous import FlowMatchingModel
from tfp_flows.keras import DensityModel
from tfp_flows.train import SCHEDULES


class CPUBudget(keras.callbacks.Callback):
    """Stops `fit` once this process has used `seconds` of CPU time in it, with the learning
    rate on a cosine decay from `peak` to 0 over those seconds (a step-indexed decay would
    need the step count in advance, and end early or late)."""

    def __init__(self, seconds: float, peak: float):
        super().__init__()
        self.seconds, self.peak = seconds, peak

    def on_train_begin(self, logs=None):
        self.start = time.process_time()

    def on_train_batch_begin(self, batch, logs=None):
        done = min((time.process_time() - self.start) / self.seconds, 1.0)
        self.model.optimizer.learning_rate.assign(self.peak * SCHEDULES["cosine"](done))

    def on_train_batch_end(self, batch, logs=None):
        if time.process_time() - self.start > self.seconds:
            self.model.stop_training = True


LEARNING_RATE = 2e-3  # Adam's peak rate, for both models


def build(kind: str, smoke: bool, conditional_size=None, jit: bool = True):
    """A compiled flow-matching model or spline MAF (`kind`), small with `smoke`; XLA-compiled
    steps with `jit` (never with `smoke`)."""
    if kind == "flow_matching":
        width = (16,) if smoke else (256, 256, 256)
        model = FlowMatchingModel(
            [2], hidden_units=width, num_steps=4 if smoke else 32,
            conditional_size=conditional_size, nll_every=0,
        )  # fmt: skip
    else:
        options = dict(num_layers=1 if smoke else 4, hidden_units=(16,) if smoke else (128, 128))
        options.update(transformer="spline", num_bins=32, spline_bound=4.0)
        model = DensityModel(
            "maf", {"event_shape": 2, **options, "conditional_size": conditional_size}
        )
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=jit and not smoke)
    return model


def timed(fn, repeats: int = 3) -> float:
    """The fastest of `repeats` calls, in seconds, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def chunked(log_prob, points: np.ndarray, chunks: int) -> np.ndarray:
    """`log_prob` of `points` in `chunks` near-equal parts (bounded memory), concatenated."""
    parts = np.array_split(points, max(1, chunks))
    return np.concatenate([log_prob(tf.constant(part)).numpy() for part in parts])


def evaluate(model, test, log_p_test, jit: bool = True) -> dict:
    """Held-out NLL, its gap to the entropy (paired, with SE) and the timings per 1,000."""
    log_prob = tf.function(model.flow.log_prob, jit_compile=jit)
    log_q = chunked(log_prob, test, len(test) // 1000)  # chunks of ~1,000: less memory
    diff = log_p_test - log_q
    points = tf.constant(test[:1000])
    sample = tf.function(lambda: model.flow.sample(1000, seed=(1, 2)), jit_compile=jit)
    return {
        "test_nll": float(-log_q.mean()),
        "gap": float(diff.mean()),
        "gap_se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
        "log_prob_ms_per_1000": 1e3 * timed(lambda: log_prob(points).numpy()),
        "sample_ms_per_1000": 1e3 * timed(lambda: sample().numpy()),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="moons", choices=sorted(datasets.TOY_DENSITIES))
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU seconds per model")
    parser.add_argument("--out", default="out/flow_matching")
    parser.add_argument("--no-jit", action="store_true", help="no XLA: slower, ~0.4 GB less")
    parser.add_argument("--smoke", action="store_true", help="tiny run, to check it works")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    keras.utils.set_random_seed(0)
    jit = not args.no_jit
    toy = datasets.TOY_DENSITIES[args.set]
    n_train, n_test = (2_048, 1_000) if args.smoke else (200_000, 20_000)
    train, test = toy.sample(n_train, seed=1), toy.sample(n_test, seed=2)
    train, test = train.astype(np.float32), test.astype(np.float32)
    entropy, _ = datasets.entropy(toy.sample, toy.log_prob, n=2_000 if args.smoke else 100_000)
    seconds = 2.0 if args.smoke else args.seconds
    metrics, models = {"set": args.set, "entropy": entropy, "cpu_seconds": seconds}, {}
    for kind in ("flow_matching", "spline_maf"):
        model = build(kind, args.smoke, jit=jit)
        history = model.fit(
            train, batch_size=512, epochs=1 if args.smoke else 1_000,
            callbacks=[CPUBudget(seconds, LEARNING_RATE)], verbose=0,
        )  # fmt: skip
        models[kind] = model
        metrics[kind] = evaluate(model, test, toy.log_prob(test), jit=jit)
        metrics[kind]["epochs"] = len(next(iter(history.history.values())))
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    plot(models, toy, os.path.join(args.out, "flow_matching.png"), 40 if args.smoke else 120, jit)
    print(table(metrics))
    return metrics


def table(metrics: dict) -> str:
    rows = [
        f"{metrics['set']}, {metrics['cpu_seconds']:g} CPU-s each, entropy "
        f"{metrics['entropy']:.3f} nats",
        "| model | held-out NLL | NLL - H | log_prob ms / 1000 | sample ms / 1000 |",
        "|---|---|---|---|---|",
    ]
    for kind in ("flow_matching", "spline_maf"):
        m = metrics[kind]
        rows.append(
            f"| {kind} | {m['test_nll']:.3f} | {m['gap']:.3f} ± {m['gap_se']:.3f} | "
            f"{m['log_prob_ms_per_1000']:.1f} | {m['sample_ms_per_1000']:.1f} |"
        )
    return "\n".join(rows)


def plot(models: dict, toy, path: str, resolution: int, jit: bool = True) -> None:
    """True density, both learned densities, and the flow-matching sample paths over t."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lim = 4.0
    xs, ys = np.meshgrid(np.linspace(-lim, lim, resolution), np.linspace(-lim, lim, resolution))
    grid = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32)
    densities = [("true density", np.exp(toy.log_prob(grid)))]
    for kind, model in models.items():  # in equal chunks of the grid, one compiled function
        log_prob = tf.function(model.flow.log_prob, jit_compile=jit)
        densities.append((f"{kind} density", np.exp(chunked(log_prob, grid, 8))))
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (title, density) in zip(axes, densities):
        ax.pcolormesh(xs, ys, density.reshape(xs.shape), shading="auto")
        ax.set_title(title)
    times = np.linspace(0.0, 1.0, 21)
    z = tf.random.stateless_normal([300, 2], [4, 5])
    paths = models["flow_matching"].trajectory(z, times).numpy()  # [T, N, 2]
    ax = axes[3]
    for i in range(paths.shape[1]):
        ax.plot(paths[:, i, 0], paths[:, i, 1], color="0.6", lw=0.4, alpha=0.6)
    ax.scatter(*paths[0].T, s=3, color="C0", label="t = 0 (base)")
    ax.scatter(*paths[-1].T, s=3, color="C1", label="t = 1 (data)")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("sample paths x(t)")
    for ax in axes:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


def _rotated_moons():
    path = pathlib.Path(__file__).with_name("conditional.py")
    spec = importlib.util.spec_from_file_location("example_conditional", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def conditional_comparison(seconds: float = 300.0, out: str = "out/flow_matching") -> dict:
    """Held-out NLL of `p(x | c)` on the rotated moons: flow matching vs a conditional spline
    MAF, `seconds` of CPU each, 204,800 training and 10,000 held-out points."""
    moons = _rotated_moons()
    keras.utils.set_random_seed(0)
    x, c = moons.rotated_moons(204_800, seed=1)
    x_test, c_test = moons.rotated_moons(10_000, seed=2)
    shuffled = c_test[np.random.default_rng(3).permutation(len(c_test))]
    metrics = {"true_density_nll": float(-moons.true_log_prob(x_test, c_test).mean())}
    for kind in ("flow_matching", "maf"):
        model = build("flow_matching" if kind == "flow_matching" else "spline_maf", False, 2)
        model.fit(
            x,
            c,
            batch_size=512,
            epochs=1_000,
            callbacks=[CPUBudget(seconds, LEARNING_RATE)],
            verbose=0,
        )
        for name, cond in (("nll", c_test), ("nll_shuffled", shuffled)):
            log_q = np.concatenate(
                [
                    model.log_prob(a, b).numpy()
                    for a, b in zip(np.split(x_test, 5), np.split(cond, 5))
                ]
            )
            metrics[f"{kind}_{name}"] = float(-log_q.mean())
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "conditional_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    return metrics


if __name__ == "__main__":
    main()
