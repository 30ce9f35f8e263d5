"""What the Python side of the training loop costs: one step per compiled call vs several.

    python benchmarks/loop_overhead.py                  # both problems, 5 rounds
    python benchmarks/loop_overhead.py --rounds 3 --steps 2000

`tfp_flows.train.minimize` (behind `vi.fit` and `vi.distill`) runs as many steps per compiled
call as fill about 50 ms (`tfp_flows.train.steps`); `steps_per_call=1` is the former loop, one
call per step. Both run here on the same problem in one process, in alternating rounds, each
for `--steps` steps from the same initial weights; the figure is the steady-state time per step
(the run's time after its first, compiling call, over the steps after it) and the per-round
ratio one-per-call / several-per-call (above 1: the new loop is faster).

Problems: `u1` (reverse KL on the 2-D energy U1 with `vi.flow_surrogate_posterior`'s default
Real NVP, 64 samples, stick-the-landing: `vi.fit`'s default step) and `moons` (forward KL of an
8-layer affine MAF on two moons, batch 256). Writes `benchmarks/loop_overhead.md` and `.json`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from run import machine_info, write_report  # noqa: E402

from tfp_flows import datasets, flows, losses, targets, train, vi  # noqa: E402
from tfp_flows.vi.fit import _negative_elbo  # noqa: E402  (vi.fit's own loss)


def problem(name: str):
    """`(loss_fn, variables)`, built afresh from seed 0."""
    keras.utils.set_random_seed(0)
    if name == "u1":
        q = vi.flow_surrogate_posterior(event_shape=[2])
        return _negative_elbo(q, targets.energy("u1"), 64, 0, True), q.trainable_variables
    dist = flows.maf(2, num_layers=8, hidden_units=(64, 64))
    data = tf.constant(datasets.two_moons(8192, seed=0))

    def loss(step):
        rows = tf.random.stateless_uniform([256], [0, step], 0, 8192, tf.int32)
        return losses.forward_kl(dist, tf.gather(data, rows))

    return loss, dist.trainable_variables


def step_ms(name: str, steps: int, steps_per_call) -> float:
    loss, variables = problem(name)
    result = train.minimize(loss, variables, num_steps=steps, steps_per_call=steps_per_call)
    return 1e3 * (result.elapsed_s - result.first_step_s) / (steps - 1)


def measure(name: str, args) -> dict:
    old, new = [], []
    for r in range(args.rounds):  # alternate which goes first
        order = [(1, old), (None, new)] if r % 2 == 0 else [(None, new), (1, old)]
        for steps_per_call, out in order:
            out.append(step_ms(name, args.steps, steps_per_call))
        print(f"{name} round {r}: one per call {old[-1]:.3f} ms, several {new[-1]:.3f} ms")
    ratios = [a / b for a, b in zip(old, new)]
    return {
        "one_per_call_ms": statistics.median(old),
        "several_per_call_ms": statistics.median(new),
        "ratio_median": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "rounds": {"one_per_call_ms": old, "several_per_call_ms": new},
    }


def render(results: dict, meta: dict) -> str:
    m = meta["machine"]
    lines = [
        "# The training loop's Python overhead: one step per call vs several",
        "",
        f"Command: `{meta['command']}`. Machine: {m.get('Model name', '?')}, {m.get('CPU(s)')} "
        f"CPUs, flags {m.get('Flags', '?')}; TensorFlow {tf.__version__}. Load average (1 min) "
        f"{meta['load'][0]:.2f} before, {meta['load'][1]:.2f} after. {meta['steps']} steps a run, "
        "XLA, medians over alternating rounds.",
        "",
        "| problem | one step per call (ms/step) | several per call (ms/step) | speed-up (range) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        lo, hi = r["ratio_range"]
        lines.append(
            f"| {name} | {r['one_per_call_ms']:.3f} | {r['several_per_call_ms']:.3f} | "
            f"{r['ratio_median']:.2f}x ({lo:.2f}-{hi:.2f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="u1,moons")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", default=os.path.join(HERE, "loop_overhead"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    results = {name: measure(name, args) for name in args.problems.split(",")}
    meta = {
        "command": "python benchmarks/loop_overhead.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info([{"versions": {"tensorflow": tf.__version__}}]),
        "load": [load_before, os.getloadavg()[0]],
        "steps": args.steps,
        "numpy": np.__version__,
    }
    write_report(args.out, {"meta": meta, "results": results}, render(results, meta))


if __name__ == "__main__":
    main()
