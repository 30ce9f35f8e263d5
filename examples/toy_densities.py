"""MAF, Real NVP and a Glow-style vector flow fitted to the five FFJORD toy densities.

For each set of `tfp_flows.datasets.TOY_DENSITIES` (scaled moons, 8 gaussians, checkerboard,
rings, pinwheel) and each flow, a `tfp_flows.keras.DensityModel` is trained with Keras `fit` for a
fixed time budget per model (`--seconds` of this process's CPU time, or of wall-clock time with
`--clock wall`; tracing and compiling not counted), with a cosine learning-rate decay over that
budget. It then reports the held-out NLL next to the entropy of the data density (its exact
log-density is known, so the entropy is a Monte Carlo average with a standard error), and the
gap `NLL - H`, estimated on the same held-out points as `mean(log p(x) - log q(x))` (the KL
divergence from the data to the model; paired, so its standard error is small). Writes
`toy_densities.png` (rows: sets; columns: data and each model's density) and `metrics.json`
into `--out`.

The flows:
  * `spline_maf`: `flows.maf(transformer="spline")`, half as many MADE layers, each a monotone
    rational-quadratic spline with `--bins` bins on `[-4, 4]` (a neural spline flow).
  * `maf`: `flows.maf`, affine MADE layers with reversals between them.
  * `real_nvp`: `flows.real_nvp` on `[2]`, half-mask affine couplings with ActNorm between them.
  * `glow`: Glow's step on vectors, `ActNorm -> Invertible1x1Conv -> AffineCoupling`, repeated.
    `flows.glow` is for images only; `Invertible1x1Conv(2, event_ndims=1)` is the learned
    invertible 2 x 2 linear map (LU-parameterised), and the coupling uses Glow's sigmoid scale.

    python examples/toy_densities.py                  # 60 CPU-s per model: the README's setting
    python examples/toy_densities.py --seconds 8      # a quick look (gaps several times larger)
    python examples/toy_densities.py --smoke          # tiny, one set, a few seconds
    python examples/toy_densities.py --sets moons,rings --models spline_maf,maf
    python examples/toy_densities.py --jit spline_maf # XLA for the spline MAF (see below)

Each model is dropped once its numbers and density grid are taken, so memory stays that of one
model (at most 1.4 GB resident, flat from model to model). The steps run as plain
`tf.function`s; `--jit` names the models to compile with XLA, which makes the spline MAF's step
about twice as fast here (the affine flows' no faster) but costs memory for the rest of the
process: TF keeps XLA's compiled code until the process ends (its compilation cache has no
eviction), 100-250 MB for each model here.

The default run has the setting of the README's toy table (`benchmarks/quality_toy.py`): 60 s
of CPU time per model and set, 8 layers (4 for the spline MAF, 32 bins on [-4, 4]), hidden
128x2, batch 512, Adam 2e-3 with cosine decay, 200k training and 50k held-out points. Its 20
models (5 sets x 4 flows) take about 40 minutes on the shared 2-core development machine (about
2 minutes per model, compilation and evaluation included). The table comes from the
benchmark's own training loop and this example trains with Keras `fit`, so the gaps are close
to the table's, not equal: on rings, 0.023 / 0.556 / 0.592 nats (spline MAF / MAF / Real NVP)
here vs 0.021 / 0.601 / 0.722 in the table. `--seconds 8` gives larger gaps: spline MAF
0.028-0.133 nats over the five sets, 3-4x the table's (one run). While training it prints one
line per 500 steps (`--steps-per-epoch`): steps done, the training NLL and how much of the
budget is used (`--quiet` for none).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import datasets, flows
from tfp_flows.bijectors import ActNorm, AffineCoupling, Invertible1x1Conv, initialize_actnorm
from tfp_flows.keras import DensityModel
from tfp_flows.nn import MLPConditioner

tfb, tfd = tfp.bijectors, tfp.distributions

LIM = 4.0  # every set lies (almost entirely) in [-LIM, LIM]^2


@flows.register_factory("vector_glow")
def vector_glow(
    dim: int = 2,
    *,
    num_steps: int = 8,
    hidden_units=(128, 128),
    scale: str = "sigmoid",
    log_scale_clamp: float | None = 3.0,
    seed: int = 0,
) -> tfd.TransformedDistribution:
    """Glow on vectors: `num_steps` of (ActNorm, invertible linear map, half-mask coupling)."""
    layers = []
    for i in range(num_steps):
        conditioner = MLPConditioner(
            dim // 2, dim - dim // 2, hidden_units=tuple(hidden_units), name=f"mlp_{i}"
        )
        layers += [
            ActNorm(dim, event_ndims=1, name=f"actnorm_{i}"),
            Invertible1x1Conv(dim, event_ndims=1, seed=seed + i, name=f"linear_{i}"),
            AffineCoupling(
                conditioner,
                mask="half",
                scale=scale,
                log_scale_clamp=log_scale_clamp,
                name=f"coupling_{i}",
            ),
        ]
    base = tfd.Sample(tfd.Normal(0.0, 1.0), sample_shape=[dim])
    return tfd.TransformedDistribution(base, tfb.Chain(layers), name="vector_glow")


def model_configs(hidden: int, layers: int, bins: int = 32) -> dict[str, tuple[str, dict]]:
    """Factory name and keyword arguments of each flow, at a given width and depth."""
    units = [hidden, hidden]
    spline = {"transformer": "spline", "num_bins": bins, "spline_bound": LIM}
    return {
        "spline_maf": (
            "maf",
            {"dim": 2, "num_layers": max(1, layers // 2), "hidden_units": units, **spline},
        ),
        "maf": ("maf", {"dim": 2, "num_layers": layers, "hidden_units": units}),
        "real_nvp": (
            "real_nvp",
            {"event_shape": [2], "num_layers": layers, "hidden_units": units},
        ),
        "glow": ("vector_glow", {"dim": 2, "num_steps": layers, "hidden_units": units}),
    }


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class TimeBudget(keras.callbacks.Callback):
    """Cosine learning-rate decay over a time budget, then stops training.

    The clock starts after the first batch, so compiling the training step is not counted.
    `clock="cpu"` counts this process's CPU time (all its threads): on a shared machine that is
    the time the flow actually got; on an idle one a CPU-time budget ends no later than the same
    wall-clock budget (a busy process uses at least one core). Both are recorded. With `report`,
    prints one line per epoch: steps, training NLL and the budget used.
    """

    def __init__(
        self, seconds: float, learning_rate: float, clock: str = "cpu", report: bool = False
    ):
        super().__init__()
        self.seconds, self.learning_rate, self.clock = seconds, learning_rate, CLOCKS[clock]
        self.clock_name, self.report = clock, report
        self.start = self.wall_start = self.first_step_s = None
        self.steps, self.elapsed, self.wall_elapsed = 0, 0.0, 0.0

    def on_train_begin(self, logs=None):
        self._begin = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if self.start is None:
            self.start, self.wall_start = now, time.perf_counter()
            self.first_step_s = self.wall_start - self._begin
            return
        self.steps += 1
        frac = min(1.0, (now - self.start) / self.seconds)
        self.model.optimizer.learning_rate.assign(
            self.learning_rate * 0.5 * (1.0 + np.cos(np.pi * frac))
        )
        if frac >= 1.0:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.report and self.start is not None:
            used = self.clock() - self.start
            print(
                f"  {self.steps + 1:>6d} steps  nll {(logs or {}).get('nll', float('nan')):8.4f}"
                f"  {min(used, self.seconds):6.1f} / {self.seconds:g} {self.clock_name}-s",
                flush=True,
            )

    def on_train_end(self, logs=None):
        if self.start is not None:
            self.elapsed = self.clock() - self.start
            self.wall_elapsed = time.perf_counter() - self.wall_start


def fit_one(flow_name, flow_kwargs, train, args, jit: bool = False) -> tuple[DensityModel, dict]:
    keras.utils.set_random_seed(0)
    model = DensityModel(flow_name, flow_kwargs)
    initialize_actnorm(model.flow, train[:4096])
    model.compile(optimizer=keras.optimizers.Adam(args.lr), jit_compile=jit)
    budget = TimeBudget(args.seconds, args.lr, args.clock, report=not args.quiet)
    data = (
        tf.data.Dataset.from_tensor_slices(train)
        .shuffle(len(train), seed=0)
        .batch(args.batch, drop_remainder=True)
        .repeat()
        .prefetch(2)
    )
    model.fit(
        data,
        steps_per_epoch=args.steps_per_epoch,
        epochs=100_000,  # an upper bound: the time budget stops training
        callbacks=[budget],
        verbose=0,  # the budget reports progress instead of "Epoch 1/100000"
    )
    info = {
        f"train_{args.clock}_seconds": round(budget.elapsed, 1),
        "train_wall_seconds": round(budget.wall_elapsed, 1),
        "first_step_seconds": round(budget.first_step_s or 0.0, 1),
        "steps": budget.steps,
    }
    return model, info


def evaluate(model, test, log_p_test) -> dict:
    log_q = np.concatenate(
        [model.log_prob(tf.constant(c)).numpy() for c in np.array_split(test, 10)]
    ).astype(np.float64)
    nll = -log_q
    diff = log_p_test - log_q  # per-point log p - log q: its mean is KL(p || q) = NLL - H
    n = len(test)
    return {
        "test_nll": float(nll.mean()),
        "test_nll_se": float(nll.std(ddof=1) / np.sqrt(n)),
        "gap": float(diff.mean()),
        "gap_se": float(diff.std(ddof=1) / np.sqrt(n)),
    }


def density_grid(model, size: int) -> np.ndarray:
    xs = np.linspace(-LIM, LIM, size, dtype=np.float32)
    x1, x2 = np.meshgrid(xs, xs)
    points = np.stack([x1.ravel(), x2.ravel()], -1)
    # In chunks of 4,000 points: one eager call on all 40,000 made the spline MAF's
    # intermediates peak about 130 MB higher, and the allocator keeps such a peak.
    log_q = [
        model.log_prob(tf.constant(c)).numpy() for c in np.array_split(points, size**2 // 4000 or 1)
    ]
    return np.exp(np.concatenate(log_q)).reshape(size, size)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training budget per model")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="budget clock")
    parser.add_argument("--sets", help="comma-separated; default all (moons with --smoke)")
    parser.add_argument("--models", default="spline_maf,maf,real_nvp,glow")
    parser.add_argument("--bins", type=int, default=32, help="bins of spline_maf")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--train-size", type=int, default=200_000)
    parser.add_argument("--test-size", type=int, default=50_000)
    parser.add_argument("--steps-per-epoch", type=int, default=500)
    parser.add_argument("--jit", default="", help="comma-separated models to compile with XLA")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and budget")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--out", default="out/toy_densities")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.hidden, args.layers, args.batch, args.bins = 0.3, 8, 2, 128, 4
        args.train_size, args.test_size, args.steps_per_epoch = 2048, 1000, 10
    os.makedirs(args.out, exist_ok=True)
    if args.sets is None:
        args.sets = "moons" if args.smoke else ",".join(datasets.TOY_DENSITIES)
    sets, models = args.sets.split(","), args.models.split(",")
    jit = set(args.jit.split(",")) - {""}
    configs = model_configs(args.hidden, args.layers, args.bins)
    grid_size = 60 if args.smoke else 200

    results, grids, samples = {}, {}, {}
    for set_name in sets:
        toy = datasets.TOY_DENSITIES[set_name]
        train = toy.sample(args.train_size, seed=1)
        test = toy.sample(args.test_size, seed=2)
        samples[set_name] = test[:2000]
        log_p_test = toy.log_prob(test)
        h, h_se = datasets.entropy(
            toy.sample, toy.log_prob, n=2_000 if args.smoke else 200_000, seed=3
        )
        results[set_name] = {"entropy": h, "entropy_se": h_se}
        for model_name in models:
            print(f"== {set_name} / {model_name} ({args.seconds:g} {args.clock}-s)", flush=True)
            model, info = fit_one(*configs[model_name], train, args, jit=model_name in jit)
            results[set_name][model_name] = {**info, **evaluate(model, test, log_p_test)}
            grids[set_name, model_name] = density_grid(model, grid_size)
            del model  # keep its numbers and grid only: the next model reuses its memory
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "quiet")}
    metrics = {"settings": settings, "results": _rounded(results)}
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(summary_table(results, sets, models))
    plot(sets, models, samples, grids, os.path.join(args.out, "toy_densities.png"))
    return metrics


def _rounded(tree):
    if isinstance(tree, dict):
        return {k: _rounded(v) for k, v in tree.items()}
    return round(tree, 4) if isinstance(tree, float) else tree


def summary_table(results, sets, models) -> str:
    header = "| set | entropy H (nats) | " + " | ".join(f"{m} NLL | {m} NLL - H" for m in models)
    lines = [header + " |", "|---" * (2 + 2 * len(models)) + "|"]
    for s in sets:
        r = results[s]
        cells = [f"{r['entropy']:.3f} ± {r['entropy_se']:.3f}"]
        for m in models:
            cells += [f"{r[m]['test_nll']:.3f}", f"{r[m]['gap']:.3f} ± {r[m]['gap_se']:.3f}"]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(sets, models, samples, grids, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(sets), 1 + len(models), figsize=(2.6 * (1 + len(models)), 2.6 * len(sets))
    )
    axes = np.atleast_2d(axes)
    for i, s in enumerate(sets):
        axes[i, 0].scatter(samples[s][:, 0], samples[s][:, 1], s=0.5, color="k")
        axes[i, 0].set_ylabel(s)
        for j, m in enumerate(models, start=1):
            axes[i, j].imshow(
                grids[s, m], origin="lower", extent=(-LIM, LIM, -LIM, LIM), cmap="viridis"
            )
    for j, title in enumerate(["data", *models]):
        axes[0, j].set_title(title)
    for ax in axes.ravel():
        ax.set_xlim(-LIM, LIM)
        ax.set_ylim(-LIM, LIM)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
