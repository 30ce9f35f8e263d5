"""Every example runs end to end in smoke mode, so none of them rots.

Each `examples/NAME.py` is imported from its file (in this process, so TensorFlow is imported
once) and its `main(["--smoke", "--out", DIR])` is called. It must return its metrics as a dict,
write `metrics.json` and at least one PNG into `DIR`, plus every file its docstring names in
backticks (e.g. `quickstart.png`), and every number it reports must be finite. New examples are
picked up automatically.
"""

import importlib.util
import json
import math
import pathlib
import re

import keras
import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numbers(tree, where=""):
    """(path, value) for every number in a nested dict / list of metrics."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _numbers(value, f"{where}/{key}")
    elif isinstance(tree, list | tuple):
        for i, value in enumerate(tree):
            yield from _numbers(value, f"{where}[{i}]")
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        yield where, tree


def test_examples_are_found():
    names = {p.stem for p in EXAMPLES}
    assert {"quickstart", "energy_2d", "bayesian_logistic_regression", "conditional"} <= names
    assert "flow_matching" in names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_in_smoke_mode(path, tmp_path):
    module = _load(path)
    assert module.__doc__ and "python examples/" in module.__doc__, "document the command line"
    keras.utils.set_random_seed(0)
    metrics = module.main(["--smoke", "--out", str(tmp_path)])

    assert isinstance(metrics, dict) and metrics
    promised = set(re.findall(r"`([\w.-]+\.(?:png|json))`", module.__doc__)) | {"metrics.json"}
    missing = sorted(name for name in promised if not (tmp_path / name).exists())
    assert not missing, f"{path.name} did not write {missing}"
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written, "metrics.json is empty"
    pngs = list(tmp_path.rglob("*.png"))
    assert pngs, f"{path.name} wrote no PNG"
    assert all(p.stat().st_size > 1000 for p in pngs), "an empty or blank PNG"
    for source in (metrics, written):
        numbers = list(_numbers(source))
        assert numbers, "no figures reported"
        bad = [(where, value) for where, value in numbers if not math.isfinite(value)]
        assert not bad, f"non-finite metrics: {bad}"
