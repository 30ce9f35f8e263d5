"""What a new user meets in README.md: its code runs, and every `tfp_flows` name it gives exists.

* The README's "in a fresh process" loading block loads a `DensityModel` saved by another
  process (a fresh `sys.executable`, so nothing from this test's imports helps it).
* Every Python block parses; the NeuTra block of "In `tfp.vi` and `tfp.mcmc`" runs end to end
  (with its step counts cut down).
* Every `tfp_flows` name the README mentions resolves: `tfp_flows.a.b`, `from tfp_flows.a import
  b`, the short `vi.x` / `flows.x` forms in backticks and code, and the names in the tables
  headed by a module.
"""

import ast
import importlib
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_probability as tfp

import tfp_flows
from tfp_flows import vi
from tfp_flows.keras import DensityModel

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", README, re.S | re.M)
# Submodules a README may name without the `tfp_flows.` prefix. Not `keras`: `keras.x` is Keras.
SHORT_MODULES = (
    "bijectors|checks|datasets|diagnostics|flows|images|losses|models|nn|saving|testing|train|vi"
)


def _block(*needles: str) -> str:
    found = [b for b in PYTHON_BLOCKS if all(n in b for n in needles)]
    assert len(found) == 1, f"expected one README python block with {needles}; got {len(found)}"
    return found[0]


def test_saved_model_loads_in_a_fresh_process_with_the_readme_imports(tmp_path):
    model = DensityModel("real_nvp", {"event_shape": [2], "num_layers": 2, "hidden_units": [8]})
    model.compile(optimizer="adam")
    x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    model.fit(x, batch_size=8, epochs=1, verbose=0)  # non-trivial weights and ActNorm init
    model.save(tmp_path / "flow.keras")
    np.save(tmp_path / "x.npy", x)

    load_block = _block('load_model("flow.keras")', "import tfp_flows")
    assert "DensityModel(" not in load_block, "the loading block must not build a model itself"
    script = load_block + textwrap.dedent(
        """
        import json as _json, numpy as _np
        print("LOG_PROB", _json.dumps(restored.log_prob(_np.load("x.npy")).numpy().tolist()))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [s for s in done.stdout.splitlines() if s.startswith("LOG_PROB ")]
    restored_log_prob = np.array(json.loads(line.split(" ", 1)[1]))
    np.testing.assert_allclose(restored_log_prob, model.log_prob(x).numpy(), rtol=1e-6, atol=1e-6)


def test_importing_the_package_registers_its_keras_classes():
    import keras

    for name in ("DensityModel", "VariationalModel"):
        assert keras.saving.get_registered_object(f"tfp_flows>{name}") is getattr(
            tfp_flows.keras, name
        )
    assert "keras" in tfp_flows.__all__


def test_readme_python_blocks_parse():
    assert len(PYTHON_BLOCKS) >= 5
    for block in PYTHON_BLOCKS:
        ast.parse(block)


def test_readme_neutra_block_runs(monkeypatch):
    # As written, the block trains an 8-layer flow 2000 steps and runs 1200 HMC steps: cut down
    # to a small flow, 20 steps and 3 draws (tracing the graphs is most of the time left).
    surrogate, fit, sample_chain = vi.flow_surrogate_posterior, vi.fit, tfp.mcmc.sample_chain

    def small_surrogate(*args, **kwargs):
        return surrogate(*args, **kwargs, num_layers=2, hidden_units=(8,))

    def short_fit(*args, **kwargs):
        return fit(*args, **{**kwargs, "num_steps": 20, "report_every": None, "jit_compile": False})

    def short_chain(num_results, *args, **kwargs):
        return sample_chain(3, *args, **{**kwargs, "num_burnin_steps": 1})

    monkeypatch.setattr(vi, "flow_surrogate_posterior", small_surrogate)
    monkeypatch.setattr(vi, "fit", short_fit)
    monkeypatch.setattr(tfp.mcmc, "sample_chain", short_chain)
    namespace = {}
    exec(compile(_block("neutra_initial_state"), "README.md", "exec"), namespace)
    draws = namespace["draws"]
    assert sorted(draws) == ["mu", "tau"]
    assert draws["mu"].shape == [3, 4] and draws["tau"].shape == [3, 4]
    assert bool(np.all(draws["tau"].numpy() > 0))


def test_readme_flow_matching_block_runs(tmp_path, monkeypatch):
    # As written, the block trains a 3x256 field for 20 epochs on 50,000 points: cut down to a
    # tiny field, 2 solver steps, 512 points and one epoch (each replaced text must be there).
    block = _block("FlowMatchingModel(", "experimental_sample_and_log_prob")
    cuts = {
        "datasets.rings(50_000": "datasets.rings(512",
        "hidden_units=(256, 256, 256), num_steps=32": "hidden_units=(8,), num_steps=2",
        "epochs=20, verbose=2": "epochs=1, verbose=0",
        "continuous_flow([d], num_steps=8)": "continuous_flow([d], hidden_units=(8,), num_steps=2)",
    }
    for text, short in cuts.items():
        assert text in block, text
        block = block.replace(text, short)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["log_p"].shape == [512] and namespace["samples"].shape == [1000, 2]
    assert np.all(np.isfinite(namespace["log_q"].numpy()))
    import keras

    restored = keras.models.load_model(tmp_path / "fm.keras")
    x = namespace["x"][:16]
    np.testing.assert_allclose(restored.flow.log_prob(x), namespace["flow"].log_prob(x), rtol=1e-6)
    assert namespace["q"].event_shape == [2]


def _resolve(dotted: str) -> bool:
    """Whether `tfp_flows.a.b.c` is importable: the longest module prefix, then attributes."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _names(text: str) -> set[str]:
    """Every `tfp_flows` name `text` (markdown) mentions, as `tfp_flows.a.b`."""
    code = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    spans = re.findall(r"`([^`]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    names = set(re.findall(r"(?<![\w.])(tfp_flows(?:\.[A-Za-z_]\w*)+)", text))
    short = rf"(?<![\w.])((?:{SHORT_MODULES})(?:\.[A-Za-z_]\w*)+)"
    for source in (*code, *spans):
        for module, imported in re.findall(r"from (tfp_flows[\w.]*) import ([\w, ]+)", source):
            names |= {f"{module}.{n.strip()}" for n in imported.split(",") if n.strip()}
        names |= {f"tfp_flows.{m}" for m in re.findall(short, source)}
    # Tables headed by a module, e.g. "| `tfp_flows.bijectors` | what it is |": first-column names.
    for module, rows in re.findall(
        r"^\| `(tfp_flows[\w.]*)`[^|\n]*\|.*\n\|[-|]+\|\n((?:\|.*\n)+)", text, re.M
    ):
        for row in rows.splitlines():
            first = row.split("|")[1]
            names |= {f"{module}.{n}" for n in re.findall(r"`(\w+)", first)}
    return names


def test_readme_tfp_flows_names_exist():
    names = _names(README)
    # The scan finds the names in every form it looks for (so an empty scan cannot pass).
    expected = {
        "tfp_flows.keras.DensityModel",  # from tfp_flows.keras import DensityModel
        "tfp_flows.diagnostics.StopOnNonFinite",  # tfp_flows.diagnostics.StopOnNonFinite
        "tfp_flows.vi.neutra_initial_state",  # vi.neutra_initial_state in code
        "tfp_flows.bijectors.Invertible1x1Conv",  # the bijectors table
        "tfp_flows.nn.MADE",  # the nn table
    }
    assert expected <= names, expected - names
    missing = sorted(n for n in names if not _resolve(n))
    assert not missing, f"README.md names what tfp_flows does not have: {missing}"


@pytest.mark.parametrize(
    "text, missing",
    [
        ("Use `tfp_flows.vi.no_such_function`.", "tfp_flows.vi.no_such_function"),
        ("```python\nfrom tfp_flows.flows import maf, nope\n```\n", "tfp_flows.flows.nope"),
        ("Call `vi.fit_everything(q)`.", "tfp_flows.vi.fit_everything"),
        ("| `tfp_flows.nn` | |\n|---|---|\n| `MADE`, `Nope` | x |\n", "tfp_flows.nn.Nope"),
    ],
)
def test_name_scan_reports_a_missing_name(text, missing):
    names = _names(text)
    assert missing in names
    assert [n for n in names if not _resolve(n)] == [missing]
