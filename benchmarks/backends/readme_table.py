"""The README's speed and memory tables, written from one `run.py` run (`run.py --readme`).

`readme_block` renders the tables from `summarize`'s output; `update_readme` puts them between
the `<!-- speed-table:start -->` and `<!-- speed-table:end -->` markers of README.md, so the
README's figures are always those of the last full run, on the machine that run names.
"""

from __future__ import annotations

from . import framework
from .report import REFERENCE, _case_title

__all__ = ["END", "START", "readme_block", "update_readme"]

START, END = "<!-- speed-table:start -->", "<!-- speed-table:end -->"
COLUMNS = (  # (library, short column name), in the table's order
    ("tfp_flows_xla", "tfp_flows XLA"),
    ("tfp_flows_graph", "tfp_flows tf.function"),
    ("tfp_xla", "TFP XLA"),
    ("tfp_graph", "TFP tf.function"),
    ("zuko_compile", "zuko torch.compile"),
    ("zuko_eager", "zuko eager"),
    ("nflows_eager", "nflows"),
)
RATIOS = (("tfp_xla", "TFP XLA / ours"), ("zuko_compile", "zuko compiled / ours"))
FIGURES = (("train_step", "step"), ("log_prob", "log_prob"), ("sample", "sample"))


def _ms(stats: dict | None) -> str:
    if stats is None:
        return "-"
    med, lo, hi = (stats[k] * 1e3 for k in ("median", "min", "max"))
    return f"{med:.3g} ({lo:.3g}-{hi:.3g})"


def _ratio(libs: dict, peer: str, metric: str) -> str:
    ours, theirs = libs.get(REFERENCE, {}).get(metric), libs.get(peer, {}).get(metric)
    if ours is None or theirs is None:
        return "-"
    # The ratio's own spread: the peer's worst repeat over our best, and the other way round.
    mid = theirs["median"] / ours["median"]
    lo, hi = theirs["min"] / ours["max"], theirs["max"] / ours["min"]
    return f"**{mid:.2f}x**" if lo > 1.0 else f"{mid:.2f}x ({lo:.2f}-{hi:.2f})"


def readme_block(summary: dict, info: dict, meta: dict) -> str:
    """The Markdown between the README's markers: speed table, memory and compile table."""
    present = [
        (lib, name) for lib, name in COLUMNS if any(lib in libs for libs in summary.values())
    ]
    flags = info.get("Flags", "")
    avx512 = "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512"
    peaks = {}
    for libs in summary.values():
        for lib, entry in libs.items():
            fw = {"tf": "TF"}.get(framework(lib), framework(lib))
            peaks[fw] = max(peaks.get(fw, 0.0), entry["peak_gflops"]["max"])
    load = info.get("loadavg_1min_range")
    lines = [
        START,
        "<!-- written by `python benchmarks/run.py --readme README.md`; edit the script, not "
        "this table -->",
        "",
        f"Command: `{meta['command']}` ({meta['wall_s'] / 60:.0f} min). Machine: "
        f"{info.get('Model name', '?')}, {info.get('CPU(s)', info.get('nproc'))} cores, "
        f"{avx512}; float32 2048^3 matmul peak "
        + ", ".join(f"{fw} {v:.0f} GFLOP/s" for fw, v in sorted(peaks.items()))
        + f"; {meta['threads']} intra-op threads for every library; "
        + (f"1-minute load {load[0]:.1f}-{load[1]:.1f}; " if load else "")
        + f"{meta['repeats']} repeats alternating libraries, one process each. "
        "Milliseconds, median (min-max over repeats); a ratio > 1 means tfp_flows is faster, "
        "in bold where even the least favourable pairing of repeats says so.",
        "",
        "| case | figure | "
        + " | ".join(name for _, name in present)
        + " | "
        + " | ".join(name for _, name in RATIOS)
        + " |",
        "|---" * (2 + len(present) + len(RATIOS)) + "|",
    ]
    for case, libs in summary.items():
        title = _case_title(case, meta["cases"][case]).removeprefix("## Case ")
        title = title.rsplit(",", 1)[0]  # the sampling size is a separate figure
        for metric, fig in FIGURES:
            if not any(metric in entry for entry in libs.values()):
                continue
            cells = [_ms(libs.get(lib, {}).get(metric)) for lib, _ in present]
            ratios = [_ratio(libs, peer, metric) for peer, _ in RATIOS]
            lines.append(f"| {title} | {fig} | " + " | ".join(cells + ratios) + " |")
    lines += [
        "",
        "Peak resident memory (MB, the process that ran the case: framework included) / "
        "first call of the training step (s: tracing and compiling) / the step's FLOP rate "
        "as a share of its framework's matmul peak:",
        "",
        "| case | " + " | ".join(name for _, name in present) + " |",
        "|---" * (1 + len(present)) + "|",
    ]
    for case, libs in summary.items():
        cells = []
        for lib, _ in present:
            e = libs.get(lib)
            cells.append(
                "-"
                if e is None
                else f"{e['rss_peak_mb']['median']:.0f} / "
                f"{e['train_step_first_call']['median']:.1f} / "
                f"{100 * e['train_step_efficiency']['median']:.0f}%"
            )
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def update_readme(path: str, block: str) -> None:
    """Replaces the text between the markers in `path` (which must have both) by `block`."""
    with open(path) as f:
        text = f.read()
    if START not in text or END not in text:
        raise ValueError(f"{path} has no {START} ... {END} block to replace.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(head + block + tail)
