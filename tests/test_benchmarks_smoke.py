"""Smoke test of the benchmark code (`benchmarks/`): tiny cases, so it never rots.

Every backend (`benchmarks/backends/`) in every mode runs one call of each timed method through
the shared `Runner` interface (TensorFlow in-process, torch in a subprocess), or is skipped with
the reason its framework is missing. The worker runs in-process for the TensorFlow libraries and
as a CLI for the eager torch ones, and the summary table is rendered from its records. The FLOP
counts are checked against sums written out by hand.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import _worker  # noqa: E402
import backends  # noqa: E402
import run  # noqa: E402
from backends import cases  # noqa: E402

TIMING = dict(min_time=0.0, blocks=2, peak_reps=1, peak_n=256)
VECTOR = dict(dim=4, hidden=8, batch=16, layers=2, sample_n=8)
GLOW = dict(flow="glow", image_shape=[4, 4, 1], levels=1, steps=1, filters=4, batch=4, sample_n=2)
TIMING_KEYS = {"median_s", "blocks_s", "calls_per_block", "first_call_s"}
# Parameters of the tiny vector flows, with biases: 2 MADEs 4 -> 8 -> 8 -> 8, the same with
# 4 * 23 outputs (an 8-bin spline), and 2 couplings 2 -> 8 -> 8 -> 4.
NUM_PARAMS = {
    "maf": 2 * (4 * 8 + 8 + 8 * 8 + 8 + 8 * 8 + 8),
    "nsf": 2 * (4 * 8 + 8 + 8 * 8 + 8 + 8 * 92 + 92),
    "realnvp": 2 * (2 * 8 + 8 + 8 * 8 + 8 + 8 * 4 + 4),
}


def _spline_bins(flow: str) -> dict:
    """The extra size of a spline-MAF case (8 bins), none for the other flows."""
    return {"bins": 8} if flow == "nsf" else {}


def test_flop_counts_by_hand():
    assert cases.matmul_flops(4, 8, 16, 2) == 2 * 16 * (4 * 8 + 8 * 8 + 8 * 8) * 2
    assert cases.coupling_flops(5, 8, 16, 3) == 2 * 16 * (2 * 8 + 8 * 8 + 8 * 6) * 3
    # 8x8x1, 2 levels: (4, 4, 4) with 4 + 9*2*F + 9*F*4 per pixel, then (2, 2, 8) from 2 kept
    # channels with 64 + 9*4*F + 9*F*8, F = 3, 2 steps each.
    level0 = 4 * 4 * (4 * 4 + 9 * 2 * 3 + 9 * 3 * 4)
    level1 = 2 * 2 * (8 * 8 + 9 * 4 * 3 + 9 * 3 * 8)
    assert cases.glow_flops([8, 8, 1], 2, 2, 3, 5) == 2 * 2 * (level0 + level1) * 5
    cfg = dict(flow="maf", dim=4, hidden=8, batch=16, layers=2, sample_n=8)
    flops = cases.flow_flops(cfg)
    one = cases.matmul_flops(4, 8, 16, 2)
    assert flops["train_step"] == 3 * one and flops["log_prob"] == one
    assert flops["sample"] == 4 * cases.matmul_flops(4, 8, 8, 2)  # D passes
    assert flops["iaf_sample"] == cases.matmul_flops(4, 8, 8, 2)  # one pass
    assert "iaf_sample" not in cases.flow_flops({**cfg, "flow": "realnvp"})
    spline = cases.flow_flops({**cfg, "flow": "nsf", "bins": 8})  # 3 * 8 - 1 outputs per dim
    assert spline["log_prob"] == 2 * 16 * (4 * 8 + 8 * 8 + 8 * 92) * 2
    assert spline["sample"] == 4 * 2 * 8 * (4 * 8 + 8 * 8 + 8 * 92) * 2  # D passes
    assert "iaf_sample" not in spline


def test_cases_and_libraries():
    assert cases.parse_case("8,128,256") == dict(flow="maf", dim=8, hidden=128, batch=256)
    assert cases.parse_case(json.dumps(run.CASES["G8"])) == run.CASES["G8"]
    with pytest.raises(ValueError, match="flow"):
        cases.parse_case('{"flow": "nice", "batch": 2}')
    assert not backends.supports("zuko_eager", "glow") and backends.supports("tfp_xla", "glow")
    with pytest.raises(ValueError, match="no glow"):
        _worker.measure("nflows_eager", **GLOW)
    assert {run.CASES[c]["flow"] for c in run.CASES} == set(cases.FLOWS)
    assert run.label("tfp_graph", "realnvp") == "TFP RealNVP, tf.function"


def test_backend_registry():
    """Every backend module declares the interface; the libraries are "<backend>_<mode>"."""
    assert backends.LIBS == (
        "tfp_flows_xla",
        "tfp_flows_graph",
        "tfp_xla",
        "tfp_graph",
        "zuko_compile",
        "zuko_eager",
        "nflows_eager",
    )
    for name in backends.BACKENDS:
        module = backends.backend(name)
        assert module.FRAMEWORK in ("tf", "torch") and module.MODES and module.REQUIRES
        assert set(module.FLOWS) <= set(cases.FLOWS) and callable(module.make_runner)
        for mode in module.MODES:
            assert backends.split(f"{name}_{mode}") == (module, mode)
            assert all(module.label(mode, flow) for flow in module.FLOWS)
    assert (
        backends.framework("tfp_flows_xla") == "tf" and backends.framework("zuko_eager") == "torch"
    )
    with pytest.raises(ValueError, match="lib"):
        backends.split("tfp_flows_eager")
    with pytest.raises(ValueError, match="no glow"):
        backends.make_runner("zuko_eager", GLOW)


TINY = dict(flow="maf", dim=4, hidden=8, batch=16, layers=2, sample_n=8)
# One call of each timed method of a runner: `out` holds the synced outputs' shapes and metadata.
ONE_CALL_EACH = """
import sys
sys.path.insert(0, {benchmarks!r})
import backends
runner = backends.make_runner({lib!r}, {case!r}, threads=1)
runner.setup()
shapes = {{m: list(runner.sync(getattr(runner, m)()).shape) for m in runner.metrics}}
out = dict(shapes=shapes, lib=runner.lib, framework=runner.framework,
           num_params=runner.num_params, versions=runner.versions, settings=runner.settings)
"""


@pytest.mark.parametrize("lib", backends.LIBS)
def test_every_backend_runs_one_call_of_each_method(lib):
    """Each backend in each mode, through the Runner interface, or skipped with the reason."""
    reason = backends.unavailable(lib)
    if reason is not None:
        pytest.skip(f"{lib}: {reason}")
    code = ONE_CALL_EACH.format(benchmarks=os.path.join(ROOT, "benchmarks"), lib=lib, case=TINY)
    if backends.framework(lib) == "tf":  # in-process
        namespace: dict = {}
        exec(code, namespace)
        out = namespace["out"]
    else:  # torch in its own process (its OpenMP runtime and TF's do not share one well)
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        proc = subprocess.run(
            [sys.executable, "-c", code + "import json; print(json.dumps(out))"],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = json.loads(proc.stdout.splitlines()[-1])
    iaf = lib.startswith("tfp_flows_")
    expected = {"train_step": [], "log_prob": [16], "sample": [8, 4]}
    assert out["shapes"] == ({**expected, "iaf_sample": [8, 4]} if iaf else expected)
    assert out["lib"] == lib and out["framework"] == backends.framework(lib)
    assert out["num_params"] == NUM_PARAMS["maf"]  # the same architecture everywhere
    assert out["versions"] and out["settings"]["log_scale"]


def test_missing_backend_is_skipped_with_its_reason(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(backends.backend("nflows"), "REQUIRES", ("torch", "no_such_module_x"))
    reason = backends.unavailable("nflows_eager")
    assert reason is not None and "no_such_module_x" in reason
    assert backends.unavailable("tfp_graph") is None
    # run.py skips it, says why, and records it: no worker starts, nothing crashes.
    run.main(["--case", "C", "--libs", "nflows_eager", "--out-dir", str(tmp_path)])
    assert f"skipping nflows_eager: {reason}" in capsys.readouterr().out
    with open(tmp_path / "results.json") as f:
        results = json.load(f)
    assert results["meta"]["skipped"] == {"nflows_eager": reason} and not results["records"]
    assert "Not run" in (tmp_path / "results.md").read_text()


def _check_record(record: dict, lib: str, flow: str, iaf: bool) -> None:
    expected = {"train_step", "log_prob", "sample", "num_params", "rss_peak_mb", "peak_flops"}
    assert expected | {"config", "flops", "versions", "settings"} <= set(record)
    assert ("iaf_sample" in record) == iaf
    for metric in ("train_step", "log_prob", "sample", *(("iaf_sample",) if iaf else ())):
        assert set(record[metric]) == TIMING_KEYS
        assert record[metric]["median_s"] > 0
        assert record[metric]["first_call_s"] > 0
    if flow in NUM_PARAMS:  # the same architecture everywhere
        assert record["num_params"] == NUM_PARAMS[flow]
    assert record["config"]["lib"] == lib and record["config"]["flow"] == flow
    assert record["peak_flops"] > 1e8
    assert record["rss_peak_mb"] >= record["rss_after_import_mb"] > 0
    assert record["flops"] == cases.flow_flops(record["config"])
    json.dumps(record)  # JSON-ready


def _check_rendered(record: dict, lib: str, case: dict) -> None:
    record["case"], record["repeat"] = "X", 0
    summary = run.summarize([record, {"error": "failed worker", "lib": "x"}])
    entry = summary["X"][lib]
    assert entry["train_step"]["median"] == record["train_step"]["median_s"]
    meta = dict(
        command="test", wall_s=1.0, repeats=1, blocks=2, min_time=0.0, threads=2, cases={"X": case}
    )
    markdown = run.render_markdown(summary, run.machine_info([record]), meta)
    assert run.label(lib, case["flow"]) in markdown
    assert run.ARCHITECTURE[case["flow"]] in markdown


@pytest.mark.parametrize(
    ("lib", "flow"),
    [
        ("tfp_flows_graph", "maf"),
        ("tfp_graph", "realnvp"),
        ("tfp_flows_graph", "nsf"),
        ("tfp_graph", "nsf"),
    ],
)
def test_tf_worker(lib, flow):
    case = dict(flow=flow, **VECTOR, **_spline_bins(flow))
    record = _worker.measure(lib, **case, **TIMING)
    _check_record(record, lib, flow, iaf=lib.startswith("tfp_flows") and flow == "maf")
    assert record["settings"]["jit_compile"] == lib.endswith("_xla")
    _check_rendered(record, lib, case)


@pytest.mark.slow
@pytest.mark.parametrize("lib", ["tfp_flows_graph", "tfp_graph", "tfp_flows_xla"])
def test_tf_worker_glow(lib):
    record = _worker.measure(lib, **GLOW, **TIMING)
    _check_record(record, lib, "glow", iaf=False)
    _check_rendered(record, lib, GLOW)


TORCH_LIBS = [
    pytest.param(
        lib,
        flow,
        marks=pytest.mark.skipif(
            backends.unavailable(lib) is not None, reason=str(backends.unavailable(lib))
        ),
    )
    for lib in ("zuko_eager", "nflows_eager")
    for flow in backends.split(lib)[0].FLOWS  # every vector flow the library has
]


@pytest.mark.parametrize(("lib", "flow"), TORCH_LIBS)
def test_torch_worker_cli(lib, flow):
    case = json.dumps(dict(flow=flow, dim=4, hidden=8, batch=16, **_spline_bins(flow)))
    args = ["--lib", lib, "--case", case, "--layers", "2"]
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
    _check_record(record, lib, flow, iaf=False)


def _stats(median, lo, hi):
    return {"median": median, "min": lo, "max": hi, "n": 2}


def test_readme_speed_table_is_written_between_its_markers(tmp_path):
    from backends import readme_table

    entry = {
        "rss_peak_mb": _stats(900, 890, 910),
        "train_step_first_call": _stats(1.5, 1.4, 1.6),
        "train_step_efficiency": _stats(0.2, 0.19, 0.21),
        "peak_gflops": _stats(450, 440, 460),
    }
    summary = {
        "C": {
            "tfp_flows_xla": {**entry, "train_step": _stats(1e-3, 0.9e-3, 1.1e-3)},
            # beyond the spread: bold; overlapping: the ratio's range instead
            "tfp_xla": {**entry, "train_step": _stats(2e-3, 1.9e-3, 2.1e-3)},
            "zuko_compile": {**entry, "train_step": _stats(1.05e-3, 0.8e-3, 1.3e-3)},
        }
    }
    meta = {"command": "python benchmarks/run.py", "wall_s": 60.0, "threads": 2, "repeats": 2}
    meta["cases"] = {"C": cases.CASES["C"]}
    block = readme_table.readme_block(summary, {"Flags": "avx2 avx512f"}, meta)
    row = next(line for line in block.splitlines() if "| step |" in line)
    assert "**2.00x**" in row and "1.05x (0.73-1.44)" in row, row
    assert "AVX-512" in block and "900 / 1.5 / 20%" in block
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{readme_table.START}\nSTALE-TABLE\n{readme_table.END}\nafter\n")
    readme_table.update_readme(str(readme), block)
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "STALE-TABLE" not in text
    assert text.count(readme_table.START) == 1 and "**2.00x**" in text
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="speed-table"):
        readme_table.update_readme(str(readme), block)


def test_the_readme_holds_a_generated_speed_table():
    from backends import readme_table

    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    block = text.split(readme_table.START, 1)[1].split(readme_table.END, 1)[0]
    assert "python benchmarks/run.py --readme README.md" in block
    assert "| B: MAF, D=64, H=512, batch 512 | step |" in block
