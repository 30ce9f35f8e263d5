"""Quality of flow matching (slow, `pytest -m slow`): the toy densities and the conditional
rotated moons, trained as `benchmarks/quality_toy.py` and `examples/flow_matching.py` do."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"fm_quality_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_flow_matching_recovers_the_toy_densities_in_five_cpu_minutes(tmp_path):
    """Held-out NLL within 0.03 nats of the entropy on moons, 8 gaussians and rings, 300 s of
    CPU time per set (the paired estimate of NLL - H, 50k held-out points)."""
    quality_toy = _load(ROOT / "benchmarks" / "quality_toy.py")
    sets = ["moons", "8gaussians", "rings"]
    argv = ["--seconds", "300", "--sets", ",".join(sets), "--models", quality_toy.FLOW_MATCHING]
    report = quality_toy.main([*argv, "--out-dir", str(tmp_path)])
    gaps = {s: report["results"][s][quality_toy.FLOW_MATCHING]["gap"] for s in sets}
    print("NLL - H:", gaps)
    assert all(gap < 0.03 for gap in gaps.values()), gaps


@pytest.mark.slow
def test_conditional_rotated_moons_matches_the_maf(tmp_path):
    """p(x | c) on the rotated moons: held-out NLL within 0.05 nats of a conditional spline
    MAF's, both trained on the same data for the same time."""
    example = _load(ROOT / "examples" / "flow_matching.py")
    metrics = example.conditional_comparison(seconds=300.0, out=str(tmp_path))
    print(metrics)
    assert metrics["flow_matching_nll"] < metrics["maf_nll"] + 0.05, metrics
    assert metrics["flow_matching_nll_shuffled"] > metrics["flow_matching_nll"] + 0.2, metrics
