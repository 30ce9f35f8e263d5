"""nflows' masked affine autoregressive and affine coupling transforms (PyTorch), eager."""

from __future__ import annotations

from ._torch import TorchRunner

__all__ = ["FLOWS", "FRAMEWORK", "MODES", "REQUIRES", "label", "make_runner"]

FRAMEWORK, MODES, FLOWS = "torch", ("eager",), ("maf", "realnvp")
REQUIRES = ("torch", "nflows")
NAMES = {"maf": "MAF", "realnvp": "RealNVP"}


def label(mode: str, flow: str) -> str:
    """Row label in a table of `flow` cases."""
    return f"nflows {NAMES.get(flow)}, eager"


def maf(dim: int, hidden: int, layers: int):
    """`layers` MADEs (one feed-forward block: D -> H -> H -> 2D, ReLU), order reversed."""
    import torch.nn.functional as F
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms import (
        CompositeTransform,
        MaskedAffineAutoregressiveTransform,
        ReversePermutation,
    )

    transforms = []
    for i in range(layers):
        transforms.append(
            MaskedAffineAutoregressiveTransform(
                features=dim,
                hidden_features=hidden,
                num_blocks=1,
                use_residual_blocks=False,
                activation=F.relu,
            )
        )
        if i < layers - 1:
            transforms.append(ReversePermutation(features=dim))
    return Flow(CompositeTransform(transforms), StandardNormal([dim]))


def real_nvp(dim: int, hidden: int, layers: int):
    """`layers` affine couplings on `nflows.nn.nets.MLP([D/2], [D], [H, H])`, halves alternating."""
    import torch
    import torch.nn.functional as F
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.nn.nets import MLP
    from nflows.transforms import AffineCouplingTransform, CompositeTransform

    class Net(torch.nn.Module):  # nflows calls its coupling networks as net(x, context)
        def __init__(self, features_in, features_out):
            super().__init__()
            self.mlp = MLP([features_in], [features_out], [hidden, hidden], activation=F.relu)

        def forward(self, x, context=None):
            return self.mlp(x)

    transforms = []
    for i in range(layers):
        mask = (torch.arange(dim) >= dim // 2).int()  # 1: transformed
        transforms.append(AffineCouplingTransform(mask if i % 2 == 0 else 1 - mask, Net))
    return Flow(CompositeTransform(transforms), StandardNormal([dim]))


class NflowsRunner(TorchRunner):
    library = "nflows"
    modes = MODES

    def build(self):
        from importlib.metadata import version

        c, n = self.case, self.case["sample_n"]
        is_maf = c["flow"] == "maf"
        flow = (maf if is_maf else real_nvp)(c["dim"], c["hidden"], c["layers"])

        def sample():
            return flow.sample(n)

        note = "softplus scale + 1e-3" if is_maf else "sigmoid(s + 2) + 1e-3 scale"
        versions = {"nflows": version("nflows")}
        return flow, flow.log_prob, sample, note + " (nflows default)", versions


def make_runner(case: dict, mode: str = "eager", **options) -> NflowsRunner:
    """A runner of `case` (mode `"eager"` only); `options`: `threads`."""
    return NflowsRunner(case, mode, **options)
