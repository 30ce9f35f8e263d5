"""What the benchmark scripts report: the summary over repeats, the tables, the machine.

`summarize` reduces `_worker.py`'s records (medians, min-max, ratios to tfp_flows with XLA,
efficiency against the best matmul peak of each framework), `render_markdown` writes
`run.py`'s tables, `machine_info` and `write_report` serve every script in `benchmarks/`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess

from . import LIBS, label
from . import framework as framework_of
from .base import METRICS

__all__ = [
    "ARCHITECTURE",
    "REFERENCE",
    "machine_info",
    "render_markdown",
    "summarize",
    "write_report",
]

REFERENCE = "tfp_flows_xla"


def _stats(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summarize(records: list[dict]) -> dict:
    """Per case and library: median/min/max over repeats of every metric, ratios, efficiency."""
    summary: dict = {}
    # A process's own peak measurement swings with the machine's load; the best peak each
    # framework reached in the whole run is the steadier ceiling.
    best_peak: dict = {}
    for rec in records:
        if "error" not in rec:
            framework = framework_of(rec["config"]["lib"])
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
                    flops / seconds / best_peak[framework_of(lib)]
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
    """Writes `stem.json` (the figures) and `stem.md` (the table), and prints the table.

    The directory is made first: a long run must not end in a `FileNotFoundError`.
    """
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
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
    if c["flow"] == "nsf":
        name = f"spline MAF ({c['bins']} bins)"
    else:
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
    "nsf": (
        "Spline MAF (case S): the MAF's 5 MADEs D -> H -> H -> (3K - 1) D, order reversed, each "
        "giving a monotone rational-quadratic spline with K = 8 bins on [-5, 5] (identity "
        "outside) per dimension. tfp_flows: `flows.maf(D, num_layers=5, hidden_units=(H, H), "
        "transformer='spline', num_bins=8, spline_bound=5)`; zuko: `zuko.flows.NSF(D, "
        "transforms=5, hidden_features=(H, H), bins=8)` (bound 5 by default); TFP: "
        "`tfb.MaskedAutoregressiveFlow(bijector_fn=...)` building a `tfb.RationalQuadraticSpline` "
        "(softmax bin widths and heights, softplus slopes, least bin share and slope 1e-3) from "
        "a `tfb.AutoregressiveNetwork(params=3K - 1)`. sample = 512 points (D sequential passes "
        "per layer). FLOPs: 2*B*sum(in*out) of the 15 dense matmuls."
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
        "(trace/compile) call. OpenMP wait policy (torch): "
        f"{meta.get('omp_wait_policy') or 'the runtime default'}.",
    ]
    if "loadavg_1min_range" in info:
        lo, hi = info["loadavg_1min_range"]
        lines.append(
            f"The machine was shared: 1-minute load average {lo:.1f}-{hi:.1f} during the run "
            "(2 = both cores busy), so expect tens of per cent of noise; the ranges show it. "
            "Peak RSS is the high-water mark of the process that ran the case (one per case, "
            "library and repeat)."
        )
    if meta.get("skipped"):
        lines.append(
            "Not run (not importable by the workers' interpreter): "
            + "; ".join(f"{lib}: {why}" for lib, why in meta["skipped"].items())
            + "."
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
