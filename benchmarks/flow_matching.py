"""Flow matching (tfp_flows.continuous) vs a spline MAF vs bayesflow's FlowMatching, toy sets.

    python benchmarks/flow_matching.py --bf-python /tmp/bfvenv/bin/python   # 120 s each
    python benchmarks/flow_matching.py --seconds 60 --sets moons --libs tfp_flows_fm,spline_maf

Each (set, library) runs in its own process (`--worker`), bayesflow's with `--bf-python`, an
interpreter whose environment has bayesflow (the `bench` extra; install it into a separate
virtual environment: its requirements are not pinned by `constraints.txt`). Every library gets
the same wall-clock training budget `--seconds` (compilation included), the same 200k training
points, batch 512, Adam with a cosine decay over the budget, in a `tf.function` loop:

* `tfp_flows_fm`: `continuous_flow([2])`, a 3x256 SiLU velocity MLP, linear path, trained by
  flow matching (XLA step); `log_prob` by RK4 with `--fm-steps` steps and the exact trace.
* `spline_maf`: `flows.maf(2, transformer="spline")`, 4 MADE layers 128x2, 32 bins on [-4, 4],
  trained by maximum likelihood (XLA step).
* `bayesflow_fm`: `bayesflow.networks.FlowMatching()` with its own defaults (a residual 5x256
  time-MLP with layer norm and dropout, uniform `t`, adaptive Tsit5 integration for `log_prob`
  and `sample`, run eagerly: in a `tf.function` its integrator fails), trained on its
  `compute_metrics` loss (graph step, learning rate 5e-4).

Reported per set and library: held-out NLL (`--test-size` points, 2k by default: bayesflow's
eager adaptive `log_prob` takes minutes for more) and the paired gap `NLL - H` to the
data's entropy, with standard errors; `log_prob` and `sample` time per 1,000 points (best of 3
after a warm-up call, compiled). Writes `flow_matching.md` / `.json` next to this file (or
`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

LIBS = ("tfp_flows_fm", "spline_maf", "bayesflow_fm")


def _build(lib: str, args):
    """`(loss_fn(x), log_prob_fn(x), sample_fn(n), variables, jit)` of a library's model."""
    import tensorflow as tf

    if lib == "bayesflow_fm":
        import bayesflow as bf

        net = bf.networks.FlowMatching()
        net.build((None, 2))

        def loss(x):
            return net.compute_metrics(x, stage="training")["loss"]

        return loss, net.log_prob, lambda n: net.sample((n,)), net.trainable_variables, False
    from tfp_flows import flows
    from tfp_flows.continuous import continuous_flow, flow_matching_loss

    if lib == "tfp_flows_fm":
        dist = continuous_flow(
            [2], hidden_units=(256,) * 3, fourier_features=64, num_steps=args.fm_steps
        )

        def loss(x):
            x0, t = tf.random.normal(tf.shape(x)), tf.random.uniform(tf.shape(x)[:1])
            return tf.reduce_mean(flow_matching_loss(dist.bijector.velocity, x0, x, t))
    else:
        dist = flows.maf(
            2, num_layers=4, hidden_units=(128, 128), transformer="spline", num_bins=32,
            spline_bound=4.0,
        )  # fmt: skip

        def loss(x):
            return -tf.reduce_mean(dist.log_prob(x))

    return loss, dist.log_prob, lambda n: dist.sample(n), list(dist.trainable_variables), True


def _best_time(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def worker(lib: str, name: str, args) -> dict:
    import keras
    import tensorflow as tf

    from tfp_flows import datasets

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    toy = datasets.TOY_DENSITIES[name]
    train = tf.constant(toy.sample(200_000, seed=1).astype(np.float32))
    test = toy.sample(args.test_size, seed=2).astype(np.float32)
    loss_fn, log_prob, sample, variables, jit = _build(lib, args)
    lr = 5e-4 if lib == "bayesflow_fm" else 2e-3
    optimizer = keras.optimizers.Adam(lr)
    optimizer.build(variables)

    @tf.function(jit_compile=jit)
    def step(learning_rate):
        optimizer.learning_rate.assign(learning_rate)
        x = tf.gather(train, tf.random.uniform([512], 0, train.shape[0], dtype=tf.int32))
        with tf.GradientTape() as tape:
            loss = loss_fn(x)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    start, steps, frac = time.perf_counter(), 0, 0.0
    while frac < 1.0:
        step(tf.constant(lr * 0.5 * (1.0 + np.cos(np.pi * frac)), tf.float32))
        steps += 1
        frac = (time.perf_counter() - start) / args.seconds
    # bayesflow's adaptive integrator fails in a tf.function (2.0.12: an int32 step counter
    # added to a float32): it runs eagerly, as its own `sample` and `log_prob` do by default.
    log_prob_fn = tf.function(log_prob, jit_compile=True) if jit else log_prob
    sample_fn = tf.function(lambda: sample(1000), jit_compile=True) if jit else lambda: sample(1000)
    log_q = np.concatenate([log_prob_fn(tf.constant(c)).numpy() for c in np.split(test, 2)])
    diff = toy.log_prob(test) - log_q.astype(np.float64)
    points = tf.constant(test[:1000])
    return {
        "steps": steps,
        "train_wall_s": round(time.perf_counter() - start, 1),
        "test_nll": float(-log_q.mean()),
        "test_nll_se": float(log_q.std(ddof=1) / np.sqrt(len(log_q))),
        "gap": float(diff.mean()),
        "gap_se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
        "log_prob_ms_per_1000": 1e3 * _best_time(lambda: log_prob_fn(points).numpy()),
        "sample_ms_per_1000": 1e3 * _best_time(lambda: sample_fn().numpy()),
        "num_params": int(sum(int(np.prod(v.shape)) for v in variables)),
    }


def _run(lib: str, name: str, args) -> dict:
    python = args.bf_python if lib == "bayesflow_fm" else sys.executable
    if python is None:
        return {"error": "skipped: no --bf-python interpreter with bayesflow"}
    cmd = [python, os.path.abspath(__file__), "--worker", lib, "--sets", name]
    cmd += ["--seconds", str(args.seconds), "--test-size", str(args.test_size)]
    cmd += ["--fm-steps", str(args.fm_steps)]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=args.seconds + args.timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out: evaluation took over {args.timeout:g} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"error": proc.stderr[-1500:]}
    return json.loads(lines[-1])


def render(report: dict) -> str:
    s = report["settings"]
    lines = [
        "# Flow matching vs spline MAF vs bayesflow FlowMatching (toy densities)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Budget: {s['seconds']:g} s of wall-clock training per library per set; "
        f"{s['test_size']} held-out points; load average (1 min) {report['load'][0]:.1f} at the "
        f"start, {report['load'][1]:.1f} at the end; {report['machine'].get('nproc')} CPUs.",
        "",
        "| set | H | library | NLL - H | held-out NLL | log_prob ms / 1000 | sample ms / 1000 "
        "| steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["results"].items():
        for lib in s["libs"]:
            r = row.get(lib, {})
            if "error" in r:
                lines.append(f"| {name} | {row['entropy']:.3f} | {lib} | error: "
                             f"{r['error'].strip().splitlines()[-1][:80]} | | | | |")  # fmt: skip
                continue
            lines.append(
                f"| {name} | {row['entropy']:.3f} | {lib} | {r['gap']:.3f} ± {r['gap_se']:.3f} "
                f"| {r['test_nll']:.3f} | {r['log_prob_ms_per_1000']:.1f} | "
                f"{r['sample_ms_per_1000']:.1f} | {r['steps']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--sets", default="moons,8gaussians,rings")
    parser.add_argument("--libs", default=",".join(LIBS))
    parser.add_argument("--bf-python", default=None, help="an interpreter with bayesflow")
    parser.add_argument("--test-size", type=int, default=2_000)
    parser.add_argument("--fm-steps", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=900.0, help="s beyond the budget")
    parser.add_argument("--out", default=os.path.join(HERE, "flow_matching"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.sets, args)))
        return {}
    from run import machine_info, write_report

    from tfp_flows import datasets

    libs, sets = args.libs.split(","), args.sets.split(",")
    load0, results = os.getloadavg()[0], {}
    for name in sets:
        toy = datasets.TOY_DENSITIES[name]
        h, h_se = datasets.entropy(toy.sample, toy.log_prob, n=200_000, seed=3)
        results[name] = {"entropy": h, "entropy_se": h_se}
        for lib in libs:
            print(f"== {name} / {lib}", flush=True)
            results[name][lib] = _run(lib, name, args)
            print(f"   {results[name][lib]}", flush=True)
    argv = sys.argv[1:] if argv is None else argv
    report = {
        "command": " ".join(["python benchmarks/flow_matching.py", *argv]),
        "settings": {**{k: v for k, v in vars(args).items() if k != "worker"}, "libs": libs},
        "machine": machine_info([]),
        "load": [load0, os.getloadavg()[0]],
        "results": results,
    }
    write_report(args.out, report, render(report))
    return report


if __name__ == "__main__":
    main()
