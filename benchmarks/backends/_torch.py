"""What the PyTorch backends share: threads, the training step, the matmul peak."""

from __future__ import annotations

import abc
import time
from typing import Any

import numpy as np

from .base import Runner

__all__ = ["TorchRunner", "load_torch", "torch_peak"]


def load_torch(threads: int):
    """Imports torch with `threads` intra-op and 1 inter-op threads (where still settable)."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set or parallel work started (in-process use)
        pass
    return torch


def torch_peak(torch, reps: int, n: int) -> float:
    """Float32 FLOP/s of torch's `n x n x n` matmul, best of `reps` after one warm-up."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


class TorchRunner(Runner):
    """A torch flow timed eagerly (mode `"eager"`) or under `torch.compile` (`"compile"`).

    A backend implements `build()` only. In `"compile"` mode the loss (forward and, through
    AOTAutograd, backward), the optimizer step and log_prob are compiled, as the torch docs
    recommend; sampling stays eager unless `compile_sample` (zuko's MAF unrolls D x layers
    MADE calls when compiled: minutes).
    """

    framework = "torch"
    modes = ("eager",)

    def __init__(self, case: dict, mode: str, **kwargs) -> None:
        super().__init__(case, mode, **kwargs)
        self.torch = load_torch(self.threads)

    @abc.abstractmethod
    def build(self) -> tuple[Any, Any, Any, str, dict]:
        """(module holding the parameters, log_prob(x), sample(), log-scale note, versions)."""

    def setup(self, x: np.ndarray | None = None) -> None:
        torch = self.torch
        torch.manual_seed(0)
        self.x = torch.from_numpy(self.data(x))
        flow, log_prob, sample, log_scale, versions = self.build()
        optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)

        def loss_fn(x):
            return -log_prob(x).mean()

        def opt_step():
            optimizer.step()

        compiled = self.mode == "compile"
        sample_mode = "eager"
        if compiled:
            loss_fn, opt_step, log_prob = (torch.compile(f) for f in (loss_fn, opt_step, log_prob))
            if self.compile_sample:
                sample, sample_mode = torch.compile(sample), "torch.compile"
        self._optimizer, self._loss, self._opt_step = optimizer, loss_fn, opt_step
        self._log_prob, self._sample = log_prob, sample
        self.num_params = int(sum(p.numel() for p in flow.parameters()))
        self.versions = {"torch": torch.__version__, **versions}
        self.settings = {
            "torch_compile": compiled,
            "sample_mode": sample_mode,
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "optimizer": "torch.optim.Adam(lr=1e-3)",
            "log_scale": log_scale,
        }

    def train_step(self):
        self._optimizer.zero_grad(set_to_none=True)
        loss = self._loss(self.x)
        loss.backward()
        self._opt_step()
        return loss

    def log_prob(self):
        with self.torch.no_grad():
            return self._log_prob(self.x)

    def sample(self):
        with self.torch.no_grad():
            return self._sample()

    def sync(self, out):
        return out.detach()

    def peak_flops(self, reps: int, n: int) -> float:
        return torch_peak(self.torch, reps, n)
