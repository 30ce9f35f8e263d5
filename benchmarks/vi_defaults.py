"""Do `vi.fit`'s defaults work? KL(q || p) of the default call vs the best reachable in 5 minutes.

    python benchmarks/vi_defaults.py                        # both problems, as reported
    python benchmarks/vi_defaults.py --problems u1 --best-budget 60 --candidates 3e-3:64

Two problems, each with the default surrogate `vi.flow_surrogate_posterior(...)` (Real NVP):

* `u1`: the 2-D energy U1 of Rezende & Mohamed (2015) (`tfp_flows.targets`); `log Z` by the
  midpoint rule on a fine grid (`targets.log_normalizer`).
* `logistic`: the breast-cancer Bayesian logistic regression of
  `examples/bayesian_logistic_regression.py` (31 coefficients); `log Z` by importance sampling
  with the surrogate of the highest ELBO and `--is-samples` draws (`log mean w`; its effective
  sample size is reported: the estimate is consistent and biased low by about
  `var(w) / (2 N mean(w)^2)`, negligible at the ESS seen).

For each problem: `vi.fit(q, target)` with every default (the figure a user gets; with
`--ablation` also on a surrogate built with `affine=False`), then one run per candidate
`learning_rate:sample_size` with `--best-budget` seconds (cosine schedule, stick-the-landing;
the same flow). `KL = log Z - ELBO`, the ELBO from `--eval-samples` draws.
The machine is shared: the load average is recorded beside the figures (a loaded machine takes
fewer steps in a time budget, so high-load figures are pessimistic). Writes
`benchmarks/vi_defaults.md` and `.json`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from run import machine_info, write_report  # noqa: E402

from tfp_flows import targets, train, vi  # noqa: E402


def _logistic_posterior():
    path = os.path.join(os.path.dirname(HERE), "examples", "bayesian_logistic_regression.py")
    spec = importlib.util.spec_from_file_location("bayesian_logistic_regression", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    x, y = example.load_data()
    return example.make_model(x).experimental_pin(malignant=y)


def problem(name: str):
    """`(make_surrogate, target_log_prob_fn, log Z or None)`."""
    if name == "u1":
        surrogate = lambda **kw: vi.flow_surrogate_posterior(event_shape=[2], **kw)  # noqa: E731
        return surrogate, targets.energy("u1"), targets.log_normalizer("u1")
    posterior = _logistic_posterior()
    surrogate = lambda **kw: vi.flow_surrogate_posterior(posterior, **kw)  # noqa: E731
    return surrogate, posterior.unnormalized_log_prob, None


def log_weights(q, target, num_samples: int, chunk: int = 20_000) -> np.ndarray:
    @tf.function(autograph=False)
    def draw(seed):
        _, _, log_w = train.sample_and_log_weights(
            q, lambda z: vi.call_target(target, z), chunk, seed=seed
        )
        return log_w

    return np.concatenate(
        [draw(tf.constant([7, i])).numpy() for i in range(-(-num_samples // chunk))]
    ).astype(np.float64)


def run_one(make_surrogate, target, eval_samples: int, surrogate_kwargs=None, seed=0, **fit_kwargs):
    keras.utils.set_random_seed(seed)  # the surrogate's initial weights
    q = make_surrogate(**(surrogate_kwargs or {}))
    load_before = os.getloadavg()[0]
    result = vi.fit(q, target, seed=seed, **fit_kwargs)
    summary = train.importance_summary(log_weights(q, target, eval_samples))
    return {
        "fit_kwargs": {k: v for k, v in fit_kwargs.items() if k != "report_every"},
        "steps": result.steps,
        "wall_s": round(result.elapsed_s, 1),
        "first_step_s": round(result.first_step_s, 1),
        "skipped": result.skipped_steps,
        "elbo": float(summary["elbo"]),
        "is_log_z": float(summary["log_z"]),
        "ess_fraction": float(summary["ess_fraction"]),
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "_q": q,
    }


def measure(name: str, args) -> dict:
    make_surrogate, target, log_z = problem(name)
    runs = {}
    for seed in args.seeds:  # the default call (with `--default` overrides), once per seed
        key = "default" + (f", {args.default_label}" if args.default else "")
        key += f", seed {seed}" if len(args.seeds) > 1 else ""
        print(f"== {name}: {key}")
        runs[key] = run_one(
            make_surrogate, target, args.eval_samples, args.surrogate, seed=seed, **args.default
        )
    if args.ablation:  # the default call on a surrogate without its trainable affine map
        print(f"== {name}: default call, affine=False")
        runs["default, affine=False"] = run_one(
            make_surrogate, target, args.eval_samples, surrogate_kwargs={"affine": False}
        )
    for lr, size in args.candidates:
        key = f"lr={lr:g}, samples={size}, {args.best_budget:g} s"
        print(f"== {name}: {key}")
        runs[key] = run_one(
            make_surrogate,
            target,
            args.eval_samples,
            args.surrogate,
            time_budget_s=args.best_budget,
            learning_rate=lr,
            sample_size=size,
            report_every=30.0,
        )
    log_z_note = "grid (midpoint rule)"
    if log_z is None:  # importance sampling with the surrogate of the highest ELBO
        best = max(runs.values(), key=lambda r: r["elbo"])
        summary = train.importance_summary(log_weights(best["_q"], target, args.is_samples))
        log_z = float(summary["log_z"])
        log_z_note = (
            f"importance sampling, {args.is_samples} draws from the best surrogate, "
            f"ESS fraction {float(summary['ess_fraction']):.3f}"
        )
    for run in runs.values():
        run.pop("_q")
        run["kl"] = log_z - run["elbo"]
    tuned = {k: r for k, r in runs.items() if not k.startswith("default")}
    best_key = min(tuned, key=lambda k: tuned[k]["kl"]) if tuned else None
    return {"log_z": log_z, "log_z_from": log_z_note, "runs": runs, "best": best_key}


def render(results: dict, meta: dict) -> str:
    lines = [
        "# `vi.fit` defaults vs the best KL in a 5-minute budget",
        "",
        f"Command: `{meta['command']}`. Machine: {meta['machine'].get('Model name', '?')}, "
        f"{meta['machine'].get('nproc')} CPUs, flags {meta['machine'].get('Flags', '?')}; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}. Load average (1 min) "
        f"{meta['load_range'][0]:.2f}-{meta['load_range'][1]:.2f} on a machine shared with "
        "other jobs: time-budgeted runs took fewer steps than on an idle machine.",
        "",
        "| problem | run | steps | wall (s) | ELBO | KL(q‖p) (nats) | ESS fraction |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, res in results.items():
        for key, run in res["runs"].items():
            tag = " (best)" if key == res["best"] else ""
            lines.append(
                f"| {name} | {key}{tag} | {run['steps']} | {run['wall_s']:.1f} | "
                f"{run['elbo']:.4f} | {run['kl']:.4f} | {run['ess_fraction']:.3f} |"
            )
    lines.append("")
    for name, res in results.items():
        kls = sorted(r["kl"] for k, r in res["runs"].items() if k.startswith("default"))
        best = res["runs"].get(res["best"])
        median = float(np.median(kls))
        ratio = f", {median / best['kl']:.2f}x the best" if best and best["kl"] > 0 else ""
        spread = (
            f" (median of {len(kls)} seeds, {kls[0]:.4f}-{kls[-1]:.4f})" if len(kls) > 1 else ""
        )
        lines.append(
            f"* {name}: log Z = {res['log_z']:.4f} ({res['log_z_from']}); default KL "
            f"{median:.4f}{spread}{ratio}."
        )
    return "\n".join(lines) + "\n"


def _overrides(text: str) -> dict:
    """`"a=1,b=2e-3,c=spline,d=False"` -> `{"a": 1, "b": 0.002, "c": "spline", "d": False}`."""

    def value(v: str):
        if v in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[v]
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v

    return {k: value(v) for k, v in (pair.split("=") for pair in text.split(",") if pair)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="u1,logistic")
    parser.add_argument("--best-budget", type=float, default=300.0)
    parser.add_argument(
        "--candidates",
        default="1e-3:256,3e-3:256",
        help="learning_rate:sample_size pairs for the tuned runs, comma-separated",
    )
    parser.add_argument(
        "--ablation", action="store_true", help="also the default call with affine=False"
    )
    parser.add_argument(
        "--seeds", default="0", help="seeds of the default call (one run each), comma-separated"
    )
    parser.add_argument(
        "--default",
        default="",
        help="vi.fit overrides for the default call, e.g. sample_size=128 (to try a new default)",
    )
    parser.add_argument(
        "--surrogate",
        default="",
        help="flow_surrogate_posterior overrides for every run, e.g. transformer=spline",
    )
    parser.add_argument("--eval-samples", type=int, default=200_000)
    parser.add_argument("--is-samples", type=int, default=2_000_000)
    parser.add_argument("--out", default=os.path.join(HERE, "vi_defaults"))
    args = parser.parse_args(argv)
    args.candidates = [
        (float(lr), int(size))
        for lr, size in (pair.split(":") for pair in args.candidates.split(",") if pair)
    ]
    args.seeds = [int(x) for x in args.seeds.split(",") if x]
    args.default_label = args.default
    args.default, args.surrogate = _overrides(args.default), _overrides(args.surrogate) or None
    start = time.perf_counter()
    results = {name: measure(name, args) for name in args.problems.split(",")}
    loads = [v for res in results.values() for r in res["runs"].values() for v in r["loadavg_1min"]]
    info = machine_info([{"versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}])
    meta = {
        "command": "python benchmarks/vi_defaults.py " + " ".join(argv or sys.argv[1:]),
        "machine": info,
        "load_range": [min(loads), max(loads)],
        "total_s": round(time.perf_counter() - start, 1),
    }
    write_report(args.out, {"meta": meta, "results": results}, render(results, meta))


if __name__ == "__main__":
    main()
