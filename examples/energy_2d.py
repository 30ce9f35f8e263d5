"""Reverse KL: IAF and Real NVP flows fitted to the 2-D energies of Rezende & Mohamed (2015).

For each energy U1-U4 (`tfp_flows.targets`; U2-U4 with a confining Gaussian factor of sd 2 in z1,
which the paper's figures leave implicit), a `VariationalModel` fits a flow by minimising
`KL(q || p)` with no data, using Keras `fit`. It prints the final ELBO, the importance-sampled
estimate of log Z and the effective sample size, beside log Z from numerical integration on a grid,
and writes `energy_2d.png` (target density next to each flow's) and `metrics.json`.

`steps_per_execution` runs 100 training steps per call of the compiled step, so Keras' per-step
overhead (several times the compute of these small networks) is paid once per 100 steps. Only
the plotted densities of a finished model are kept, so each model's memory is freed before the
next is built. `--jit` compiles the steps with XLA: TF keeps XLA's compiled code for the life of
the process (its compilation cache has no eviction), over 100 MB per model here, so the eight
models then need about 2 GB.

    python examples/energy_2d.py [--steps N] [--energies u1,u2] [--jit] [--out DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from tfp_flows.bijectors import PerformanceWarning
from tfp_flows.keras import VariationalModel
from tfp_flows.targets import energy, log_normalizer
from tfp_flows.train import importance_diagnostics

# With no data to initialise ActNorm from, Real NVP goes without it (as in tfp_flows.vi).
FLOWS = {
    "iaf": {"dim": 2, "num_layers": 6, "hidden_units": [64, 64]},
    "real_nvp": {
        "event_shape": [2],
        "num_layers": 8,
        "hidden_units": [64, 64],
        "normalization": None,
    },
}
SMOKE_LAYERS = {"iaf": 2, "real_nvp": 2}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--energies", default="u1,u2,u3,u4")
    parser.add_argument("--out", default="out/energy_2d")
    parser.add_argument("--jit", action="store_true", help="compile the steps with XLA")
    parser.add_argument("--smoke", action="store_true", help="tiny run, to check it works")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore", PerformanceWarning)  # IAF densities on the plot grid
    keras.utils.set_random_seed(0)
    if args.smoke:  # no XLA: compiling takes longer than the whole smoke run
        args.steps, args.energies, args.jit = 20, "u1", False
    names = args.energies.split(",")
    epochs = 10 if args.steps >= 1000 else 1
    per_epoch = args.steps // epochs
    resolution = 60 if args.smoke else 160
    results, panels = {}, {}
    for name in names:
        true_log_z = log_normalizer(name, num=201 if args.smoke else 1201)
        for flow, kwargs in FLOWS.items():
            print(f"== {name} with {flow}")
            if args.smoke:
                kwargs = {**kwargs, "num_layers": 2, "hidden_units": [16]}
            model = VariationalModel(flow, kwargs, target_log_prob_fn=energy(name), num_samples=256)
            schedule = keras.optimizers.schedules.CosineDecay(2e-3, args.steps)
            model.compile(
                optimizer=keras.optimizers.Adam(schedule),
                jit_compile=args.jit,
                steps_per_execution=1 if args.smoke else math.gcd(per_epoch, 100),
            )
            start, cpu = time.perf_counter(), time.process_time()
            model.fit(steps_per_epoch=per_epoch, epochs=epochs, verbose=2)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            num_is = 2_000 if args.smoke else 20_000
            diag = importance_diagnostics(model.flow, energy(name), num_is, seed=(1, 2))
            results[f"{name}/{flow}"] = {
                "elbo": round(float(diag["elbo"]), 4),
                "log_z_is": round(float(diag["log_z"]), 4),
                "log_z_grid": round(true_log_z, 4),
                "ess_fraction": round(float(diag["ess_fraction"]), 4),
                "fit_seconds": round(seconds, 1),
                "fit_cpu_seconds": round(cpu, 1),
            }
            print(results[f"{name}/{flow}"])
            panels[(name, flow)] = log_density_grid(model.flow, resolution)
            del model  # the next model is built with this one's memory freed
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)
    plot(names, panels, os.path.join(args.out, "energy_2d.png"), resolution)
    print(
        f"\n{'energy/flow':<16}{'ELBO':>8}{'IS log Z':>10}{'grid log Z':>12}{'ESS':>7}{'fit s':>7}"
    )
    for key, r in results.items():
        print(
            f"{key:<16}{r['elbo']:8.3f}{r['log_z_is']:10.3f}{r['log_z_grid']:12.3f}"
            f"{r['ess_fraction']:7.2f}{r['fit_seconds']:7.0f}"
        )
    return results


def _grid(resolution: int):
    grid = np.linspace(-4, 4, resolution, dtype=np.float32)
    z1, z2 = np.meshgrid(grid, grid)
    return z1, z2, np.stack([z1.ravel(), z2.ravel()], -1)


def log_density_grid(flow, resolution: int) -> np.ndarray:
    """The flow's log-density on the plot's grid of `[-4, 4]^2`, flattened."""
    return flow.log_prob(_grid(resolution)[2]).numpy()


def plot(names, panels, path: str, resolution: int = 160) -> None:
    """Target density next to each flow's (`panels[(energy, flow)]`), one row per energy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z1, z2, points = _grid(resolution)
    fig, axes = plt.subplots(
        len(names), 1 + len(FLOWS), figsize=(3 * (1 + len(FLOWS)), 3 * len(names)), squeeze=False
    )
    for row, name in enumerate(names):
        row_panels = [("target exp(-U)", energy(name)(tf.constant(points)).numpy())]
        row_panels += [(flow, panels[(name, flow)]) for flow in FLOWS]
        for col, (title, log_p) in enumerate(row_panels):
            ax = axes[row, col]
            ax.pcolormesh(z1, z2, np.exp(log_p).reshape(z1.shape), shading="auto")
            ax.set_title(f"{name.upper()}: {title}")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
