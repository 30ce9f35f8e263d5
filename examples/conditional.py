"""A conditional flow p(x | c): two moons rotated by an angle given as the condition.

Data: two moons (`tfp_flows.datasets.two_moons`) centred on the origin and rotated by an angle
`theta ~ Uniform(0, 2 pi)`; the condition is `c = (cos theta, sin theta)`. The true conditional
density is the moons density at the rotated-back point, so its conditional entropy equals the
moons' entropy for every angle (rotations preserve volume), and held-out conditional NLL can be
compared with it.

The flow is a Real NVP whose coupling networks also take `c` (`flows.real_nvp(...,
conditional_size=2)`), trained by maximum likelihood with `DensityModel.fit(x, c)`. To show
that the condition is used, the script also scores the test points with their conditions
shuffled (the density for a wrong angle), which must be clearly worse. It writes
`conditional.png` (per condition: true density, learned density, flow samples) and
`metrics.json` into `--out`.

    python examples/conditional.py [--epochs N] [--out DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from tfp_flows import datasets
from tfp_flows.keras import DensityModel

CENTRE = np.array([0.5, 0.25], np.float32)  # the middle of scikit-learn's two moons
PLOT_ANGLES_DEG = (0, 60, 135, 240)


def rotation(theta: np.ndarray) -> np.ndarray:
    """Rotation matrices `[n, 2, 2]` for angles `theta` `[n]`."""
    cos, sin = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


def rotated_moons(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` points and their conditions `(cos theta, sin theta)`, one random angle per point."""
    theta = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, n)
    x = datasets.two_moons(n, seed=seed + 1000) - CENTRE
    x = np.einsum("nij,nj->ni", rotation(theta), x)
    c = np.stack([np.cos(theta), np.sin(theta)], -1)
    return x.astype(np.float32), c.astype(np.float32)


def true_log_prob(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact `log p(x | c)`: the moons density at the point rotated back by theta."""
    theta = np.arctan2(c[:, 1], c[:, 0])
    back = np.einsum("nji,nj->ni", rotation(theta), x)  # R(theta)^T x
    return datasets.two_moons_log_prob(back + CENTRE)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--out", default="out/conditional")
    parser.add_argument("--jit", action="store_true", help="compile the step with XLA")
    parser.add_argument("--smoke", action="store_true", help="tiny run, to check it works")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    keras.utils.set_random_seed(0)
    # Each training point has its own angle: with few points per angle the flow overfits (with
    # 40k points seen 30 times, held-out NLL was 0.045 nats above training NLL), so this draws
    # many points and passes over them few times.
    n_train, epochs = (2_048, 1) if args.smoke else (204_800, args.epochs)

    x_train, c_train = rotated_moons(n_train, seed=1)
    x_test, c_test = rotated_moons(1_000 if args.smoke else 10_000, seed=2)
    model = DensityModel(
        "real_nvp",
        {
            "event_shape": [2],
            "num_layers": 2 if args.smoke else 8,
            "hidden_units": [16] if args.smoke else [128, 128],
            "conditional_size": 2,
        },
    )
    steps = epochs * (n_train // args.batch)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        # A plain tf.function step by default: on the AVX-512 machine XLA made the run slower
        # (compile time), 0.26 GB larger, and (quickstart) its gap 0.064 instead of 0.025.
        jit_compile=args.jit and not args.smoke,
    )
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(x_train, c_train, batch_size=args.batch, epochs=epochs, verbose=2)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu

    def nll(c):
        return model.evaluate(x_test, c, batch_size=2_000, verbose=0, return_dict=True)["nll"]

    shuffled = c_test[np.random.default_rng(3).permutation(len(c_test))]
    true_nll = -true_log_prob(x_test, c_test)
    entropy, se = datasets.entropy(
        datasets.two_moons, datasets.two_moons_log_prob, n=2_000 if args.smoke else 20_000
    )
    metrics = {
        "train_steps": steps,
        "train_seconds": round(seconds, 1),
        "train_cpu_seconds": round(cpu, 1),
        "test_nll": round(float(nll(c_test)), 4),
        "test_nll_shuffled_conditions": round(float(nll(shuffled)), 4),
        "true_density_nll_same_points": round(float(true_nll.mean()), 4),
        "conditional_entropy": round(entropy, 4),
        "conditional_entropy_se": round(se, 4),
    }
    metrics["gap_nats"] = round(metrics["test_nll"] - metrics["true_density_nll_same_points"], 4)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    plot(model, os.path.join(args.out, "conditional.png"), 60 if args.smoke else 150)

    rows = [
        ("held-out NLL, true conditions", metrics["test_nll"]),
        ("held-out NLL, shuffled conditions", metrics["test_nll_shuffled_conditions"]),
        ("true density's NLL, same points", metrics["true_density_nll_same_points"]),
        ("conditional entropy (any angle)", entropy),
    ]
    print()
    for label, value in rows:
        print(f"{label:<36}{value:7.3f} nats")
    print(f"{'training time':<36}{seconds:7.0f} s ({cpu:.0f} s of CPU)")
    return metrics


def plot(model, path: str, resolution: int = 150) -> None:
    """One column per condition: true density, flow density, flow samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lim = 1.8
    xs, ys = np.meshgrid(np.linspace(-lim, lim, resolution), np.linspace(-lim, lim, resolution))
    grid = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32)
    fig, axes = plt.subplots(3, len(PLOT_ANGLES_DEG), figsize=(3 * len(PLOT_ANGLES_DEG), 9))
    for col, degrees in enumerate(PLOT_ANGLES_DEG):
        theta = np.deg2rad(degrees)
        c = np.array([np.cos(theta), np.sin(theta)], np.float32)
        c_grid = np.broadcast_to(c, grid.shape)
        true = np.exp(true_log_prob(grid, c_grid)).reshape(xs.shape)
        learned = np.exp(model.log_prob(grid, c_grid).numpy()).reshape(xs.shape)
        samples = model.sample(1_000, c, seed=col).numpy()
        axes[0, col].pcolormesh(xs, ys, true, shading="auto")
        axes[0, col].set_title(f"true p(x | theta={degrees})")
        axes[1, col].pcolormesh(xs, ys, learned, shading="auto")
        axes[1, col].set_title("flow density")
        axes[2, col].scatter(samples[:, 0], samples[:, 1], s=1, color="C1")
        axes[2, col].set_title("flow samples")
        for ax in axes[:, col]:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
