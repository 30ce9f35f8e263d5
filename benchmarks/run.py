"""Side-by-side benchmark: tfp_flows vs TFP's built-ins, zuko and nflows (MAF, Real NVP, Glow).

    python benchmarks/run.py --quick       # smoke run: cases C, R, G8, one repeat, short blocks,
                                           # written to out/bench_quick/
    python benchmarks/run.py               # every case, alternating repeats (~40 min loaded)
    python benchmarks/run.py --case A,R    # some cases (repeatable; default: all)
    python benchmarks/run.py --readme README.md   # every case, then README's speed tables

Run it with an interpreter that has torch, zuko and nflows (the `bench` extra) to include the
PyTorch libraries, or pass `--python` for the workers; without them those are skipped.

Cases: MAF A, B, C (the issue's sizes), Real NVP R (vectors, case A's sizes), Glow G8 (8x8x1)
and G16 (16x16x3). Each (case, library, repeat) runs `_worker.py` in its own process (so the
RSS high-water mark is that case's); per case the libraries alternate (A B C ... A B C ...) over
the repeats so slow drift of the machine shows up in the spread instead of in one library's
median. Writes `results.json`
(every raw record and the summary) and `results.md` (medians, min-max over repeats,
tfp_flows-XLA / peer ratios, compute efficiency against the best float32 matmul peak its framework
reached in the run) next to this file, or to `--out-dir`. Libraries whose framework is not
importable (e.g. no torch) are skipped, with the reason in the output and in `results.*`.

The cases are `backends/cases.py`'s, the libraries `backends/`' runners (one module per library),
the tables `backends/report.py`'s; this script only runs the workers and collects their records.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import backends  # noqa: E402
from backends import CASES, LIBS, QUICK_CASES, label, supports  # noqa: E402
from backends.readme_table import readme_block, update_readme  # noqa: E402
from backends.report import (  # noqa: E402
    ARCHITECTURE,
    machine_info,
    render_markdown,
    summarize,
    write_report,
)

__all__ = [
    "ARCHITECTURE",
    "CASES",
    "label",
    "machine_info",
    "main",
    "render_markdown",
    "summarize",
    "write_report",
]


def run_worker(python: str, lib: str, cases: list[str], args, timeout: float) -> list[dict]:
    cmd = [python, os.path.join(HERE, "_worker.py"), "--lib", lib]
    for case in cases:
        cmd += ["--case", json.dumps(CASES[case])]
    cmd += ["--min-time", str(args.min_time), "--blocks", str(args.blocks)]
    cmd += ["--peak-reps", str(args.peak_reps), "--threads", str(args.threads)]
    if args.omp_wait_policy:
        cmd += ["--omp-wait-policy", args.omp_wait_policy]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{"error": f"timed out after {timeout:.0f} s", "lib": lib, "case": c} for c in cases]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    if proc.returncode != 0 or not lines:
        error = proc.stderr[-2000:]
        return [
            {"error": error, "lib": lib, "returncode": proc.returncode, "case": c} for c in cases
        ]
    records = json.loads(lines[-1])
    for case, record in zip(cases, records):
        record["case"] = case
        record["process_wall_s"] = time.perf_counter() - start
    return records


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="cases C,R,G8, 1 repeat, short blocks")
    parser.add_argument(
        "--case",
        "--cases",
        dest="cases",
        action="append",
        default=None,
        help=f"case names, e.g. 'A' or 'C,A,B' (repeatable; of {','.join(CASES)}; default: "
        f"all; quick: {','.join(QUICK_CASES)})",
    )
    parser.add_argument("--libs", default=",".join(LIBS))
    parser.add_argument("--repeats", type=int, default=None, help="default 2 (quick: 1)")
    parser.add_argument("--min-time", type=float, default=None, help="seconds per timed block")
    parser.add_argument("--blocks", type=int, default=None)
    parser.add_argument("--peak-reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--readme",
        help="also rewrite the speed tables of this README (between its speed-table markers)",
    )
    backends.add_omp_wait_policy_argument(parser)
    parser.add_argument("--python", default=sys.executable, help="interpreter for the workers")
    parser.add_argument("--timeout", type=float, default=900.0, help="per worker, seconds")
    parser.add_argument(
        "--out-dir", default=None, help="default: benchmarks/ (quick: out/bench_quick/)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.out_dir = args.out_dir or (
        os.path.join(os.path.dirname(HERE), "out", "bench_quick") if quick else HERE
    )
    names = [n for arg in args.cases for n in arg.split(",")] if args.cases else None
    cases = names or list(QUICK_CASES if quick else CASES)
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    args.repeats = args.repeats or (1 if quick else 2)
    args.min_time = args.min_time or (0.05 if quick else 0.15)
    args.blocks = args.blocks or 3
    unknown = sorted(set(args.libs.split(",")) - set(LIBS))
    if unknown:
        parser.error(f"unknown librar(y/ies) {unknown}; choose from {list(LIBS)}")
    missing = {lib: backends.unavailable(lib, args.python) for lib in args.libs.split(",")}
    libs = [lib for lib, reason in missing.items() if reason is None]
    skipped = {lib: reason for lib, reason in missing.items() if reason is not None}
    for lib, reason in skipped.items():
        print(f"skipping {lib}: {reason}", flush=True)
    start = time.perf_counter()
    records: list[dict] = []

    def write(done: bool) -> tuple[str, dict, dict, dict]:
        """Writes results.json/md from the records so far (a cut-short run leaves its part).

        Returns the Markdown and the summary, machine info and meta it was rendered from.
        """
        wall = time.perf_counter() - start
        summary = summarize(records)
        summary = {case: summary[case] for case in cases if case in summary}
        info = machine_info([r for r in records if "error" not in r])
        meta = {
            "command": " ".join(
                ["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]
            ),
            "argv": sys.argv[1:] if argv is None else argv,
            "complete": done,
            "wall_s": wall,
            "repeats": args.repeats,
            "blocks": args.blocks,
            "min_time": args.min_time,
            "threads": args.threads,
            "omp_wait_policy": args.omp_wait_policy,
            "cases": {c: CASES[c] for c in cases},
            "errors": [r for r in records if "error" in r],
            "skipped": skipped,
        }
        os.makedirs(args.out_dir, exist_ok=True)
        with open(os.path.join(args.out_dir, "results.json"), "w") as f:
            json.dump({"meta": meta, "machine": info, "summary": summary, "records": records}, f)
        markdown = render_markdown(summary, info, meta)
        if not done:
            markdown += "\n(Partial: the run was still going when this was written.)\n"
        with open(os.path.join(args.out_dir, "results.md"), "w") as f:
            f.write(markdown + "\n")
        return markdown, summary, info, meta

    for case in cases:  # each case in turn, smallest first; per case the libraries alternate
        for repeat in range(args.repeats):
            for lib in libs:  # A B C ... A B C ...
                if not supports(lib, CASES[case]["flow"]):
                    continue
                for rec in run_worker(args.python, lib, [case], args, args.timeout):
                    rec.update(repeat=repeat, order=len(records))
                    records.append(rec)
                    status = rec.get("error", "").splitlines()[-1:] if "error" in rec else None
                    print(
                        f"[{time.perf_counter() - start:6.0f} s] case {rec['case']} rep "
                        f"{repeat} {lib:16s} "
                        + (
                            f"ERROR {status}"
                            if status is not None
                            else f"step {rec['train_step']['median_s'] * 1e3:8.2f} ms  "
                            f"log_prob {rec['log_prob']['median_s'] * 1e3:8.2f} ms  "
                            f"sample {rec['sample']['median_s'] * 1e3:9.1f} ms"
                        ),
                        flush=True,
                    )
                write(done=False)
    markdown, summary, info, meta = write(done=True)
    print(markdown)
    if args.readme:
        update_readme(args.readme, readme_block(summary, info, meta))
        print(f"updated the speed tables in {args.readme}")


if __name__ == "__main__":
    main()
