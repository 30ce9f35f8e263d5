"""Peak resident memory of every example, each run as a new user would, in its own process.

    python benchmarks/example_memory.py                 # every example, the settings below
    python benchmarks/example_memory.py --only quickstart,digits

Each example runs as `python examples/NAME.py ARGS --out DIR` in a fresh process; its peak
resident set size is the kernel's high-water mark for that process (`os.wait4`'s `ru_maxrss`).
The settings keep the whole pass to about 15 minutes on 2 cores without changing what the
memory depends on: every model an example builds is still built, trained, evaluated and drawn
(the number of models, their sizes, the evaluation grids and batch sizes are the defaults);
only training budgets, epoch and step counts are cut. Writes `example_memory.md` and `.json`
next to this file (or `--out-dir`), with the machine and the 1 GB limit the project set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from backends.report import machine_info, write_report  # noqa: E402

LIMIT_MB = 1024
RUNS = {  # example: arguments (budgets cut, every model kept)
    "quickstart": [],
    "conditional": [],
    "toy_densities": ["--seconds", "2", "--quiet"],
    "energy_2d": ["--steps", "300"],
    "digits": ["--epochs", "3"],
    "flow_matching": ["--seconds", "10"],
    "bayesian_logistic_regression": ["--draws", "200"],
}


def run_one(name: str, args: list[str], out: str) -> dict:
    cmd = [sys.executable, os.path.join(ROOT, "examples", f"{name}.py"), *args, "--out", out]
    start = time.perf_counter()
    with open(os.path.join(out + ".log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    return {
        "example": name,
        "args": args,
        "returncode": os.waitstatus_to_exitcode(status),
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "wall_s": time.perf_counter() - start,
        "log": out + ".log",
    }


def render(rows: list[dict], info: dict, command: str) -> str:
    lines = [
        "# Peak resident memory of the examples",
        "",
        f"Command: `{command}`. Machine: {info.get('Model name', '?')}, "
        f"{info.get('CPU(s)', info.get('nproc'))} cores ({info.get('Flags', '')}); Python "
        f"{info['python']}. TensorFlow and TFP alone take about 700 MB of this "
        "(`import tfp_flows` and one op).",
        "",
        f"| example | arguments | peak RSS (MB) | within {LIMIT_MB} MB | wall (s) | exit |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = "yes" if r["peak_rss_mb"] <= LIMIT_MB else "**no**"
        lines.append(
            f"| `{r['example']}.py` | `{' '.join(r['args']) or '(defaults)'}` | "
            f"{r['peak_rss_mb']:.0f} | {ok} | {r['wall_s']:.0f} | {r['returncode']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated examples (default: all)")
    parser.add_argument("--out-dir", default=HERE)
    parser.add_argument(
        "--merge", action="store_true", help="keep the other examples' rows of the last report"
    )
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(RUNS)
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"unknown example(s) {unknown}; choose from {list(RUNS)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            row = run_one(name, RUNS[name], os.path.join(tmp, name))
            print(
                f"{name:30s} {row['peak_rss_mb']:6.0f} MB  {row['wall_s']:5.0f} s  "
                f"exit {row['returncode']}",
                flush=True,
            )
            if row["returncode"] != 0:
                with open(row["log"]) as f:
                    print(f.read()[-2000:])
            row.pop("log")
            rows.append(row)
    command = "python benchmarks/example_memory.py" + (f" --only {args.only}" if args.only else "")
    stem = os.path.join(args.out_dir, "example_memory")
    if args.merge and os.path.exists(stem + ".json"):
        with open(stem + ".json") as f:
            last = json.load(f)
        kept = {r["example"]: r for r in last["runs"]}
        kept.update({r["example"]: r for r in rows})
        rows = [kept[name] for name in RUNS if name in kept]
        command = f"{last['command']}, then {command} --merge"
    info = machine_info([])
    write_report(
        stem,
        {"command": command, "machine": info, "limit_mb": LIMIT_MB, "runs": rows},
        render(rows, info, command),
    )
    return rows


if __name__ == "__main__":
    main()
