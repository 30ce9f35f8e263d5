"""The interface every benchmark backend implements: a `Runner` of one flow, case and mode."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from .cases import LAYERS, make_data

__all__ = ["METRICS", "Runner"]

METRICS = ("train_step", "log_prob", "sample", "iaf_sample")  # what a runner can time


class Runner(abc.ABC):
    """One library's flow on one case, in one compile mode: what the benchmarks time.

    Constructing one (through a backend's `make_runner(case, mode, ...)`) loads the framework
    with its thread settings, so that the memory measured right after is the framework's alone.
    `setup(x)` builds the flow, an Adam(1e-3) optimizer and the compiled calls on the batch `x`
    (default: `cases.make_data(case)`, the same data for every library). After it, each of
    `train_step()` (forward, backward and update on the batch), `log_prob()` (the batch, no
    gradient), `sample()` (`case["sample_n"]` draws) and, where `has_iaf`, `iaf_sample()` runs
    one call and returns its output without waiting for it; `sync(out)` waits for an output.

    Metadata: `lib` (`"<library>_<mode>"`, the name in the reports), `framework` (`"tf"` or
    `"torch"`), and after `setup` `num_params`, `versions` (package -> version) and `settings`
    (compile mode, threads, optimizer, how the log-scale is parameterised).
    """

    library: str = ""  # the backend's name, e.g. "tfp_flows"
    framework: str = ""  # "tf" or "torch": runners of one framework share a matmul peak
    modes: tuple[str, ...] = ()

    def __init__(
        self, case: dict, mode: str, *, threads: int = 2, compile_sample: bool = False
    ) -> None:
        if mode not in self.modes:
            raise ValueError(f"{self.library} has modes {self.modes}; got {mode!r}.")
        self.case = {"layers": LAYERS, **case}
        self.mode = mode
        self.threads = threads
        self.compile_sample = compile_sample
        self.has_iaf = False
        self.num_params = 0
        self.settings: dict[str, Any] = {}
        self.versions: dict[str, str] = {}

    @property
    def lib(self) -> str:
        return f"{self.library}_{self.mode}"

    @property
    def metrics(self) -> tuple[str, ...]:
        """The calls this runner times, in order."""
        return METRICS if self.has_iaf else METRICS[:-1]

    def data(self, x: np.ndarray | None) -> np.ndarray:
        return make_data(self.case) if x is None else np.asarray(x, np.float32)

    @abc.abstractmethod
    def setup(self, x: np.ndarray | None = None) -> None: ...

    @abc.abstractmethod
    def train_step(self) -> Any: ...

    @abc.abstractmethod
    def log_prob(self) -> Any: ...

    @abc.abstractmethod
    def sample(self) -> Any: ...

    def iaf_sample(self) -> Any:
        raise NotImplementedError(f"{self.lib} has no IAF.")

    @abc.abstractmethod
    def sync(self, out: Any) -> Any:
        """Waits for `out` (host copies); returns them."""

    @abc.abstractmethod
    def peak_flops(self, reps: int, n: int) -> float:
        """The framework's float32 FLOP/s on an `n x n x n` matmul, best of `reps`."""
