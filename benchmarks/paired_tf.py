"""tfp_flows vs TFP's MAF in one process, both XLA-compiled, timed in alternating rounds.

    python benchmarks/paired_tf.py                  # cases C, A, B; 9 rounds
    python benchmarks/paired_tf.py --case B --rounds 5

`run.py` gives each library its own process, as a user would run it. On a shared 2-core machine
the speed of a process can drift by tens of per cent for its whole life (which core, what else
runs), so two processes a minute apart can disagree more than two libraries do. Here both flows
live in one process and are timed round by round, alternating which goes first, so drift hits
both alike; the figure that matters is the median over rounds of the per-round ratio TFP / ours.

The same runners (`backends.make_runner("tfp_flows_xla" / "tfp_xla", case)`), so the same
models, data, optimizer (Keras Adam 1e-3) and thread settings (2 intra-op, 1 inter-op) as
`run.py`'s MAF cases; writes `benchmarks/paired_tf.md` and `.json`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import backends  # noqa: E402
from backends.timing import alternating_rounds  # noqa: E402
from run import CASES, machine_info, write_report  # noqa: E402

LIBS = {"tfp_flows": "tfp_flows_xla", "TFP": "tfp_xla"}  # column name -> backend runner


def run_case(name, cfg, rounds, min_time):
    """Both flows of case `name` (5 MADEs, as run.py), step and sample, in alternating rounds."""
    runners = {col: backends.make_runner(lib, cfg, threads=2) for col, lib in LIBS.items()}
    for runner in runners.values():
        runner.setup()
    sync = next(iter(runners.values())).sync
    times = {}
    for what, method in (("step", "train_step"), ("sample", "sample")):
        fns = {col: getattr(runner, method) for col, runner in runners.items()}
        times[what], _ = alternating_rounds(fns, sync, rounds=rounds, min_time=min_time)
        print(
            f"case {name} {what}: "
            + ", ".join(
                f"{col} {statistics.median(times[what][col]) * 1e3:.2f} ms" for col in runners
            ),
            flush=True,
        )
    result = {"case": name, "config": cfg, "rounds": rounds}
    for what in ("step", "sample"):
        ours, theirs = times[what]["tfp_flows"], times[what]["TFP"]
        ratios = [t / o for o, t in zip(ours, theirs)]
        result[what] = {
            "tfp_flows_ms": [t * 1e3 for t in ours],
            "TFP_ms": [t * 1e3 for t in theirs],
            "tfp_flows_median_ms": statistics.median(ours) * 1e3,
            "TFP_median_ms": statistics.median(theirs) * 1e3,
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
    return result


def render(results, meta) -> str:
    lines = [
        "# tfp_flows vs TFP's MAF, one process, alternating rounds (XLA both)",
        "",
        f"Command: `{meta['command']}` ({meta['wall_min']:.1f} min). Machine: {meta['machine']}; "
        f"TF {meta['tf']}, TFP {meta['tfp']}, Keras {meta['keras']}; 2 intra-op, 1 inter-op "
        f"threads; 1-minute load average {meta['load'][0]:.1f}-{meta['load'][1]:.1f} during the "
        "run.",
        "",
        "Each round times a block of calls of each flow (same number of calls, about "
        f"{meta['min_time']} s), alternating which goes first. Cells: median over "
        f"{meta['rounds']} rounds; ratio = TFP time / tfp_flows time in the same round, median "
        "(min-max) over rounds (> 1: tfp_flows is faster). Step = forward + backward + Adam; "
        "sample = 512 points (D sequential passes for both MAFs).",
        "",
        "| case | step: tfp_flows | step: TFP | step ratio | sample: tfp_flows | sample: TFP "
        "| sample ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cfg = r["config"]
        cells = [f"{r['case']} (D={cfg['dim']}, H={cfg['hidden']}, batch {cfg['batch']})"]
        for what in ("step", "sample"):
            s = r[what]
            cells += [
                f"{s['tfp_flows_median_ms']:.3g} ms",
                f"{s['TFP_median_ms']:.3g} ms",
                f"**{s['ratio_median']:.2f}x** ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", default="C,A,B", help="MAF cases of run.py (C, A, B)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per block")
    parser.add_argument("--out", default=os.path.join(HERE, "paired_tf"), help="path stem")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.case.split(",") if c.strip()]
    for c in cases:
        if c not in CASES or CASES[c].get("flow") != "maf":
            raise SystemExit(f"--case: {c!r} is not a MAF case of run.py (C, A or B)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start, loads = time.perf_counter(), [os.getloadavg()[0]]
    results = []
    for c in cases:
        results.append(run_case(c, CASES[c], args.rounds, args.min_time))
        loads.append(os.getloadavg()[0])
    import keras
    import tensorflow as tf
    import tensorflow_probability as tfp

    info = machine_info([])
    machine = f"{info.get('Model name', 'unknown CPU')}, {info['nproc']} CPUs"
    meta = {
        "command": "python benchmarks/paired_tf.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "wall_min": (time.perf_counter() - start) / 60,
        "machine": machine,
        "tf": tf.__version__,
        "tfp": tfp.__version__,
        "keras": keras.__version__,
        "load": (min(loads), max(loads)),
        "rounds": args.rounds,
        "min_time": args.min_time,
    }
    write_report(args.out, {"meta": meta, "results": results}, render(results, meta))


if __name__ == "__main__":
    main()
