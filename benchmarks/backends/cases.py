"""The benchmark cases, in one place: sizes, the data every library gets, and the FLOP counts.

A case is a JSON-ready dict: `flow` (`"maf"`, `"nsf"`, `"realnvp"` or `"glow"`), `batch`,
`sample_n`, and for vector flows `dim`, `hidden` (and `layers`, 5 unless given; `bins` for
`"nsf"`), for Glow `image_shape`, `levels`, `steps`, `filters`. Adding a case is one entry of
`CASES`; `run.py --case NAME` runs it, and every backend that has its flow builds it.

* maf: `layers` MADEs with two hidden layers of `hidden` ReLU units, an affine transform, the
  order reversed between layers, a standard-normal base.
* nsf: the same MADEs with `3 * bins - 1` outputs per dimension (bin widths, heights and interior
  knot slopes) driving a monotone rational-quadratic spline on `[-5, 5]` (identity outside): a
  spline MAF, zuko's `NSF`.
* realnvp: `layers` affine couplings on vectors, each an MLP `D/2 -> hidden -> hidden -> 2 * D/2`
  (ReLU) giving the shift and log-scale of the other half, the halves alternating.
* glow: on `[H, W, C]` images, `levels` levels of squeeze, `steps` x (ActNorm, invertible 1x1
  convolution (LU), affine coupling with a sigmoid scale whose conditioner is
  `conv3x3(filters) -> ReLU -> conv3x3(2 * C/2)`, zero-initialised last layer), half the channels
  factored out after each level but the last. Only the TensorFlow libraries have a Glow.
"""

from __future__ import annotations

import functools
import json

import numpy as np

__all__ = [
    "CASES",
    "FLOWS",
    "LAYERS",
    "QUICK_CASES",
    "SPLINE_BOUND",
    "coupling_flops",
    "flow_flops",
    "glow_flops",
    "make_data",
    "matmul_flops",
    "parse_case",
]

FLOWS = ("maf", "nsf", "realnvp", "glow")
SPLINE_BOUND = 5.0  # the spline's interval [-5, 5] in the "nsf" flow (zuko's default)
LAYERS = 5  # MADEs or couplings of a vector case unless the case says otherwise

CASES = {  # in the order they run: the cheap ones first
    "C": dict(flow="maf", dim=8, hidden=128, batch=256, sample_n=512),
    "A": dict(flow="maf", dim=16, hidden=128, batch=512, sample_n=512),
    "S": dict(flow="nsf", dim=16, hidden=128, batch=512, sample_n=512, bins=8),
    "R": dict(flow="realnvp", dim=16, hidden=128, batch=512, sample_n=512),
    "G8": dict(
        flow="glow", image_shape=[8, 8, 1], levels=2, steps=3, filters=64, batch=64, sample_n=64
    ),
    "B": dict(flow="maf", dim=64, hidden=512, batch=512, sample_n=512),
    "G16": dict(
        flow="glow", image_shape=[16, 16, 3], levels=3, steps=3, filters=64, batch=32, sample_n=64
    ),
    "G32": dict(
        flow="glow", image_shape=[32, 32, 3], levels=3, steps=3, filters=64, batch=32, sample_n=64
    ),
}
QUICK_CASES = ("C", "R", "G8")


def parse_case(text: str) -> dict:
    """`D,H,BATCH` (a MAF case) or a JSON object with `flow` and its sizes."""
    text = text.strip()
    if text.startswith("{"):
        case = json.loads(text)
    else:
        dim, hidden, batch = (int(v) for v in text.split(","))
        case = dict(flow="maf", dim=dim, hidden=hidden, batch=batch)
    if case.get("flow", "maf") not in FLOWS:
        raise ValueError(f"`flow` must be one of {FLOWS}; got {case['flow']!r}.")
    return case


def make_data(case: dict) -> np.ndarray:
    """The batch every library trains and evaluates on: float32, seed 0.

    Vectors: correlated Gaussian-ish `[batch, dim]`; images: smooth-ish random images (a
    Gaussian field averaged with its shift by one row), `[batch, H, W, C]`.
    """
    rng = np.random.default_rng(0)
    batch = case["batch"]
    if case["flow"] == "glow":
        x = rng.standard_normal((batch, *case["image_shape"]))
        x = 0.5 * (x + np.roll(x, 1, axis=1))
    else:
        dim = case["dim"]
        x = rng.standard_normal((batch, dim)) @ rng.standard_normal((dim, dim)) / np.sqrt(dim)
    return x.astype(np.float32)


def matmul_flops(dim: int, hidden: int, batch: int, layers: int, params: int = 2) -> float:
    """Forward matmul FLOPs of `layers` MADEs `D -> H -> H -> params * D` on a batch (dense
    kernels)."""
    per_made = dim * hidden + hidden * hidden + hidden * params * dim
    return 2.0 * batch * per_made * layers


def coupling_flops(dim: int, hidden: int, batch: int, layers: int) -> float:
    """Forward matmul FLOPs of `layers` couplings, MLP `D/2 -> H -> H -> 2 * (D - D/2)`."""
    kept, moved = dim // 2, dim - dim // 2
    per_layer = kept * hidden + hidden * hidden + hidden * 2 * moved
    return 2.0 * batch * per_layer * layers


def glow_flops(image_shape, levels: int, steps: int, filters: int, batch: int) -> float:
    """Forward conv FLOPs of the Glow described in the module docstring.

    Per step on a squeezed `h x w x c` level: the 1x1 convolution `2 h w c^2`, and the coupling
    network `2 h w 9 (c/2) F` + `2 h w 9 F 2 (c - c/2)`, times the batch. ActNorm, the
    elementwise coupling transform and the squeezes are not counted (no multiply-adds of note).
    """
    height, width, channels = image_shape
    total = 0.0
    for _ in range(levels):
        height, width, channels = height // 2, width // 2, channels * 4
        kept, moved = channels // 2, channels - channels // 2
        per_step = channels * channels + 9 * kept * filters + 9 * filters * 2 * moved
        total += 2.0 * height * width * per_step * steps
        channels //= 2  # half factored out (not after the last level: no level follows)
    return total * batch


def flow_flops(case: dict) -> dict:
    """FLOPs per timed call: log_prob (one pass), train step (3x), sample (MAF: D passes)."""
    flow, batch, n = case["flow"], case["batch"], case["sample_n"]
    if flow == "glow":
        sizes = (case["image_shape"], case["levels"], case["steps"], case["filters"])
        one = glow_flops(*sizes, batch)
        return {"log_prob": one, "train_step": 3 * one, "sample": glow_flops(*sizes, n)}
    sizes, layers = (case["dim"], case["hidden"]), case.get("layers", LAYERS)
    if flow == "realnvp":
        fn = coupling_flops
    else:  # a MAF: 2 params per dimension, or a spline's 3 * bins - 1
        params = 3 * case["bins"] - 1 if flow == "nsf" else 2
        fn = functools.partial(matmul_flops, params=params)
    one = fn(*sizes, batch, layers)
    flops = {"log_prob": one, "train_step": 3 * one, "sample": fn(*sizes, n, layers)}
    if flow in ("maf", "nsf"):
        flops["sample"] *= case["dim"]  # D sequential passes per layer
    if flow == "maf":
        flops["iaf_sample"] = fn(*sizes, n, layers)
    return flops
