"""tfp_flows' own factories (`flows.maf` affine and spline, `flows.iaf`, `flows.real_nvp`,
`flows.glow`)."""

from __future__ import annotations

from ._tf import TFRunner
from .cases import SPLINE_BOUND

__all__ = ["FLOWS", "FRAMEWORK", "MODES", "REQUIRES", "label", "make_runner"]

FRAMEWORK, MODES, FLOWS = "tf", TFRunner.modes, ("maf", "nsf", "realnvp", "glow")
REQUIRES = ("tensorflow", "tensorflow_probability", "keras")


def label(mode: str, flow: str) -> str:
    """Row label in a table of `flow` cases."""
    return "tfp_flows, tf.function" + ("(jit_compile=True)" if mode == "xla" else "")


class TfpFlowsRunner(TFRunner):
    library = "tfp_flows"

    def build(self):
        from tfp_flows import flows

        c = self.case
        if c["flow"] == "maf":
            hidden = (c["hidden"], c["hidden"])
            dist = flows.maf(c["dim"], num_layers=c["layers"], hidden_units=hidden)
            iaf = flows.iaf(c["dim"], num_layers=c["layers"], hidden_units=hidden)
            return dist, iaf, "tanh soft clamp at 3.0 (flows.maf default)"
        if c["flow"] == "nsf":
            dist = flows.maf(
                c["dim"],
                num_layers=c["layers"],
                hidden_units=(c["hidden"], c["hidden"]),
                transformer="spline",
                num_bins=c["bins"],
                spline_bound=SPLINE_BOUND,
            )
            return dist, None, f"rational-quadratic spline, {c['bins']} bins on +-{SPLINE_BOUND:g}"
        if c["flow"] == "realnvp":
            dist = flows.real_nvp(
                [c["dim"]],
                num_layers=c["layers"],
                hidden_units=(c["hidden"], c["hidden"]),
                normalization=None,
            )
            return dist, None, "exp of a tanh soft clamp at 3.0 (flows.real_nvp default)"
        dist = flows.glow(
            c["image_shape"],
            levels=c["levels"],
            steps_per_level=c["steps"],
            filters=c["filters"],
            num_blocks=0,
            coupling="affine",
        )
        return dist, None, "sigmoid scale (flows.glow coupling='affine')"


def make_runner(case: dict, mode: str, **options) -> TfpFlowsRunner:
    """A runner of `case` in `mode` (`"xla"` or `"graph"`); `options`: `threads`."""
    return TfpFlowsRunner(case, mode, **options)
