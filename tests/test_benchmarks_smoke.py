"""Smoke test of the benchmark code (`benchmarks/`): one tiny case, so it never rots.

Runs the worker in-process for the TensorFlow libraries (tfp_flows and TFP's built-in MAF), and
the eager torch libraries in a subprocess when zuko / nflows are importable, then renders the
summary table from the records.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import _worker  # noqa: E402
import run  # noqa: E402

TINY = dict(dim=3, hidden=8, batch=16, layers=2, sample_n=8, min_time=0.0, blocks=2, peak_reps=1)
TINY["peak_n"] = 256
TIMING_KEYS = {"median_s", "blocks_s", "calls_per_block", "first_call_s"}


def _check_record(record: dict, lib: str, iaf: bool) -> None:
    expected = {"train_step", "log_prob", "sample", "num_params", "rss_peak_mb", "peak_flops"}
    assert expected | {"config", "flops", "versions", "settings"} <= set(record)
    assert ("iaf_sample" in record) == iaf
    for metric in ("train_step", "log_prob", "sample", *(("iaf_sample",) if iaf else ())):
        assert set(record[metric]) == TIMING_KEYS
        assert record[metric]["median_s"] > 0
        assert record[metric]["first_call_s"] > 0
    # Same architecture everywhere: 2 MADEs of 3 -> 8 -> 8 -> 6 with biases.
    assert record["num_params"] == 2 * (3 * 8 + 8 + 8 * 8 + 8 + 8 * 6 + 6)
    assert record["config"]["lib"] == lib
    assert record["peak_flops"] > 1e8
    assert record["rss_peak_mb"] >= record["rss_after_import_mb"] > 0
    assert record["flops"]["train_step"] == 3 * _worker.matmul_flops(3, 8, 16, 2)
    json.dumps(record)  # JSON-ready


@pytest.mark.parametrize("lib", ["tfp_flows_graph", "tfp_graph"])
def test_tf_worker(lib):
    record = _worker.measure(lib, **TINY)
    _check_record(record, lib, iaf=lib.startswith("tfp_flows"))
    assert record["settings"]["jit_compile"] == lib.endswith("_xla")

    record["case"], record["repeat"] = "C", 0
    summary = run.summarize([record, {"error": "failed worker", "lib": "x"}])
    entry = summary["C"][lib]
    assert entry["train_step"]["median"] == record["train_step"]["median_s"]
    meta = dict(
        command="test",
        wall_s=1.0,
        repeats=1,
        blocks=2,
        min_time=0.0,
        threads=2,
        cases={"C": dict(dim=3, hidden=8, batch=16)},
    )
    markdown = run.render_markdown(summary, run.machine_info([record]), meta)
    assert run.LABELS[lib] in markdown


TORCH_LIBS = [
    pytest.param(
        lib,
        marks=pytest.mark.skipif(
            importlib.util.find_spec("zuko" if lib.startswith("zuko") else "nflows") is None,
            reason="torch libraries not installed (pip install -e '.[bench]')",
        ),
    )
    for lib in ("zuko_eager", "nflows_eager")
]


@pytest.mark.parametrize("lib", TORCH_LIBS)
def test_torch_worker_cli(lib):
    args = ["--lib", lib, "--case", "3,8,16", "--layers", "2"]
    args += ["--sample-n", "8", "--min-time", "0", "--blocks", "2", "--peak-reps", "1"]
    args += ["--peak-n", "256"]
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "_worker.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (record,) = json.loads(proc.stdout.splitlines()[-1])  # one record per --case
    _check_record(record, lib, iaf=False)
