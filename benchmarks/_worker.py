"""Benchmark measurements of one library on one or more cases, in a fresh process.

    python benchmarks/_worker.py --lib tfp_flows_xla --case 8,128,256 --case 16,128,512
    python benchmarks/_worker.py --lib tfp_xla --case '{"flow": "glow", "image_shape": [8, 8, 1],
        "levels": 2, "steps": 4, "filters": 64, "batch": 128, "sample_n": 64}'

(`--case`, repeatable: `D,H,BATCH` for a MAF case, or a JSON object with a `"flow"` of `"maf"`,
`"nsf"`, `"realnvp"` or `"glow"` and its sizes) prints one JSON list (the last line of stdout),
one record per case, with the step, log-prob and sampling times, the first-call
(trace/compile) times, the RSS high-water mark of the process after the case and the float32
matmul peak of the library's framework measured in the same process. `run.py` launches it once
per case, library and repeat; `measure(...)` is one case in-process (the smoke test uses it).

The libraries are the runners of `backends/` (one module per library, see its docstring); the
architectures, the data and the FLOP counts are those of `backends/cases.py`. Every library gets
the same float32 data (seed 0), Adam(1e-3), and 2 intra-op / 1 inter-op threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(HERE)
for _path in (_ROOT, HERE):  # run from a checkout without `pip install -e`; `import backends`
    if _path not in sys.path:
        sys.path.insert(0, _path)

import backends  # noqa: E402
from backends.cases import FLOWS, LAYERS, flow_flops, parse_case  # noqa: E402
from backends.timing import time_call  # noqa: E402

__all__ = ["PEAK_N", "measure"]

PEAK_N = 2048  # the peak is an N x N x N float32 matmul (the smoke test shrinks it)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def measure(
    lib: str,
    *,
    batch: int,
    flow: str = "maf",
    dim: int | None = None,
    hidden: int | None = None,
    layers: int = LAYERS,
    image_shape=None,
    levels: int | None = None,
    steps: int | None = None,
    filters: int | None = None,
    bins: int | None = None,
    sample_n: int = 512,
    threads: int = 2,
    min_time: float = 0.25,
    blocks: int = 5,
    peak_reps: int = 5,
    peak_n: int = PEAK_N,
    compile_sample: bool = False,
) -> dict:
    """Measures one library on one case in this process; returns the JSON-ready record.

    Vector flows (`flow="maf"`, `"nsf"` or `"realnvp"`) take `dim`, `hidden` and `layers` (and
    `"nsf"` its spline's `bins`); `"glow"` takes `image_shape`, `levels`, `steps` and `filters`.
    """
    if lib not in backends.LIBS:
        raise ValueError(f"`lib` must be one of {backends.LIBS}; got {lib!r}.")
    if flow not in FLOWS:
        raise ValueError(f"`flow` must be one of {FLOWS}; got {flow!r}.")
    if not backends.supports(lib, flow):
        raise ValueError(f"{lib} has no {flow}.")
    cfg = dict(
        lib=lib,
        flow=flow,
        batch=batch,
        sample_n=sample_n,
        threads=threads,
        min_time=min_time,
        blocks=blocks,
        peak_reps=peak_reps,
        peak_n=peak_n,
        compile_sample=compile_sample,
    )
    if flow == "glow":
        image_shape = [int(v) for v in image_shape]
        cfg.update(image_shape=image_shape, levels=levels, steps=steps, filters=filters)
    else:
        cfg.update(dim=dim, hidden=hidden, layers=layers)
        if flow == "nsf":
            cfg.update(bins=bins)
    load_before = os.getloadavg()
    start = time.perf_counter()
    runner = backends.make_runner(lib, cfg, threads=threads, compile_sample=compile_sample)
    rss_import = _rss_mb()
    runner.setup()
    result: dict = {
        metric: time_call(getattr(runner, metric), runner.sync, min_time, blocks)
        for metric in runner.metrics
    }
    result["num_params"] = runner.num_params
    result["rss_after_import_mb"] = rss_import
    result["rss_peak_mb"] = _rss_mb()
    result["peak_flops"] = runner.peak_flops(peak_reps, peak_n)
    result["versions"] = runner.versions
    result["settings"] = runner.settings
    result["config"] = cfg
    result["flops"] = flow_flops(cfg)
    result["worker_wall_s"] = time.perf_counter() - start
    result["loadavg_1min"] = [load_before[0], os.getloadavg()[0]]
    result["env"] = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    result["python"] = platform.python_version()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True, choices=backends.LIBS)
    parser.add_argument(
        "--case",
        action="append",
        required=True,
        help="D,H,BATCH (a MAF case) or a JSON object with 'flow' and its sizes (repeatable)",
    )
    parser.add_argument("--layers", type=int, default=LAYERS)
    parser.add_argument("--sample-n", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=0.25, help="seconds per timing block")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--peak-reps", type=int, default=5)
    parser.add_argument("--peak-n", type=int, default=PEAK_N, help="size of the peak matmul")
    parser.add_argument(
        "--compile-sample",
        action="store_true",
        help="torch.compile zuko's D-pass sampling too (unrolls D x layers MADE calls: minutes)",
    )
    backends.add_omp_wait_policy_argument(parser)
    args = parser.parse_args(argv)
    # Before the frameworks load: their thread pools read these.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    # OpenMP's wait policy is left at the runtime's default: on an idle machine PASSIVE waiting
    # makes torch's MAF step 3.4x slower (case A, AVX-512, session 9: 16.0 ms vs 4.7 ms), a worse
    # set-up for the peer. On a shared machine, where spinning threads fight other processes,
    # `--omp-wait-policy PASSIVE` keeps torch's timings meaningful (state it beside the figures).
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    results = []
    for text in args.case:
        case = {"layers": args.layers, "sample_n": args.sample_n, **parse_case(text)}
        results.append(
            measure(
                args.lib,
                threads=args.threads,
                min_time=args.min_time,
                blocks=args.blocks,
                peak_reps=args.peak_reps,
                peak_n=args.peak_n,
                compile_sample=args.compile_sample,
                **case,
            )
        )
    sys.stdout.write("\n" + json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
