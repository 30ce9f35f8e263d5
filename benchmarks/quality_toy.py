"""Quality under the same time budget: tfp_flows vs TFP's built-in flows on the FFJORD toy sets.

    python benchmarks/quality_toy.py                   # 60 CPU-s per model per set (~40 min)
    python benchmarks/quality_toy.py --seconds 300     # the issue's 5-minute budget
    python benchmarks/quality_toy.py --seconds 20 --sets moons,rings --out-dir out/quality
    python benchmarks/quality_toy.py --models tfp_flows_real_nvp_spline --merge old.json

Seven discrete flows of 2-D vectors, six in pairs with the same architecture, and one continuous
flow (`tfp_flows_flow_matching`, below). Each discrete transform has a
2-hidden-layer ReLU network of width `--hidden`, the order of the two coordinates is reversed
between transforms, and the base is a standard normal:

* `tfp_flows_maf_spline`: `tfp_flows.flows.maf(..., transformer="spline")`, `--spline-layers`
  MADE layers, each a monotone rational-quadratic spline with `--bins` bins on
  `[-bound, bound]` (identity outside): a neural spline flow.
* `tfp_maf_spline`: TFP's own spline MAF with the same parametrisation:
  `tfb.MaskedAutoregressiveFlow(bijector_fn=...)` returning `tfb.RationalQuadraticSpline`, on
  `tfb.AutoregressiveNetwork` (a tf-keras layer).
* `tfp_flows_maf`: `tfp_flows.flows.maf` (affine, MADE conditioners), `--layers` layers; the
  affine flows' log-scale is soft-clamped as `3 tanh(h / 3)`.
* `tfp_maf`: `tfb.MaskedAutoregressiveFlow` on `tfb.AutoregressiveNetwork`, with the same soft
  clamp applied to its log-scale output.
* `tfp_flows_real_nvp`: `tfp_flows.flows.real_nvp` (half-mask affine couplings, ActNorm between
  them, initialised from the first 4096 training points).
* `tfp_flows_real_nvp_spline`: `tfp_flows.flows.real_nvp(..., transformer="spline")`,
  `--spline-coupling-layers` half-mask couplings (default 6, about the parameters of the 4-layer
  spline MAF: each coupling's network has one input and one spline's parameters out, a MADE
  two and two) of `--bins` bins on `[-bound, bound]`, with `--spline-coupling-norm` between
  them (default none: like the spline MAF, it sees the data on their own scale; ActNorm would
  standardise them and leave part of `[-bound, bound]` unused).
* `tfp_flows_flow_matching`: `tfp_flows.continuous.continuous_flow` (a continuous flow whose
  velocity field is a `--fm-layers`-hidden-layer SiLU MLP of width `--fm-hidden` with a Fourier
  time embedding and `--fm-fourier-features` random Fourier features of x), trained by flow
  matching (linear path, `t ~ U[0, 1]`, no ODE solve in the
  step); its held-out log-density solves the ODE with `--fm-solver` (`--fm-steps` RK4 steps by
  default) and the exact trace.
* `tfp_real_nvp`: `tfb.RealNVP(num_masked=1)` with a TF2 conditioner (a `tf.Module` MLP of the same
  shape, last layer zero-initialised, the same soft clamp) and `tfb.Permute` between layers.

All eight train with the same loop: a `tf.GradientTape` step in `tf.function(jit_compile=True)`
that draws a minibatch from the training set in-graph, Keras Adam with a cosine learning-rate
decay over the budget, 2 intra-op and 1 inter-op threads, float32, the same data and seeds. The
budget (`--seconds`) is this process's CPU time by default (`--clock cpu`: on a shared machine,
the time each flow actually got; on an idle one it ends no later than the same wall-clock budget)
or wall-clock time (`--clock wall`); compiling the first step is not counted. The models of a
set run one after another in an order rotated from set to set, so slow drift of the machine's
load does not always hit the same model. Reported per set and model: held-out NLL on 50k fresh
points and the gap `NLL - H` to the data's entropy, estimated on the same points as
`mean(log p(x) - log q(x))` with its standard error (the data's exact log-density is known).
Writes `quality_toy.md` and `quality_toy.json` next to this file, or into `--out-dir`;
`--merge JSON` lays this run's entries over an earlier report made with the same settings (the
table keeps the earlier models and sets, and lists every run with its load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = (
    "tfp_flows_maf_spline",
    "tfp_maf_spline",
    "tfp_flows_maf",
    "tfp_maf",
    "tfp_flows_real_nvp",
    "tfp_real_nvp",
    "tfp_flows_real_nvp_spline",
    "tfp_flows_flow_matching",
)
FLOW_MATCHING = "tfp_flows_flow_matching"
CLAMP = 3.0
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _soft_clamp(tf, h):
    return CLAMP * tf.tanh(h / CLAMP)


def _tfp_maf(tf, hidden: int, layers: int, bins: int | None = None, bound: float = 5.0):
    import tensorflow_probability as tfp

    from tfp_flows.bijectors.transformers import rational_quadratic_spline

    tfb, tfd = tfp.bijectors, tfp.distributions
    bijectors, nets = [], []
    for i in range(layers):
        net = tfb.AutoregressiveNetwork(
            params=2 if bins is None else 3 * bins - 1,
            hidden_units=[hidden, hidden],
            activation="relu",
            event_shape=[2],
        )

        def shift_and_log_scale(x, net=net):
            shift, log_scale = tf.unstack(net(x), axis=-1)
            return shift, _soft_clamp(tf, log_scale)

        def spline(x, net=net):  # TFP's own RationalQuadraticSpline, same parametrisation
            p = net(x)
            return rational_quadratic_spline(
                p[..., :bins], p[..., bins : 2 * bins], p[..., 2 * bins :], bound
            )

        if bins is None:
            maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale)
        else:
            maf = tfb.MaskedAutoregressiveFlow(bijector_fn=spline)
        bijectors.append(maf)
        nets.append(net)  # the wrapper function hides the network from module tracking
        if i < layers - 1:
            bijectors.append(tfb.Permute([1, 0]))
    base = tfd.Sample(tfd.Normal(tf.constant(0.0), tf.constant(1.0)), sample_shape=[2])
    dist = tfd.TransformedDistribution(base, tfb.Chain(bijectors))
    dist.log_prob(tf.zeros([1, 2]))  # builds the lazily built AutoregressiveNetworks
    variables = [v for net in nets for v in net.trainable_variables]
    return dist, variables


def _tf2_conditioner(tf, hidden: int, seed: int):
    """A `tf.Module` MLP `x -> (shift, log_scale)` for `tfb.RealNVP`: Glorot-uniform hidden
    layers, zero-initialised output (identity flow at the start), soft-clamped log-scale."""

    class Conditioner(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(seed)

            def glorot(n_in, n_out):
                limit = np.sqrt(6.0 / (n_in + n_out))
                return tf.Variable(rng.uniform(-limit, limit, (n_in, n_out)).astype(np.float32))

            self.w = [glorot(1, hidden), glorot(hidden, hidden), tf.Variable(tf.zeros([hidden, 2]))]
            self.b = [tf.Variable(tf.zeros([n])) for n in (hidden, hidden, 2)]

        def __call__(self, x, output_units, **kwargs):
            h = x
            for i, (w, b) in enumerate(zip(self.w, self.b)):
                h = tf.matmul(h, w) + b
                if i < 2:
                    h = tf.nn.relu(h)
            shift, log_scale = tf.split(h, 2, axis=-1)
            return shift, _soft_clamp(tf, log_scale)

    return Conditioner()


def _tfp_real_nvp(tf, hidden: int, layers: int):
    import tensorflow_probability as tfp

    tfb, tfd = tfp.bijectors, tfp.distributions
    bijectors, variables = [], []
    for i in range(layers):
        conditioner = _tf2_conditioner(tf, hidden, seed=i)
        variables += list(conditioner.trainable_variables)
        bijectors.append(tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=conditioner))
        if i < layers - 1:
            bijectors.append(tfb.Permute([1, 0]))
    base = tfd.Sample(tfd.Normal(tf.constant(0.0), tf.constant(1.0)), sample_shape=[2])
    return tfd.TransformedDistribution(base, tfb.Chain(bijectors)), variables


def build(
    model: str,
    hidden: int,
    layers: int,
    train: np.ndarray,
    bins: int = 8,
    bound=5.0,
    norm: str | None = "actnorm",
    fm: dict | None = None,
):
    """The flow and the list of its trainable variables (`fm`: the flow-matching flow's
    options)."""
    import tensorflow as tf

    from tfp_flows import flows
    from tfp_flows.bijectors import initialize_actnorm

    tf.random.set_seed(0)
    if model == "tfp_flows_maf":
        dist = flows.maf(2, num_layers=layers, hidden_units=(hidden, hidden), log_scale_clamp=CLAMP)
    elif model == "tfp_flows_maf_spline":
        dist = flows.maf(
            2,
            num_layers=layers,
            hidden_units=(hidden, hidden),
            transformer="spline",
            num_bins=bins,
            spline_bound=bound,
        )
    elif model == "tfp_maf_spline":
        return _tfp_maf(tf, hidden, layers, bins, bound)
    elif model == "tfp_flows_real_nvp_spline":
        dist = flows.real_nvp(
            [2],
            num_layers=layers,
            hidden_units=(hidden, hidden),
            transformer="spline",
            num_bins=bins,
            spline_bound=bound,
            normalization=norm,
        )
        initialize_actnorm(dist, train[:4096])
    elif model == "tfp_flows_real_nvp":
        dist = flows.real_nvp(
            [2], num_layers=layers, hidden_units=(hidden, hidden), log_scale_clamp=CLAMP
        )
        initialize_actnorm(dist, train[:4096])
    elif model == FLOW_MATCHING:
        from tfp_flows.continuous import continuous_flow

        dist = continuous_flow([2], **fm)
    elif model == "tfp_maf":
        return _tfp_maf(tf, hidden, layers)
    elif model == "tfp_real_nvp":
        return _tfp_real_nvp(tf, hidden, layers)
    else:
        raise ValueError(f"unknown model {model!r}; choose from {MODELS}")
    return dist, list(dist.trainable_variables)


def _loss(tf, model, dist, x):
    """The training loss: the NLL, or for flow matching its regression loss (no ODE solve)."""
    if model != FLOW_MATCHING:
        return -tf.reduce_mean(dist.log_prob(x))
    from tfp_flows.continuous import flow_matching_loss

    x0 = tf.random.normal(tf.shape(x))
    t = tf.random.uniform(tf.shape(x)[:1])
    return tf.reduce_mean(flow_matching_loss(dist.bijector.velocity, x0, x, t))


def train_and_evaluate(model, train, test, log_p_test, args) -> dict:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    layers = {"tfp_flows_real_nvp_spline": args.spline_coupling_layers}.get(
        model, args.spline_layers if model.endswith("_spline") else args.layers
    )
    norm = None if args.spline_coupling_norm == "none" else args.spline_coupling_norm
    fm = dict(
        hidden_units=(args.fm_hidden,) * args.fm_layers,
        fourier_features=args.fm_fourier_features,
        fourier_scale=args.fm_fourier_scale,
        solver=args.fm_solver,
        num_steps=args.fm_steps,
    )
    dist, variables = build(model, args.hidden, layers, train, args.bins, args.bound, norm, fm)
    optimizer = keras.optimizers.Adam(args.lr)
    optimizer.build(variables)
    data = tf.constant(train)
    batch = args.batch

    @tf.function(jit_compile=True)
    def step(learning_rate):
        optimizer.learning_rate.assign(learning_rate)
        idx = tf.random.uniform([batch], 0, data.shape[0], dtype=tf.int32)
        x = tf.gather(data, idx)
        with tf.GradientTape() as tape:
            loss = _loss(tf, model, dist, x)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    clock = CLOCKS[args.clock]
    wall0 = time.perf_counter()
    loss = float(step(tf.constant(args.lr)))  # compiles
    first_step = time.perf_counter() - wall0
    start, wall_start, steps, frac = clock(), time.perf_counter(), 0, 0.0
    while frac < 1.0 and np.isfinite(loss):
        lr = args.lr * 0.5 * (1.0 + np.cos(np.pi * frac))
        loss = float(step(tf.constant(lr, tf.float32)))
        steps += 1
        frac = (clock() - start) / args.seconds
    elapsed, wall = clock() - start, time.perf_counter() - wall_start

    log_prob = tf.function(dist.log_prob, jit_compile=args.fm_solver != "dopri")
    log_q = np.concatenate([log_prob(tf.constant(c)).numpy() for c in np.array_split(test, 10)])
    diff = log_p_test - log_q.astype(np.float64)
    n = len(test)
    return {
        "steps": steps,
        f"train_{args.clock}_s": round(elapsed, 1),
        "train_wall_s": round(wall, 1),
        "first_step_s": round(first_step, 1),
        "final_train_loss": loss,
        "test_nll": float(-log_q.mean()),
        "test_nll_se": float(log_q.std(ddof=1) / np.sqrt(n)),
        "gap": float(diff.mean()),
        "gap_se": float(diff.std(ddof=1) / np.sqrt(n)),
        "num_params": int(sum(int(np.prod(v.shape)) for v in variables)),
    }


def _runs(report: dict) -> list[dict]:
    """The runs a report holds: one, or several merged with `--merge` (oldest first)."""
    if "runs" in report:
        return report["runs"]
    machine, s = report["machine"], report["settings"]
    return [
        {
            "command": report.get("command", "python benchmarks/quality_toy.py"),
            "models": s["models"],
            "sets": s.get("sets", list(report["results"])),
            "load_start": machine["load_start"],
            "load_end": machine.get("load_end", machine["load_start"]),
        }
    ]


def merge(earlier: dict, report: dict) -> dict:
    """`report`'s entries laid over `earlier`'s (same settings but models and sets): the table
    keeps every model and set of both, the later run's figures where both have one."""
    same = ("seconds", "clock", "hidden", "layers", "spline_layers", "bins", "bound", "batch")
    same += ("lr", "train_size", "test_size")
    differ = [k for k in same if earlier["settings"].get(k) != report["settings"][k]]
    if differ:
        raise ValueError(f"--merge: the earlier run's settings differ in {differ}")
    merged = json.loads(json.dumps(earlier))
    for name, row in report["results"].items():
        merged["results"].setdefault(name, {}).update(row)
    models = merged["settings"]["models"]
    models += [m for m in report["settings"]["models"] if m not in models]
    sets = merged["settings"].setdefault("sets", list(earlier["results"]))
    sets += [n for n in report["settings"]["sets"] if n not in sets]
    for key, value in report["settings"].items():  # layers etc. of the models added
        if key not in ("models", "sets"):
            merged["settings"].setdefault(key, value)
    merged["runs"] = _runs(earlier) + _runs(report)
    merged.pop("command", None)
    return merged


def render_markdown(report: dict) -> str:
    s = report["settings"]
    models = s["models"]
    runs = _runs(report)
    if len(runs) == 1:
        header = [f"Command: `{runs[0]['command']}`", ""]
    else:
        header = [
            "Runs merged into this table (a later run's entries replace an earlier one's):",
            "",
        ]
        header += [
            f"* `{r['command']}` ({', '.join(r['models'])} on {', '.join(r['sets'])}; load "
            f"average (1 min) {r['load_start']:.1f} at the start, {r['load_end']:.1f} at the end)"
            for r in runs
        ]
        header.append("")
    lines = [
        "# Toy-density quality under the same time budget",
        "",
        *header,
        f"Budget: {s['seconds']:g} s of {s['clock']} time per model per set (compilation not "
        f"counted); {s['layers']} layers (spline flows: {s.get('spline_layers', '-')} layers of "
        f"{s.get('bins', '-')} bins on [-{s.get('bound', '-')}, {s.get('bound', '-')}]), hidden "
        f"{s['hidden']}x2 (tfp_flows_real_nvp_spline: {s.get('spline_coupling_layers', '-')} "
        f"spline couplings, {s.get('spline_coupling_norm', 'none')} between them), batch "
        f"{s['batch']}, Adam "
        f"{s['lr']:g} with cosine decay over the budget, {s['train_size']} training and "
        f"{s['test_size']} held-out points per set, 2 intra-op / 1 inter-op threads."
        + (
            f" tfp_flows_flow_matching: a {s['fm_layers']}x{s['fm_hidden']} SiLU velocity field "
            f"with {s.get('fm_fourier_features', 0)} Fourier features of x (scale "
            f"{s.get('fm_fourier_scale', 1.0):g}), NLL by {s['fm_solver']} "
            f"({s['fm_steps']} steps) with the exact trace."
            if FLOW_MATCHING in models and "fm_layers" in s
            else ""
        ),
        f"Machine: {report['machine']['cpu_count']} CPUs ({report['machine']['platform']}); "
        f"load average (1 min) {runs[0]['load_start']:.1f} at the start, "
        f"{runs[-1]['load_end']:.1f} at the end (other jobs were sharing the cores).",
        "",
        "Entries: NLL - H (nats; held-out, paired estimate with its standard error) / steps "
        "done in the budget. H: entropy of the data density (Monte Carlo, 200k points).",
        "",
        "| set | H (nats) | " + " | ".join(models) + " |",
        "|---" * (2 + len(models)) + "|",
    ]
    for name, row in report["results"].items():
        cells = [f"{row['entropy']:.3f} ± {row['entropy_se']:.3f}"]
        for m in models:
            if m not in row:
                cells.append("-")
                continue
            r = row[m]
            best = min(row[k]["gap"] for k in models if k in row) == r["gap"]
            gap = f"{r['gap']:.3f} ± {r['gap_se']:.3f}"
            cells.append(f"{'**' + gap + '**' if best else gap} / {r['steps']}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Held-out NLL (nats):",
        "",
        "| set | " + " | ".join(models) + " |",
        "|---" * (1 + len(models)) + "|",
    ]
    for name, row in report["results"].items():
        cells = [f"{row[m]['test_nll']:.3f}" if m in row else "-" for m in models]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="budget per model per set")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--sets", default="moons,8gaussians,checkerboard,rings,pinwheel")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--spline-layers", type=int, default=4, help="layers of the spline flows")
    parser.add_argument(
        "--spline-coupling-layers",
        type=int,
        default=6,
        help="couplings of the spline Real NVP (each transforms one of the two coordinates)",
    )
    parser.add_argument(
        "--spline-coupling-norm",
        choices=["actnorm", "none"],
        default="none",
        help="between the spline couplings",
    )
    parser.add_argument("--bins", type=int, default=32, help="spline bins")
    parser.add_argument("--bound", type=float, default=4.0, help="spline interval [-bound, bound]")
    parser.add_argument("--fm-hidden", type=int, default=256, help="flow matching: width")
    parser.add_argument("--fm-layers", type=int, default=3, help="flow matching: hidden layers")
    parser.add_argument(
        "--fm-fourier-features", type=int, default=64, help="flow matching: Fourier features of x"
    )
    parser.add_argument("--fm-fourier-scale", type=float, default=1.0)
    parser.add_argument("--fm-solver", default="rk4", help="flow matching: NLL solver")
    parser.add_argument("--fm-steps", type=int, default=32, help="flow matching: solver steps")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--train-size", type=int, default=200_000)
    parser.add_argument("--test-size", type=int, default=50_000)
    parser.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument(
        "--merge",
        metavar="JSON",
        help="an earlier quality_toy.json (same settings) to lay this run's entries over",
    )
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import tensorflow_probability as tfp

    from tfp_flows import datasets

    sets, models = args.sets.split(","), args.models.split(",")
    argv = sys.argv[1:] if argv is None else argv
    report = {
        "command": " ".join(["python benchmarks/quality_toy.py", *argv]),
        "settings": {**vars(args), "models": models, "sets": sets},
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_start": os.getloadavg()[0],
        },
        "versions": {
            "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__,
            "keras": keras.__version__,
        },
        "results": {},
    }
    del report["settings"]["out_dir"], report["settings"]["merge"]
    if args.merge:  # fail now, not after the training, if the earlier run does not fit
        with open(args.merge) as f:
            merge(json.load(f), {**report, "results": {}})
    for i, name in enumerate(sets):
        toy = datasets.TOY_DENSITIES[name]
        train = toy.sample(args.train_size, seed=1)
        test = toy.sample(args.test_size, seed=2)
        h, h_se = datasets.entropy(toy.sample, toy.log_prob, n=200_000, seed=3)
        row = {"entropy": h, "entropy_se": h_se}
        log_p_test = toy.log_prob(test)
        for model in models[i % len(models) :] + models[: i % len(models)]:
            print(f"== {name} / {model}: {args.seconds:g} s of {args.clock} time", flush=True)
            row[model] = train_and_evaluate(model, train, test, log_p_test, args)
            r = row[model]
            print(
                f"   NLL {r['test_nll']:.4f}  H {h:.4f}  gap {r['gap']:.4f} ± {r['gap_se']:.4f}"
                f"  ({r['steps']} steps, first step {r['first_step_s']} s)",
                flush=True,
            )
        report["results"][name] = row
    report["machine"]["load_end"] = os.getloadavg()[0]
    if args.merge:
        with open(args.merge) as f:
            report = merge(json.load(f), report)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "quality_toy.json"), "w") as f:
        json.dump(report, f, indent=2)
    markdown = render_markdown(report)
    with open(os.path.join(args.out_dir, "quality_toy.md"), "w") as f:
        f.write(markdown)
    print(markdown)
    return report


if __name__ == "__main__":
    main()
