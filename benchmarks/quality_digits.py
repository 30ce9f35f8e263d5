"""Digits quality benchmark: test bits/dim of tfp_flows and TFP's built-in flows, same budget.

    python benchmarks/quality_digits.py                      # 240 s of training per model
    python benchmarks/quality_digits.py --budget 60 --models tfp_flows_glow,tfp_glow
    python benchmarks/quality_digits.py --clock cpu           # budget in CPU time (shared machine)

Protocol (issue 4): scikit-learn's bundled 8x8 digits, levels 0..16 (17 bins), images 0:1000
train, 1000:1350 validation, 1350: test. Every training batch is dequantised afresh,
`x = (k + u) / 17`; every model starts with Real NVP's logit pre-transform (alpha 0.05, its
log-det counted), so `bits/dim = (-log q(x) + 64 log 17) / (64 log 2)`. Early stopping on
validation bits/dim (one fixed dequantisation; evaluated once per epoch; the best weights are
restored); test bits/dim averaged over 10 dequantisation draws.

Every flow is trained by the same loop: a `tf.GradientTape` step under
`tf.function(jit_compile=True)` (plain `tf.function` if XLA fails, recorded in the table), AdamW
with the same learning rate, weight decay and batch, the same budget and the same patience. The
TFP peers are used as TFP documents them: `tfb.Glow` with `GlowDefaultNetwork` /
`GlowDefaultExitNetwork` (tf-keras networks), `tfb.RealNVP` layers with a TF2 (tf-keras) MLP
conditioner and reversal between them, `tfb.MaskedAutoregressiveFlow` with
`tfb.AutoregressiveNetwork`; sizes match the tfp_flows models'. The full-covariance Gaussian
is fitted in closed form in the logit space (10 dequantisations of the training images), with a
ridge on the covariance chosen on validation. The tfp_flows image flows come with affine
couplings (Real NVP's and Glow's defaults), with a per-pixel spline added at the data end
(`pixel_spline_bins`), and with rational-quadratic spline couplings (`transformer="spline"`,
sizes `REAL_NVP_SPLINE` and `GLOW_SPLINE`: the same layouts).

`--clock wall` (default) counts wall-clock seconds of training; `--clock cpu` counts the
process's CPU seconds divided by the 2 threads, an estimate of the wall time on an otherwise idle
2-core machine, for runs on a shared one. Writes `quality_digits.md` and `quality_digits.json`
next to this file (or into `--out-dir`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tfp_flows import datasets, flows  # noqa: E402
from tfp_flows.images import LogitTransform, bits_per_dim  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions
import tf_keras as tfk  # noqa: E402  (Keras 2: what TFP's own networks are built on)

LEVELS, SHAPE, ALPHA = datasets.DIGITS_LEVELS, (8, 8, 1), 0.05
NUM_DIMS = math.prod(SHAPE)

# Sizes shared by each pair of comparable models (tfp_flows vs TFP).
GLOW = dict(levels=2, steps_per_level=4, filters=32)
REAL_NVP = dict(num_layers=8, hidden=128)  # the vector peer of tfp_flows' image Real NVP
REAL_NVP_IMAGE = dict(num_scales=2, steps_per_scale=2, filters=32, num_blocks=1)
MAF = dict(num_layers=5, hidden=128)
SPLINE_BINS = 16  # tfp_flows' per-pixel marginal spline (`pixel_spline_bins`)
# The spline-coupling rows (`transformer="spline"`): the same layouts, rational-quadratic
# couplings; after the logit pre-transform the data lie within +-2.95.
REAL_NVP_SPLINE = dict(REAL_NVP_IMAGE, num_bins=8, spline_bound=4.0, pixel_spline_bins=None)
GLOW_SPLINE = dict(GLOW, num_bins=8, spline_bound=4.0, pixel_spline_bins=None)


# -- models ----------------------------------------------------------------------------------


def _with_logit(dist_or_bijector, event_shape):
    """A distribution over `[0, 1]^D` data: the logit pre-transform at the data end."""
    if isinstance(dist_or_bijector, tfb.Bijector):  # a TFP bijector from a flat latent
        base = tfd.Sample(tfd.Normal(0.0, 1.0), [NUM_DIMS])
        return tfd.TransformedDistribution(
            base, tfb.Chain([LogitTransform(ALPHA), dist_or_bijector])
        )
    del event_shape
    return tfd.TransformedDistribution(dist_or_bijector, LogitTransform(ALPHA))


def tfp_flows_glow():
    return flows.glow(SHAPE, **GLOW, logit_alpha=ALPHA), SHAPE


def tfp_flows_real_nvp():
    return flows.real_nvp(SHAPE, **REAL_NVP_IMAGE, logit_alpha=ALPHA), SHAPE


def tfp_flows_glow_spline():
    return flows.glow(SHAPE, **GLOW, logit_alpha=ALPHA, pixel_spline_bins=SPLINE_BINS), SHAPE


def tfp_flows_real_nvp_spline():
    dist = flows.real_nvp(SHAPE, **REAL_NVP_IMAGE, logit_alpha=ALPHA, pixel_spline_bins=SPLINE_BINS)
    return dist, SHAPE


def tfp_flows_real_nvp_spline_couplings():
    return flows.real_nvp(SHAPE, **REAL_NVP_SPLINE, transformer="spline", logit_alpha=ALPHA), SHAPE


def tfp_flows_glow_spline_couplings():
    return flows.glow(SHAPE, **GLOW_SPLINE, transformer="spline", logit_alpha=ALPHA), SHAPE


def tfp_flows_maf():
    dist = flows.maf(NUM_DIMS, num_layers=MAF["num_layers"], hidden_units=(MAF["hidden"],) * 2)
    return _with_logit(dist, (NUM_DIMS,)), (NUM_DIMS,)


def tfp_glow():
    filters = GLOW["filters"]
    glow = tfb.Glow(
        output_shape=SHAPE,
        num_glow_blocks=GLOW["levels"],
        num_steps_per_block=GLOW["steps_per_level"],
        coupling_bijector_fn=lambda shape: tfb.GlowDefaultNetwork(shape, num_hidden=filters),
        exit_bijector_fn=tfb.GlowDefaultExitNetwork,
        seed=0,
    )
    return _with_logit(glow, SHAPE), SHAPE


class _MLP(tf.Module):
    """A TF2 conditioner for `tfb.RealNVP`: tf-keras dense layers, zero-initialised output."""

    def __init__(self, input_size: int, output_size: int, hidden: int, name=None):
        super().__init__(name=name)
        self.net = tfk.Sequential(
            [
                tfk.layers.InputLayer(input_shape=(input_size,)),
                tfk.layers.Dense(hidden, activation="relu"),
                tfk.layers.Dense(hidden, activation="relu"),
                tfk.layers.Dense(2 * output_size, kernel_initializer="zeros"),
            ]
        )

    def __call__(self, x, output_units, **kwargs):
        shift, log_scale = tf.split(self.net(x), 2, axis=-1)
        return shift, log_scale


def tfp_real_nvp():
    layers, half = [], NUM_DIMS // 2
    for i in range(REAL_NVP["num_layers"]):
        mlp = _MLP(half, NUM_DIMS - half, REAL_NVP["hidden"], name=f"mlp_{i}")
        layers.append(tfb.RealNVP(num_masked=half, shift_and_log_scale_fn=mlp))
        if i < REAL_NVP["num_layers"] - 1:
            layers.append(tfb.Permute(list(range(NUM_DIMS))[::-1]))
    base = tfd.Sample(tfd.Normal(0.0, 1.0), [NUM_DIMS])
    return _with_logit(tfd.TransformedDistribution(base, tfb.Chain(layers)), None), (NUM_DIMS,)


def tfp_maf():
    layers = []
    for i in range(MAF["num_layers"]):
        made = tfb.AutoregressiveNetwork(
            params=2, hidden_units=[MAF["hidden"]] * 2, activation="relu"
        )
        layers.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made))
        if i < MAF["num_layers"] - 1:
            layers.append(tfb.Permute(list(range(NUM_DIMS))[::-1]))
    base = tfd.Sample(tfd.Normal(0.0, 1.0), [NUM_DIMS])
    return _with_logit(tfd.TransformedDistribution(base, tfb.Chain(layers)), None), (NUM_DIMS,)


MODELS = {
    "tfp_flows_glow": ("tfp_flows Glow", tfp_flows_glow),
    "tfp_flows_real_nvp": ("tfp_flows Real NVP (multi-scale, images)", tfp_flows_real_nvp),
    "tfp_flows_glow_spline": ("tfp_flows Glow + pixelwise spline", tfp_flows_glow_spline),
    "tfp_flows_real_nvp_spline": (
        "tfp_flows Real NVP + pixelwise spline",
        tfp_flows_real_nvp_spline,
    ),
    "tfp_flows_real_nvp_spline_couplings": (
        "tfp_flows Real NVP (spline couplings)",
        tfp_flows_real_nvp_spline_couplings,
    ),
    "tfp_flows_glow_spline_couplings": (
        "tfp_flows Glow (spline couplings)",
        tfp_flows_glow_spline_couplings,
    ),
    "tfp_flows_maf": ("tfp_flows MAF", tfp_flows_maf),
    "gaussian": ("full-covariance Gaussian (closed form)", None),
    "tfp_glow": ("TFP tfb.Glow", tfp_glow),
    "tfp_real_nvp": ("TFP tfb.RealNVP (vectors)", tfp_real_nvp),
    "tfp_maf": ("TFP tfb.MaskedAutoregressiveFlow", tfp_maf),
}


# -- protocol --------------------------------------------------------------------------------


def dequantize_np(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return ((pixels + rng.random(pixels.shape)) / LEVELS).astype(np.float32)


def _bpd(log_prob):
    return bits_per_dim(log_prob, num_dims=NUM_DIMS, num_bins=LEVELS)


class Clock:
    """Seconds of training: wall clock, or process CPU time over the thread count."""

    def __init__(self, kind: str, threads: int):
        self.kind, self.threads = kind, threads
        self.start = self._now()

    def _now(self):
        return time.perf_counter() if self.kind == "wall" else time.process_time() / self.threads

    def elapsed(self) -> float:
        return self._now() - self.start


def train_flow(key: str, data: dict, args) -> dict:
    tf.keras.utils.set_random_seed(args.seed)
    dist, event_shape = MODELS[key][1]()
    reshape = (lambda a: a.reshape(len(a), *event_shape)) if event_shape != SHAPE else (lambda a: a)
    train, val = reshape(data["train"]), reshape(data["val"])
    rng = np.random.default_rng(args.seed)
    # Builds lazy networks and runs ActNorm's data-dependent init (tfp_flows' and TFP Glow's).
    dist.log_prob(tf.constant(dequantize_np(train, rng)))
    variables = list(dist.trainable_variables)
    lr = args.lr
    if args.lr_half_life:
        lr = tf.keras.optimizers.schedules.ExponentialDecay(args.lr, args.lr_half_life, 0.5)
    optimizer = tf.keras.optimizers.AdamW(
        lr, weight_decay=args.weight_decay, clipnorm=args.clipnorm
    )
    optimizer.build(variables)
    # Polyak averaging: validation, early stopping and test use the moving average.
    averages = [tf.Variable(v, trainable=False) for v in variables]
    state = [*variables, *optimizer.variables, *averages]
    snapshot = [v.numpy() for v in state]

    def step(levels):
        x = (levels + tf.random.uniform(tf.shape(levels))) / LEVELS  # fresh dequantisation
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(x))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        for a, v in zip(averages, variables):
            a.assign(args.ema * a + (1.0 - args.ema) * v)
        return loss

    def evaluate(x):
        return tf.reduce_mean(_bpd(dist.log_prob(x)))

    def swap():  # model weights <-> moving averages (a no-op in effect without --ema)
        for a, v in zip(averages, variables):
            current = v.numpy()
            v.assign(a)
            a.assign(current)

    val_x = tf.constant(val)
    batch0 = tf.constant(train[: args.batch], tf.float32)
    compiled = "graph" if args.no_jit else "xla"
    try:  # compile (and check) before the clock starts
        train_step = tf.function(step, jit_compile=compiled == "xla")
        eval_step = tf.function(evaluate, jit_compile=compiled == "xla")
        train_step(batch0), eval_step(val_x)
    except Exception as err:  # XLA has no kernel for some op: fall back, and say so
        print(f"{key}: jit_compile failed ({type(err).__name__}: {str(err)[:200]})")
        train_step, eval_step, compiled = tf.function(step), tf.function(evaluate), "graph"
        train_step(batch0), eval_step(val_x)
    for v, value in zip(state, snapshot):  # undo the compiling step
        v.assign(value)

    steps_per_epoch = len(train) // args.batch
    best, best_step, bad, step_count, curve = float(eval_step(val_x)), 0, 0, 0, []
    best_weights = [v.numpy() for v in variables]
    clock = Clock(args.clock, args.threads)
    wall = time.perf_counter()
    stopped = "budget"
    while True:  # epochs, until the budget is spent (at least one) or patience runs out
        order = rng.permutation(len(train))
        for b in range(steps_per_epoch):
            train_step(tf.constant(train[order[b * args.batch : (b + 1) * args.batch]], tf.float32))
        step_count += steps_per_epoch
        swap()
        value = float(eval_step(val_x))
        swap()
        curve.append((step_count, round(value, 4)))
        if args.verbose:
            print(f"  step {step_count:5d}  val bits/dim {value:.4f}  {clock.elapsed():.0f} s")
        if not math.isfinite(value):
            stopped = "diverged"
            break
        if value < best:
            best, best_step, bad = value, step_count, 0
            best_weights = [a.numpy() for a in averages]
        else:
            bad += 1
            if bad >= args.patience:
                stopped = "early stopping"
                break
        if clock.elapsed() >= args.budget:
            break
    seconds, wall = clock.elapsed(), time.perf_counter() - wall
    for v, value in zip(variables, best_weights):
        v.assign(value)
    test = reshape(data["test"])
    draws = [
        float(eval_step(tf.constant(dequantize_np(test, np.random.default_rng(1000 + i)))))
        for i in range(10)
    ]
    return {
        "model": MODELS[key][0],
        "test_bits_per_dim": round(float(np.mean(draws)), 4),
        "test_bits_per_dim_sd_over_draws": round(float(np.std(draws)), 4),
        "best_val_bits_per_dim": round(best, 4),
        "best_step": best_step,
        "steps_run": step_count,
        "seconds": round(seconds, 1),
        "wall_seconds": round(wall, 1),
        "stopped": stopped,
        "compiled": compiled,
        "num_parameters": int(sum(np.prod(v.shape) for v in variables)),
        "val_curve": curve,
    }


def fit_gaussian(data: dict, args) -> dict:
    """Closed-form full-covariance Gaussian in the logit space; the ridge chosen on validation."""
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    flat = {k: v.reshape(len(v), NUM_DIMS) for k, v in data.items()}
    logit = LogitTransform(ALPHA, dtype=tf.float64)
    train = np.concatenate([dequantize_np(flat["train"], rng) for _ in range(10)])
    z = logit.inverse(tf.constant(train, tf.float64)).numpy()
    mean, cov = z.mean(0), np.cov(z.T)

    def dist(ridge):
        scale = np.linalg.cholesky(cov + ridge * np.eye(NUM_DIMS))
        return tfd.TransformedDistribution(
            tfd.MultivariateNormalTriL(mean, scale), tfb.Invert(tfb.Invert(logit))
        )

    def bpd(d, x):
        return float(tf.reduce_mean(_bpd(d.log_prob(tf.constant(x, tf.float64)))))

    val = flat["val"].astype(np.float64)
    scores = {r: bpd(dist(r), val) for r in (0.0, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)}
    ridge = min(scores, key=scores.get)
    best = dist(ridge)
    draws = [
        bpd(best, dequantize_np(flat["test"], np.random.default_rng(1000 + i))) for i in range(10)
    ]
    return {
        "model": MODELS["gaussian"][0] + f", ridge {ridge:g}",
        "test_bits_per_dim": round(float(np.mean(draws)), 4),
        "test_bits_per_dim_sd_over_draws": round(float(np.std(draws)), 4),
        "best_val_bits_per_dim": round(scores[ridge], 4),
        "best_step": 0,
        "steps_run": 0,
        "seconds": round(time.perf_counter() - start, 1),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "stopped": "closed form",
        "compiled": "numpy",
        "num_parameters": NUM_DIMS + NUM_DIMS * (NUM_DIMS + 1) // 2,
        "val_curve": [],
    }


def render_markdown(results: dict, meta: dict) -> str:
    lines = [
        "# Digits: test bits/dim under the same training budget",
        "",
        f"Protocol: {meta['protocol']}",
        "",
        f"Budget {meta['budget']} s of training per model ({meta['clock']} clock), batch "
        f"{meta['batch']}, AdamW lr {meta['lr']} weight decay {meta['weight_decay']}, patience "
        f"{meta['patience']} epochs, weight averaging (EMA) {meta.get('ema', 0)}, lr half-life "
        f"{meta.get('lr_half_life', 0) or 'none'}. Sizes: {meta.get('sizes')}. "
        f"Machine: {meta['machine']}. Command: `{meta['command']}`.",
        "",
        "| model | test bits/dim | best val bits/dim | best step | steps run | time (s) "
        "| stopped by | compiled | parameters | load (1 min, start/end) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    previous = meta.get("previous")
    if previous:  # the figures of the table this one replaces, for a regression check
        lines[-2] = lines[-2].replace(" | best val", " | previous table | best val")
        lines[-1] += "---|"
    for key, r in sorted(results.items(), key=lambda kr: kr[1].get("test_bits_per_dim", math.inf)):
        if "error" in r:
            empty = "| " * (9 if previous else 8)
            lines.append(f"| {r['model']} | error: {r['error'][:80]} {empty}|")
            continue
        load = "/".join(f"{a:.1f}" for a in r.get("load_average", ())) or "-"
        before = ""
        if previous:
            before = f"{previous[key]:.3f} | " if key in previous else "- | "
        lines.append(
            f"| {r['model']} | {r['test_bits_per_dim']:.3f} | {before}"
            f"{r['best_val_bits_per_dim']:.3f} "
            f"| {r['best_step']} | {r['steps_run']} | {r['seconds']:.0f} | {r['stopped']} "
            f"| {r['compiled']} | {r['num_parameters']:,} | {load} |"
        )
    lines += [
        "",
        *([meta["note"], ""] if meta.get("note") else []),
        "Test bits/dim: mean over 10 dequantisation draws (their sd is in the JSON, about 0.005).",
        "Lower is better; the issue's target for tfp_flows is 2.25 or less.",
        "",
    ]
    return "\n".join(lines)


def combine(dirs: list[str], out_dir: str, previous: str | None = None) -> dict:
    """Merges runs made with the same settings, one or more models each, into one table;
    `previous`: a `quality_digits.json` whose test figures are shown next to the new ones."""
    results, meta = {}, None
    for d in dirs:
        with open(os.path.join(d, "quality_digits.json")) as f:
            run = json.load(f)
        results.update(run["results"])
        meta = meta or dict(run["meta"])
        same = ("protocol", "batch", "lr", "weight_decay", "patience", "ema", "lr_half_life")
        differ = [k for k in same if run["meta"].get(k) != meta.get(k)]
        if differ:
            raise ValueError(f"{d}: settings differ from the first run's in {differ}")
        meta["sizes"] = {**meta["sizes"], **run["meta"]["sizes"]}  # the later runs' sizes
        if run["meta"]["command"] not in meta["command"]:
            meta["command"] += "`; `" + run["meta"]["command"]
    if previous:
        with open(previous) as f:
            old = json.load(f)["results"]
        meta["previous"] = {k: r["test_bits_per_dim"] for k, r in old.items() if "error" not in r}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "quality_digits.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    with open(os.path.join(out_dir, "quality_digits.md"), "w") as f:
        f.write(render_markdown(results, meta))
    print(render_markdown(results, meta))
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"from {list(MODELS)}")
    parser.add_argument("--budget", type=float, default=240.0, help="training seconds per model")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--clipnorm", type=float, default=10.0)
    parser.add_argument("--lr-half-life", type=int, default=0, help="steps; 0: constant lr")
    parser.add_argument("--ema", type=float, default=0.0, help="Polyak averaging momentum")
    parser.add_argument("--patience", type=int, default=10, help="epochs without improvement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-jit", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print every evaluation")
    parser.add_argument("--smoke", action="store_true", help="tiny models, 2 epochs, no XLA")
    parser.add_argument(
        "--sizes", default="{}", help='JSON overrides, e.g. {"GLOW": {"filters": 64}}'
    )
    parser.add_argument("--out-dir", default=HERE)
    parser.add_argument(
        "--combine",
        nargs="+",
        metavar="DIR",
        help="only merge the quality_digits.json of runs in DIRs (e.g. one model per process)",
    )
    parser.add_argument(
        "--previous",
        metavar="JSON",
        help="with --combine: an earlier quality_digits.json, its figures shown in a column",
    )
    args = parser.parse_args(argv)
    if args.combine:
        return combine(args.combine, args.out_dir, args.previous)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process (a test): keep its pools
        print(f"note: thread pools already set; intra-op {args.threads} not applied")
    os.makedirs(args.out_dir, exist_ok=True)

    for group, sizes in json.loads(args.sizes).items():
        globals()[group].update(sizes)
    data = {s: datasets.digits(s) for s in ("train", "validation", "test")}
    if args.smoke:
        args.budget, args.patience, args.no_jit, args.batch = 0.0, 1, True, 32
        data = {k: v[:64] for k, v in data.items()}
        structure = ("levels", "steps_per_level", "num_layers", "num_scales", "steps_per_scale")
        for sizes in (GLOW, REAL_NVP, REAL_NVP_IMAGE, MAF, REAL_NVP_SPLINE, GLOW_SPLINE):
            sizes.update({k: 1 for k in (*structure, "num_blocks") if k in sizes})
            sizes.update({k: 4 for k in ("hidden", "filters") if k in sizes})
    data["val"] = dequantize_np(data.pop("validation"), np.random.default_rng(99))
    results = {}
    for key in args.models.split(","):
        if key not in MODELS:
            raise ValueError(f"unknown model {key!r}; choose from {list(MODELS)}")
        print(f"== {key}", flush=True)
        load = os.getloadavg()[0]
        try:
            results[key] = (
                fit_gaussian(data, args) if key == "gaussian" else train_flow(key, data, args)
            )
        except Exception as err:  # one failing peer must not lose the others' figures
            results[key] = {"model": MODELS[key][0], "error": f"{type(err).__name__}: {err}"}
        results[key]["load_average"] = [round(load, 1), round(os.getloadavg()[0], 1)]
        print({k: v for k, v in results[key].items() if k != "val_curve"}, flush=True)

    meta = {
        "protocol": "sklearn 8x8 digits, train 0:1000, validation 1000:1350, test 1350:; 17 "
        "levels; fresh uniform dequantisation per batch; logit pre-transform alpha 0.05 (log-det "
        "counted); early stopping on validation bits/dim; test bits/dim over 10 draws.",
        "budget": args.budget,
        "clock": args.clock,
        "batch": args.batch,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "patience": args.patience,
        "ema": args.ema,
        "lr_half_life": args.lr_half_life,
        "sizes": {
            "GLOW": GLOW,
            "REAL_NVP": REAL_NVP,
            "REAL_NVP_IMAGE": REAL_NVP_IMAGE,
            "MAF": MAF,
            "REAL_NVP_SPLINE": REAL_NVP_SPLINE,
            "GLOW_SPLINE": GLOW_SPLINE,
        },
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} intra-op threads, TF {tf.__version__}, TFP {tfp.__version__}",
        "command": "python benchmarks/quality_digits.py " + " ".join(argv or sys.argv[1:]),
    }
    with open(os.path.join(args.out_dir, "quality_digits.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    with open(os.path.join(args.out_dir, "quality_digits.md"), "w") as f:
        f.write(render_markdown(results, meta))
    print(render_markdown(results, meta))
    return results


if __name__ == "__main__":
    main()
