"""zuko's `MAF`, `NSF` and `RealNVP` (PyTorch), eager or under `torch.compile`."""

from __future__ import annotations

from ._torch import TorchRunner

__all__ = ["FLOWS", "FRAMEWORK", "MODES", "REQUIRES", "label", "make_runner"]

FRAMEWORK, MODES, FLOWS = "torch", ("compile", "eager"), ("maf", "nsf", "realnvp")
REQUIRES = ("torch", "zuko")
NAMES = {"maf": "MAF", "nsf": "NSF", "realnvp": "RealNVP"}


def label(mode: str, flow: str) -> str:
    """Row label in a table of `flow` cases."""
    how = "torch.compile (sampling eager)" if mode == "compile" else "eager"
    return f"zuko {NAMES.get(flow)}, {how}"


class ZukoRunner(TorchRunner):
    library = "zuko"
    modes = MODES

    def build(self):
        import zuko

        c, n = self.case, self.case["sample_n"]
        sizes = dict(
            features=c["dim"], transforms=c["layers"], hidden_features=(c["hidden"], c["hidden"])
        )
        if c["flow"] == "nsf":  # zuko's spline bound is 5, as the case's
            flow = zuko.flows.NSF(bins=c["bins"], **sizes)
        else:
            flow = {"maf": zuko.flows.MAF, "realnvp": zuko.flows.RealNVP}[c["flow"]](**sizes)

        def log_prob(x):
            return flow().log_prob(x)

        def sample():
            return flow().sample((n,))

        note = "soft clamp s / (1 + |s / log 1e-3|) (zuko default)"
        if c["flow"] == "nsf":
            note = f"monotonic rational-quadratic spline, {c['bins']} bins on +-5 (zuko NSF)"
        return flow, log_prob, sample, note, {"zuko": zuko.__version__}


def make_runner(case: dict, mode: str, **options) -> ZukoRunner:
    """A runner of `case` in `mode` (`"compile"` or `"eager"`); `options`: `threads`,
    `compile_sample`."""
    return ZukoRunner(case, mode, **options)
