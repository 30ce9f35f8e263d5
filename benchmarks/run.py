"""Side-by-side benchmark: tfp_flows vs TFP's built-ins, zuko and nflows (MAF, Real NVP, Glow).

    python benchmarks/run.py --quick       # smoke run: cases C, R, G8, one repeat, short blocks,
                                           # written to out/bench_quick/
    python benchmarks/run.py               # every case, alternating repeats (~40 min loaded)
    python benchmarks/run.py --case A,R    # some cases (repeatable; default: all)

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
importable (e.g. no torch) are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _worker import LIBS, TORCH_LIBS, supports  # noqa: E402

__all__ = ["CASES", "label", "machine_info", "render_markdown", "summarize"]

CASES = {  # in the order they run: the cheap ones first
    "C": dict(flow="maf", dim=8, hidden=128, batch=256, sample_n=512),
    "A": dict(flow="maf", dim=16, hidden=128, batch=512, sample_n=512),
    "R": dict(flow="realnvp", dim=16, hidden=128, batch=512, sample_n=512),
    "G8": dict(flow="glow", image_shape=[8, 8, 1], levels=2, steps=3, filters=64, batch=64),
    "B": dict(flow="maf", dim=64, hidden=512, batch=512, sample_n=512),
    "G16": dict(flow="glow", image_shape=[16, 16, 3], levels=3, steps=3, filters=64, batch=32),
}
for _case in ("G8", "G16"):
    CASES[_case]["sample_n"] = 64  # images: 64 samples (vectors: 512)
QUICK_CASES = ("C", "R", "G8")
REFERENCE = "tfp_flows_xla"
METRICS = ("train_step", "log_prob", "sample", "iaf_sample")
_TFP_NAMES = {"maf": "MaskedAutoregressiveFlow", "realnvp": "RealNVP", "glow": "Glow"}
_TORCH_NAMES = {"maf": "MAF", "realnvp": "RealNVP"}


def label(lib: str, flow: str) -> str:
    """Row label of `lib` in a table of `flow` cases."""
    return {
        "tfp_flows_xla": "tfp_flows, tf.function(jit_compile=True)",
        "tfp_flows_graph": "tfp_flows, tf.function",
        "tfp_xla": f"TFP {_TFP_NAMES[flow]}, jit_compile=True",
        "tfp_graph": f"TFP {_TFP_NAMES[flow]}, tf.function",
        "zuko_compile": f"zuko {_TORCH_NAMES.get(flow)}, torch.compile (sampling eager)",
        "zuko_eager": f"zuko {_TORCH_NAMES.get(flow)}, eager",
        "nflows_eager": f"nflows {_TORCH_NAMES.get(flow)}, eager",
    }[lib]


def _available(lib: str, python: str) -> bool:
    if lib not in TORCH_LIBS:
        return True
    module = "zuko" if lib.startswith("zuko") else "nflows"
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def run_worker(python: str, lib: str, cases: list[str], args, timeout: float) -> list[dict]:
    cmd = [python, os.path.join(HERE, "_worker.py"), "--lib", lib]
    for case in cases:
        cmd += ["--case", json.dumps(CASES[case])]
    cmd += ["--min-time", str(args.min_time), "--blocks", str(args.blocks)]
    cmd += ["--peak-reps", str(args.peak_reps), "--threads", str(args.threads)]
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


def _stats(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _framework(lib: str) -> str:
    return "tf" if lib.startswith("tfp") else "torch"


def summarize(records: list[dict]) -> dict:
    """Per case and library: median/min/max over repeats of every metric, ratios, efficiency."""
    summary: dict = {}
    # A process's own peak measurement swings with the machine's load; the best peak each
    # framework reached in the whole run is the steadier ceiling.
    best_peak: dict = {}
    for rec in records:
        if "error" not in rec:
            framework = _framework(rec["config"]["lib"])
            best_peak[framework] = max(best_peak.get(framework, 0.0), rec["peak_flops"])
    for rec in records:
        if "error" in rec:
            continue
        case, lib = rec["case"], rec["config"]["lib"]
        entry = summary.setdefault(case, {}).setdefault(lib, {"_raw": {}})
        raw = entry["_raw"]
        for metric in METRICS:
            if metric in rec:
                seconds = rec[metric]["median_s"]
                raw.setdefault(metric, []).append(seconds)
                raw.setdefault(f"{metric}_first_call", []).append(rec[metric]["first_call_s"])
                flops = rec["flops"][metric]
                raw.setdefault(f"{metric}_gflops", []).append(flops / seconds / 1e9)
                raw.setdefault(f"{metric}_efficiency", []).append(
                    flops / seconds / best_peak[_framework(lib)]
                )
        raw.setdefault("rss_peak_mb", []).append(rec["rss_peak_mb"])
        raw.setdefault("num_params", []).append(rec["num_params"])
        raw.setdefault("rss_after_import_mb", []).append(rec["rss_after_import_mb"])
        raw.setdefault("peak_gflops", []).append(rec["peak_flops"] / 1e9)
    for libs in summary.values():
        for entry in libs.values():
            for key, values in entry.pop("_raw").items():
                entry[key] = _stats(values)
        ref = libs.get(REFERENCE)
        for entry in libs.values():
            if ref is None:
                break
            entry["ratio_tfp_flows_xla_over_this"] = {
                metric: ref[metric]["median"] / entry[metric]["median"]
                for metric in ("train_step", "log_prob", "sample", "rss_peak_mb")
                if metric in entry and metric in ref
            }
    return summary


def _fmt_time(stats: dict | None) -> str:
    if stats is None:
        return "-"
    scale, unit = (1e3, "ms") if stats["median"] < 1.0 else (1.0, "s")
    return (
        f"{stats['median'] * scale:.3g} {unit} "
        f"({stats['min'] * scale:.3g}-{stats['max'] * scale:.3g})"
    )


def write_report(stem: str, data: dict, markdown: str) -> None:
    """Writes `stem.json` (the figures) and `stem.md` (the table), and prints the table."""
    with open(stem + ".json", "w") as f:
        json.dump(data, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(markdown)
    print(markdown)


def machine_info(records: list[dict]) -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform()}
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Flags"):
                value = value.strip()
                if key.strip() == "Flags":
                    value = " ".join(f for f in value.split() if f.startswith(("avx", "fma")))
                info[key.strip()] = value
    info["nproc"] = os.cpu_count()
    versions: dict = {}
    for rec in records:
        versions.update(rec.get("versions", {}))
    info["versions"] = versions
    loads = [v for rec in records for v in rec.get("loadavg_1min", [])]
    if loads:
        info["loadavg_1min_range"] = [min(loads), max(loads)]
    return info


def _case_title(case: str, c: dict) -> str:
    if c["flow"] == "glow":
        h, w, ch = c["image_shape"]
        return (
            f"## Case {case}: Glow on {h}x{w}x{ch} images, {c['levels']} levels x {c['steps']} "
            f"steps, {c['filters']} filters, batch {c['batch']}, {c['sample_n']} samples"
        )
    name = {"maf": "MAF", "realnvp": "Real NVP"}[c["flow"]]
    return (
        f"## Case {case}: {name}, D={c['dim']}, H={c['hidden']}, batch {c['batch']}, "
        f"{c['sample_n']} samples"
    )


ARCHITECTURE = {
    "maf": (
        "MAF (cases A, B, C): 5 MADEs, each D -> H -> H -> 2D with ReLU, affine transform, order "
        "reversed between layers, standard-normal base. sample = 512 points (a MAF samples in D "
        "sequential passes per layer); IAF sample = 512 points from `flows.iaf` (one pass). "
        "tfp_flows uses `flows.maf(D, num_layers=5, hidden_units=(H, H))` with its default "
        "`log_scale_clamp=3.0`; TFP's MAF (`tfb.AutoregressiveNetwork`) has no clamp; zuko and "
        "nflows use their default affine parameterisations. FLOPs: 2*B*sum(in*out) of the 15 "
        "dense matmuls (masks not discounted)."
    ),
    "realnvp": (
        "Real NVP on vectors (case R): 5 affine couplings, each an MLP D/2 -> H -> H -> 2 * D/2 "
        "(ReLU) giving shift and log-scale of the other half, the halves alternating. "
        "tfp_flows: `flows.real_nvp([D], num_layers=5, hidden_units=(H, H), normalization=None)` "
        "(exp scale, soft clamp 3.0); TFP: `tfb.RealNVP(num_masked=D/2, "
        "shift_and_log_scale_fn=<tf.Module MLP over tf.Variables>)` with `tfb.Permute` reversals "
        "between couplings (no clamp); zuko: `zuko.flows.RealNVP(D, transforms=5, "
        "hidden_features=(H, H))` (alternating checkered masks, same sizes); nflows: "
        "`AffineCouplingTransform` with `nflows.nn.nets.MLP([D/2], [D], [H, H])`, halves "
        "alternating (sigmoid scale). sample = 512 points, one pass. FLOPs: 2*B*sum(in*out) of "
        "the 15 dense matmuls."
    ),
    "glow": (
        "Glow (cases G8, G16): per level a squeeze, then `steps` x (ActNorm, invertible 1x1 "
        "convolution with an LU parameterisation, affine coupling with a sigmoid scale whose "
        "conditioner is conv3x3(filters) -> ReLU -> conv3x3 (zero-init)), then half the channels "
        "factored out (not after the last level). tfp_flows: `flows.glow(shape, levels, "
        "steps_per_level, filters, num_blocks=0, coupling='affine')`; TFP: `tfb.Glow` with "
        "`coupling_bijector_fn` building the same two-conv network (TFP's default network adds "
        "a 1x1 conv in the middle; it is replaced so both run the same convolutions) and its "
        "default exit network: TFP's Glow conditions each factored-out half on the remaining "
        "channels through one more zero-init conv3x3 per level, tfp_flows factors out to a "
        "standard normal directly (that extra conv is not in the FLOP count). Only the "
        "TensorFlow libraries: zuko and nflows have no Glow. sample = 64 images. FLOPs: the "
        "conv multiply-adds (coupling networks and 1x1 convolutions), 2 per multiply-add."
    ),
}


def render_markdown(summary: dict, info: dict, meta: dict) -> str:
    v = info.get("versions", {})
    flows = []
    for c in meta["cases"].values():
        if c["flow"] not in flows:
            flows.append(c["flow"])
    lines = [
        "# Benchmark: tfp_flows vs TFP built-ins, zuko, nflows",
        "",
        f"Command: `{meta['command']}` (total wall time {meta['wall_s'] / 60:.1f} min).",
        "",
        f"Machine: {info.get('Model name', '?')}, {info.get('CPU(s)', info.get('nproc'))} "
        f"CPUs ({info.get('Flags', '')}); Python {info['python']}; "
        + ", ".join(f"{k} {val}" for k, val in sorted(v.items()))
        + ".",
        f"Threads: {meta['threads']} intra-op, 1 inter-op, every library; float32; "
        f"{meta['repeats']} repeat(s) per library and case, one fresh process per case, library "
        "and repeat, libraries alternating; within a process each figure is the median "
        f"of {meta['blocks']} timed blocks of >= {meta['min_time']} s after the first "
        "(trace/compile) call.",
    ]
    if "loadavg_1min_range" in info:
        lo, hi = info["loadavg_1min_range"]
        lines.append(
            f"The machine was shared: 1-minute load average {lo:.1f}-{hi:.1f} during the run "
            "(2 = both cores busy), so expect tens of per cent of noise; the ranges show it. "
            "Peak RSS is the high-water mark of the process that ran the case (one per case, "
            "library and repeat)."
        )
    lines += [
        "",
        "Step = forward + backward + Adam(1e-3) update on one batch; log_prob = one batch, no "
        "gradient. Cells: median over repeats (min-max). Ratio = tfp_flows (XLA) time / this "
        "library's time (> 1: tfp_flows is slower). Efficiency = the step's FLOPs (3 x the "
        "forward FLOPs counted from the layer sizes) / time / the float32 2048^3 matmul peak "
        "of the same framework: the best measured in any process of this run (the peak "
        "column is each process's own).",
        "",
        *(f"- {ARCHITECTURE[flow]}" for flow in flows),
        "",
    ]
    for case, libs in summary.items():
        c = meta["cases"][case]
        iaf = c["flow"] == "maf"
        lines += [
            _case_title(case, c),
            "",
            "| library | train step | log_prob | sample | "
            + ("IAF sample | " if iaf else "")
            + "step ratio | log_prob ratio | sample ratio | step GFLOP/s | step eff. | "
            "peak GFLOP/s | peak RSS MB | params | step 1st call |",
            "|---|---|---|---|" + ("---|" if iaf else "") + "---|---|---|---|---|---|---|---|---|",
        ]
        for lib in LIBS:
            if lib not in libs:
                continue
            e = libs[lib]
            r = e.get("ratio_tfp_flows_xla_over_this", {})
            lines.append(
                "| "
                + " | ".join(
                    [
                        label(lib, c["flow"]),
                        _fmt_time(e.get("train_step")),
                        _fmt_time(e.get("log_prob")),
                        _fmt_time(e.get("sample")),
                        *((_fmt_time(e.get("iaf_sample")),) if iaf else ()),
                        *(
                            f"{r[m]:.2f}" if m in r else "-"
                            for m in ("train_step", "log_prob", "sample")
                        ),
                        f"{e['train_step_gflops']['median']:.1f}",
                        f"{100 * e['train_step_efficiency']['median']:.0f}%",
                        f"{e['peak_gflops']['median']:.0f}",
                        f"{e['rss_peak_mb']['median']:.0f}",
                        f"{e['num_params']['median']:.0f}",
                        f"{e['train_step_first_call']['median']:.1f} s",
                    ]
                )
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


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
    libs = [lib for lib in args.libs.split(",") if _available(lib, args.python)]
    skipped = sorted(set(args.libs.split(",")) - set(libs))
    if skipped:
        print(f"skipping (framework not importable): {', '.join(skipped)}", flush=True)
    start = time.perf_counter()
    records: list[dict] = []

    def write(done: bool) -> str:
        """Writes results.json/md from the records so far (a cut-short run leaves its part)."""
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
            "cases": {c: CASES[c] for c in cases},
            "errors": [r for r in records if "error" in r],
        }
        os.makedirs(args.out_dir, exist_ok=True)
        with open(os.path.join(args.out_dir, "results.json"), "w") as f:
            json.dump({"meta": meta, "machine": info, "summary": summary, "records": records}, f)
        markdown = render_markdown(summary, info, meta)
        if not done:
            markdown += "\n(Partial: the run was still going when this was written.)\n"
        with open(os.path.join(args.out_dir, "results.md"), "w") as f:
            f.write(markdown + "\n")
        return markdown

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
    print(write(done=True))


if __name__ == "__main__":
    main()
