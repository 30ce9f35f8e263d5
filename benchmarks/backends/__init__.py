"""The libraries the benchmarks compare, one small module each, behind one interface.

Each backend module (`tfp_flows`, `tfp`, `zuko`, `nflows`) declares

    FRAMEWORK: str                      "tf" or "torch"
    MODES: tuple[str, ...]              compile modes, e.g. ("xla", "graph")
    FLOWS: tuple[str, ...]              the case flows it has ("maf", "realnvp", "glow")
    REQUIRES: tuple[str, ...]           modules it imports (a missing one: the backend is skipped)
    label(mode, flow) -> str            its row label in the reports
    make_runner(case, mode, *, threads=2, compile_sample=False) -> base.Runner

and imports its framework only inside `make_runner`, so listing the backends loads nothing.
A library in a mode is named `"<backend>_<mode>"` (`"tfp_flows_xla"`, `"zuko_eager"`): the
names of the reports' rows and of `run.py --libs`. Adding a peer is one module here and its
name in `BACKENDS`; adding a case is one entry of `cases.CASES`.

Beside the backends: `base` (the `Runner` interface), `cases` (the cases, their data and FLOP
counts), `timing` (blocks of calls; alternating rounds in one process) and `report` (summaries,
tables, machine info) serve `run.py`, `_worker.py`, `paired_tf.py`, `guard_overhead.py` and
`profile_step.py`.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from types import ModuleType

from .base import METRICS, Runner
from .cases import CASES, FLOWS, QUICK_CASES

__all__ = [
    "add_omp_wait_policy_argument",
    "BACKENDS",
    "CASES",
    "FLOWS",
    "LIBS",
    "METRICS",
    "QUICK_CASES",
    "Runner",
    "backend",
    "framework",
    "label",
    "make_runner",
    "split",
    "supports",
    "unavailable",
]

BACKENDS = ("tfp_flows", "tfp", "zuko", "nflows")  # the reports' row order


def add_omp_wait_policy_argument(parser) -> None:
    """`--omp-wait-policy`, shared by `run.py` and its workers (default: the runtime's own)."""
    parser.add_argument(
        "--omp-wait-policy",
        choices=("ACTIVE", "PASSIVE"),
        default=None,
        help="OpenMP wait policy for torch (default: the runtime's; PASSIVE if shared)",
    )


def backend(name: str) -> ModuleType:
    """The backend module `name` (one of `BACKENDS`)."""
    if name not in BACKENDS:
        raise ValueError(f"no backend {name!r}; choose from {BACKENDS}.")
    return importlib.import_module(f".{name}", __name__)


LIBS = tuple(f"{name}_{mode}" for name in BACKENDS for mode in backend(name).MODES)


def split(lib: str) -> tuple[ModuleType, str]:
    """`"tfp_flows_xla"` -> (the `tfp_flows` backend, `"xla"`)."""
    if lib not in LIBS:
        raise ValueError(f"`lib` must be one of {LIBS}; got {lib!r}.")
    name, mode = lib.rsplit("_", 1)
    return backend(name), mode


def framework(lib: str) -> str:
    """`"tf"` or `"torch"`."""
    return split(lib)[0].FRAMEWORK


def supports(lib: str, flow: str) -> bool:
    """Whether `lib` has the flow (zuko and nflows have no Glow)."""
    return flow in split(lib)[0].FLOWS


def label(lib: str, flow: str) -> str:
    """Row label of `lib` in a table of `flow` cases."""
    module, mode = split(lib)
    return module.label(mode, flow)


def unavailable(lib: str, python: str | None = None) -> str | None:
    """Why `lib` cannot run under `python` (default: this interpreter), or None if it can."""
    missing = []
    for module in split(lib)[0].REQUIRES:
        if python is None or python == sys.executable:
            found = importlib.util.find_spec(module) is not None
        else:
            probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
            found = probe.returncode == 0
        if not found:
            missing.append(module)
    if not missing:
        return None
    return f"{', '.join(missing)} not importable (pip install -e '.[bench]')"


def make_runner(lib: str, case: dict, **options) -> Runner:
    """A runner of `lib` (`"<backend>_<mode>"`) on `case`; `options`: `threads` (2),
    `compile_sample` (torch.compile sampling too; zuko only). Loads the framework."""
    module, mode = split(lib)
    if case["flow"] not in module.FLOWS:
        raise ValueError(f"{lib} has no {case['flow']}.")
    return module.make_runner(case, mode, **options)
