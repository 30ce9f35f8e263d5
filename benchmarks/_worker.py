"""Benchmark measurements of one library on one or more cases, in a fresh process.

    python benchmarks/_worker.py --lib tfp_flows_xla --case 8,128,256 --case 16,128,512
    python benchmarks/_worker.py --lib tfp_xla --case '{"flow": "glow", "image_shape": [8, 8, 1],
        "levels": 2, "steps": 4, "filters": 64, "batch": 128, "sample_n": 64}'

(`--case`, repeatable: `D,H,BATCH` for a MAF case, or a JSON object with a `"flow"` of `"maf"`,
`"realnvp"` or `"glow"` and its sizes) prints one JSON list (the last line of stdout), one record
per case, with the step, log-prob and sampling times, the first-call (trace/compile) times, the
RSS high-water mark of the process after the case and the float32 matmul peak of the library's
framework measured in the same process. `run.py` launches it once per case, library and
repeat; `measure(...)` is one case in-process (the smoke test uses it).

Every library gets the same architecture, the same float32 data (seed 0), Adam(1e-3), and
2 intra-op / 1 inter-op threads:

* maf: `layers` MADEs with two hidden layers of `hidden` ReLU units, an affine transform, the
  order reversed between layers, a standard-normal base.
* realnvp: `layers` affine couplings on vectors, each an MLP `D/2 -> hidden -> hidden -> 2 * D/2`
  (ReLU) giving the shift and log-scale of the other half, the halves alternating.
* glow: on `[H, W, C]` images, `levels` levels of squeeze, `steps` x (ActNorm, invertible 1x1
  convolution (LU), affine coupling with a sigmoid scale whose conditioner is
  `conv3x3(filters) -> ReLU -> conv3x3(2 * C/2)`, zero-initialised last layer), half the channels
  factored out after each level but the last. Only the TensorFlow libraries have a Glow.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run from a checkout without `pip install -e`
    sys.path.insert(0, _ROOT)

__all__ = [
    "FLOWS",
    "LIBS",
    "TF_LIBS",
    "TORCH_LIBS",
    "flow_flops",
    "matmul_flops",
    "measure",
    "parse_case",
    "supports",
]

TF_LIBS = ("tfp_flows_xla", "tfp_flows_graph", "tfp_xla", "tfp_graph")
TORCH_LIBS = ("zuko_compile", "zuko_eager", "nflows_eager")
LIBS = TF_LIBS + TORCH_LIBS
FLOWS = ("maf", "realnvp", "glow")
PEAK_N = 2048  # the peak is an N x N x N float32 matmul (the smoke test shrinks it)


def matmul_flops(dim: int, hidden: int, batch: int, layers: int) -> float:
    """Forward matmul FLOPs of `layers` MADEs `D -> H -> H -> 2D` on a batch (dense kernels)."""
    per_made = dim * hidden + hidden * hidden + hidden * 2 * dim
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


def flow_flops(cfg: dict) -> dict:
    """FLOPs per timed call: log_prob (one pass), train step (3x), sample (MAF: D passes)."""
    flow, batch, n = cfg["flow"], cfg["batch"], cfg["sample_n"]
    if flow == "glow":
        sizes = (cfg["image_shape"], cfg["levels"], cfg["steps"], cfg["filters"])
        one = glow_flops(*sizes, batch)
        return {"log_prob": one, "train_step": 3 * one, "sample": glow_flops(*sizes, n)}
    fn = matmul_flops if flow == "maf" else coupling_flops
    sizes = (cfg["dim"], cfg["hidden"])
    one = fn(*sizes, batch, cfg["layers"])
    flops = {"log_prob": one, "train_step": 3 * one, "sample": fn(*sizes, n, cfg["layers"])}
    if flow == "maf":
        flops["sample"] *= cfg["dim"]  # D sequential passes per layer
        flops["iaf_sample"] = fn(*sizes, n, cfg["layers"])
    return flops


def supports(lib: str, flow: str) -> bool:
    """Whether `lib` has the flow: zuko and nflows have no Glow."""
    return not (flow == "glow" and lib in TORCH_LIBS)


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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _time(fn: Callable, sync: Callable, min_time: float, blocks: int) -> dict:
    """First call (trace/compile), one warm call that sizes the blocks, then `blocks` blocks."""
    start = time.perf_counter()
    sync(fn())
    first = time.perf_counter() - start
    start = time.perf_counter()
    sync(fn())
    warm = time.perf_counter() - start
    n = max(1, round(min_time / max(warm, 1e-6)))
    per_call = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(n):
            out = fn()
        sync(out)
        per_call.append((time.perf_counter() - start) / n)
    return {
        "median_s": statistics.median(per_call),
        "blocks_s": per_call,
        "calls_per_block": n,
        "first_call_s": first,
    }


# -- TensorFlow libraries ---------------------------------------------------------------------


def _tf_setup(threads: int):
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised (in-process use): keep its settings
        pass
    return tf


def _tf_peak(tf, reps: int, n: int) -> float:
    a = tf.random.stateless_normal([n, n], seed=[0, 1])
    b = tf.random.stateless_normal([n, n], seed=[0, 2])
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def _tfp_builtin_maf(tf, dim, hidden, layers):
    import tensorflow_probability as tfp

    tfb, tfd = tfp.bijectors, tfp.distributions
    bijectors = []
    for i in range(layers):
        net = tfb.AutoregressiveNetwork(
            params=2, hidden_units=[hidden, hidden], activation="relu", event_shape=[dim]
        )
        bijectors.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=net))
        if i < layers - 1:
            bijectors.append(tfb.Permute(list(range(dim))[::-1]))
    return tfd.TransformedDistribution(_tf_base(tf, [dim]), tfb.Chain(bijectors))


def _tf_base(tf, shape):
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    return tfd.Sample(tfd.Normal(tf.constant(0.0), tf.constant(1.0)), sample_shape=shape)


def _tf_mlp_module(tf):
    class MLP(tf.Module):
        """A TF2 (Keras-free) MLP `x -> (shift, log_scale)`: TFP RealNVP's conditioner."""

        def __init__(self, d_in, hidden, d_out, seed, name=None):
            super().__init__(name=name)
            sizes = [d_in, hidden, hidden, 2 * d_out]
            self.kernels, self.biases = [], []
            for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
                last = i == len(sizes) - 2
                limit = (6.0 / (fan_in + fan_out)) ** 0.5  # Glorot uniform, last layer zero
                init = tf.random.stateless_uniform([fan_in, fan_out], [seed, i], -limit, limit) * (
                    0.0 if last else 1.0
                )
                self.kernels.append(tf.Variable(init, name=f"kernel_{i}"))
                self.biases.append(tf.Variable(tf.zeros([fan_out]), name=f"bias_{i}"))

        def __call__(self, x, output_units, **kwargs):
            h = x
            for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
                h = tf.matmul(h, kernel) + bias
                if i < len(self.kernels) - 1:
                    h = tf.nn.relu(h)
            return h[..., :output_units], h[..., output_units:]

    return MLP


def _tfp_builtin_real_nvp(tf, dim, hidden, layers):
    import tensorflow_probability as tfp

    tfb, tfd = tfp.bijectors, tfp.distributions
    mlp = _tf_mlp_module(tf)
    kept = dim // 2
    bijectors = []
    for i in range(layers):
        net = mlp(kept, hidden, dim - kept, seed=i, name=f"mlp_{i}")
        bijectors.append(tfb.RealNVP(num_masked=kept, shift_and_log_scale_fn=net))
        if i < layers - 1:  # reversing swaps the halves (D even) so the other half moves next
            bijectors.append(tfb.Permute(list(range(dim))[::-1]))
    return tfd.TransformedDistribution(_tf_base(tf, [dim]), tfb.Chain(bijectors))


def _tfp_builtin_glow(tf, image_shape, levels, steps, filters):
    import tensorflow_probability as tfp
    from tensorflow_probability.python.internal import tf_keras

    tfb, tfd = tfp.bijectors, tfp.distributions
    layers = tf_keras.layers

    def coupling_net(input_shape):  # the same network as tfp_flows' ConvConditioner(blocks=0)
        return tf_keras.Sequential(
            [
                layers.Input(shape=input_shape),
                layers.Conv2D(
                    filters, 3, padding="same", activation="relu", kernel_initializer="he_normal"
                ),
                layers.Conv2D(2 * (input_shape[-1]), 3, padding="same", kernel_initializer="zeros"),
            ]
        )

    glow = tfb.Glow(
        output_shape=list(image_shape),
        num_glow_blocks=levels,
        num_steps_per_block=steps,
        coupling_bijector_fn=coupling_net,
        exit_bijector_fn=tfb.GlowDefaultExitNetwork,  # TFP's default (one zero-init conv3x3)
        seed=0,
    )
    size = int(image_shape[0] * image_shape[1] * image_shape[2])
    return tfd.TransformedDistribution(_tf_base(tf, [size]), glow)


def _tf_models(tf, lib, cfg):
    """(distribution, IAF distribution or None, how the log-scale is parameterised)."""
    from tfp_flows import flows

    flow, layers = cfg["flow"], cfg.get("layers")
    ours = lib.startswith("tfp_flows")
    if flow == "maf":
        dim, hidden = cfg["dim"], cfg["hidden"]
        if ours:
            dist = flows.maf(dim, num_layers=layers, hidden_units=(hidden, hidden))
            iaf = flows.iaf(dim, num_layers=layers, hidden_units=(hidden, hidden))
            return dist, iaf, "tanh soft clamp at 3.0 (flows.maf default)"
        return _tfp_builtin_maf(tf, dim, hidden, layers), None, "unclamped exp (TFP default)"
    if flow == "realnvp":
        dim, hidden = cfg["dim"], cfg["hidden"]
        if ours:
            dist = flows.real_nvp(
                [dim], num_layers=layers, hidden_units=(hidden, hidden), normalization=None
            )
            return dist, None, "exp of a tanh soft clamp at 3.0 (flows.real_nvp default)"
        dist = _tfp_builtin_real_nvp(tf, dim, hidden, layers)
        return dist, None, "unclamped exp (TFP RealNVP default)"
    shape, levels, steps, filters = (cfg[k] for k in ("image_shape", "levels", "steps", "filters"))
    if ours:
        dist = flows.glow(
            shape,
            levels=levels,
            steps_per_level=steps,
            filters=filters,
            num_blocks=0,
            coupling="affine",
        )
        return dist, None, "sigmoid scale (flows.glow coupling='affine')"
    dist = _tfp_builtin_glow(tf, shape, levels, steps, filters)
    return dist, None, "sigmoid(s + 2) scale (TFP Glow)"


def _run_tf(lib, cfg, x_np, min_time, blocks):
    tf = _tf_setup(cfg["threads"])
    import keras
    import tensorflow_probability as tfp

    rss_import = _rss_mb()
    n_samples = cfg["sample_n"]
    jit = lib.endswith("_xla")
    tf.random.set_seed(0)
    dist, iaf, log_scale = _tf_models(tf, lib, cfg)
    x = tf.constant(x_np)
    dist.log_prob(x)  # builds lazily built networks; initialises ActNorm from the data
    variables = list(dist.trainable_variables)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)

    def step(x):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(x))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    compiled = tf.function(jit_compile=jit)
    step_fn = compiled(step)
    log_prob_fn = compiled(lambda x: dist.log_prob(x))
    seed = tf.constant([3, 4], tf.int32)
    sample_fn = compiled(lambda seed: dist.sample(n_samples, seed=seed))

    def sync(out):
        return tf.nest.map_structure(lambda t: t.numpy(), out)

    result = {
        "train_step": _time(lambda: step_fn(x), sync, min_time, blocks),
        "log_prob": _time(lambda: log_prob_fn(x), sync, min_time, blocks),
        "sample": _time(lambda: sample_fn(seed), sync, min_time, blocks),
    }
    if iaf is not None:
        iaf_fn = compiled(lambda seed: iaf.sample(n_samples, seed=seed))
        result["iaf_sample"] = _time(lambda: iaf_fn(seed), sync, min_time, blocks)
    result["num_params"] = int(sum(v.shape.num_elements() for v in variables))
    result["rss_after_import_mb"] = rss_import
    result["rss_peak_mb"] = _rss_mb()
    result["peak_flops"] = _tf_peak(tf, cfg["peak_reps"], cfg["peak_n"])
    result["versions"] = {
        "tensorflow": tf.__version__,
        "tensorflow_probability": tfp.__version__,
        "keras": keras.__version__,
    }
    result["settings"] = {
        "jit_compile": jit,
        "tf_function": True,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "optimizer": "keras.optimizers.Adam(1e-3)",
        "log_scale": log_scale,
    }
    return result


# -- PyTorch libraries -------------------------------------------------------------------------


def _torch_setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set or parallel work started (in-process use)
        pass
    return torch


def _torch_peak(torch, reps: int, n: int) -> float:
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


def _nflows_maf(dim, hidden, layers):
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
        # num_blocks=1 feed-forward block: D -> H (ReLU) -> H (ReLU) -> 2D, as the others.
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


def _nflows_real_nvp(dim, hidden, layers):
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


def _run_torch(lib, cfg, x_np, min_time, blocks):
    torch = _torch_setup(cfg["threads"])
    dim, hidden, layers, n_samples = cfg["dim"], cfg["hidden"], cfg["layers"], cfg["sample_n"]
    maf = cfg["flow"] == "maf"
    rss_import = _rss_mb()
    torch.manual_seed(0)
    x = torch.from_numpy(x_np)
    if lib.startswith("zuko"):
        import zuko

        cls = zuko.flows.MAF if maf else zuko.flows.RealNVP
        flow = cls(features=dim, transforms=layers, hidden_features=(hidden, hidden))

        def log_prob(x):
            return flow().log_prob(x)

        def sample():
            return flow().sample((n_samples,))

        versions = {"torch": torch.__version__, "zuko": zuko.__version__}
        log_scale = "soft clamp s / (1 + |s / log 1e-3|) (zuko default)"
    else:
        from importlib.metadata import version

        build = _nflows_maf if maf else _nflows_real_nvp
        flow = build(dim, hidden, layers)
        log_prob = flow.log_prob

        def sample():
            return flow.sample(n_samples)

        versions = {"torch": torch.__version__, "nflows": version("nflows")}
        log_scale = (
            "softplus scale + 1e-3 (nflows default)"
            if maf
            else "sigmoid(s + 2) + 1e-3 scale (nflows default)"
        )

    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)

    def loss_fn(x):
        return -log_prob(x).mean()

    def opt_step():
        optimizer.step()

    sample_mode = "eager"
    if lib.endswith("_compile"):
        # The documented recipe: compile the loss (forward and, through AOTAutograd, backward)
        # and the optimizer step; backward() itself stays a call into the compiled graph.
        loss_fn = torch.compile(loss_fn)
        opt_step = torch.compile(opt_step)
        log_prob = torch.compile(log_prob)
        if cfg["compile_sample"]:
            sample = torch.compile(sample)
            sample_mode = "torch.compile"

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        opt_step()
        return loss

    def no_grad(fn):
        def wrapped():
            with torch.no_grad():
                return fn()

        return wrapped

    def sync(out):
        return out.detach()

    result = {
        "train_step": _time(step, sync, min_time, blocks),
        "log_prob": _time(no_grad(lambda: log_prob(x)), sync, min_time, blocks),
        "sample": _time(no_grad(sample), sync, min_time, blocks),
    }
    result["num_params"] = int(sum(p.numel() for p in flow.parameters()))
    result["rss_after_import_mb"] = rss_import
    result["rss_peak_mb"] = _rss_mb()
    result["peak_flops"] = _torch_peak(torch, cfg["peak_reps"], cfg["peak_n"])
    result["versions"] = versions
    result["settings"] = {
        "torch_compile": lib.endswith("_compile"),
        "sample_mode": sample_mode if lib.endswith("_compile") else "eager",
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "optimizer": "torch.optim.Adam(lr=1e-3)",
        "log_scale": log_scale,
    }
    return result


# -- entry points -----------------------------------------------------------------------------


def measure(
    lib: str,
    *,
    batch: int,
    flow: str = "maf",
    dim: int | None = None,
    hidden: int | None = None,
    layers: int = 5,
    image_shape=None,
    levels: int | None = None,
    steps: int | None = None,
    filters: int | None = None,
    sample_n: int = 512,
    threads: int = 2,
    min_time: float = 0.25,
    blocks: int = 5,
    peak_reps: int = 5,
    peak_n: int = PEAK_N,
    compile_sample: bool = False,
) -> dict:
    """Measures one library on one case in this process; returns the JSON-ready record.

    Vector flows (`flow="maf"` or `"realnvp"`) take `dim`, `hidden` and `layers`; `"glow"`
    takes `image_shape`, `levels`, `steps` and `filters`.
    """
    if lib not in LIBS:
        raise ValueError(f"`lib` must be one of {LIBS}; got {lib!r}.")
    if flow not in FLOWS:
        raise ValueError(f"`flow` must be one of {FLOWS}; got {flow!r}.")
    if not supports(lib, flow):
        raise ValueError(f"{lib} has no {flow}.")
    import numpy as np

    cfg = dict(
        lib=lib,
        flow=flow,
        batch=batch,
        sample_n=sample_n,
        threads=threads,
        min_time=min_time,
        blocks=blocks,
        peak_reps=peak_reps,
        peak_n=peak_n,
        compile_sample=compile_sample,
    )
    rng = np.random.default_rng(0)
    if flow == "glow":
        image_shape = [int(v) for v in image_shape]
        cfg.update(image_shape=image_shape, levels=levels, steps=steps, filters=filters)
        # The same data for every library: smooth-ish random images (a blurred Gaussian field).
        x_np = rng.standard_normal((batch, *image_shape))
        x_np = 0.5 * (x_np + np.roll(x_np, 1, axis=1))
    else:
        cfg.update(dim=dim, hidden=hidden, layers=layers)
        # The same data for every library: correlated Gaussian-ish vectors.
        x_np = rng.standard_normal((batch, dim)) @ rng.standard_normal((dim, dim)) / np.sqrt(dim)
    x_np = x_np.astype(np.float32)
    load_before = os.getloadavg()
    start = time.perf_counter()
    runner = _run_tf if lib in TF_LIBS else _run_torch
    result = runner(lib, cfg, x_np, min_time, blocks)
    result["config"] = cfg
    result["flops"] = flow_flops(cfg)
    result["worker_wall_s"] = time.perf_counter() - start
    result["loadavg_1min"] = [load_before[0], os.getloadavg()[0]]
    result["env"] = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    result["python"] = platform.python_version()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True, choices=LIBS)
    parser.add_argument(
        "--case",
        action="append",
        required=True,
        help="D,H,BATCH (a MAF case) or a JSON object with 'flow' and its sizes (repeatable)",
    )
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--sample-n", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=0.25, help="seconds per timing block")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--peak-reps", type=int, default=5)
    parser.add_argument("--peak-n", type=int, default=PEAK_N, help="size of the peak matmul")
    parser.add_argument(
        "--compile-sample",
        action="store_true",
        help="torch.compile zuko's D-pass sampling too (unrolls D x layers MADE calls: minutes)",
    )
    args = parser.parse_args(argv)
    # Before the frameworks load: their thread pools read these.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    # OpenMP's spin-waiting turns a 10 ms torch step into 200 ms when another process holds a
    # core (a shared machine): passive waiting keeps torch's timings meaningful there.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    results = []
    for text in args.case:
        case = {"layers": args.layers, "sample_n": args.sample_n, **parse_case(text)}
        results.append(
            measure(
                args.lib,
                threads=args.threads,
                min_time=args.min_time,
                blocks=args.blocks,
                peak_reps=args.peak_reps,
                peak_n=args.peak_n,
                compile_sample=args.compile_sample,
                **case,
            )
        )
    sys.stdout.write("\n" + json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
