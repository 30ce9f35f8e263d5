"""Where a tfp_flows MAF training step spends its time: ablations of one case (default B).

    python benchmarks/profile_step.py [--dim 64 --hidden 512 --batch 512] [--torch]

Times, each as tf.function(jit_compile=True) and as plain tf.function (2 intra-op threads):
  step        the benchmark's step: dist.log_prob, gradient, Keras Adam update
  fwd_bwd     loss and gradients, no optimizer
  log_prob    the loss alone
  adam        the Adam update alone, with fixed gradients
  bare_*      the same 5 MADEs written as raw matmuls on pre-masked kernels (no TFP, no Keras,
              no mask multiply, no soft clamp): the floor for this architecture in TF
  matmuls     only the 15 dense matmuls of the forward pass (and x3 for the step)
  rng_default 512 x D standard normals, `tf.random.stateless_normal` with TF's default algorithm
              (what `tfd.Normal` draws with; under XLA on CPU a slow generic expansion)
  rng_philox  the same with `alg="philox"` (what the flows' base distribution draws with)
  iaf_sample  512 samples of `flows.iaf` with the same sizes (one pass per layer)
With `--torch`, also the bare MADEs in torch (eager and torch.compile) for the BLAS comparison.

    python benchmarks/profile_step.py --dim 16 --hidden 128 --rng-ab

`--rng-ab` instead runs an interleaved A/B in one process (calls alternate A B A B, so a loaded
machine slows both alike), all under jit_compile=True: 512 IAF samples with the flows' Philox
base against the same flow on a plain `tfd.Normal` base, and the raw draws of both algorithms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from backends._tf import load_tf  # noqa: E402
from backends.cases import CASES, LAYERS  # noqa: E402
from backends.timing import time_call  # noqa: E402


def timeit(fn, sync, reps=5, min_time=0.3):
    """Median seconds per call over `reps` blocks of about `min_time` (after trace/compile)."""
    return time_call(fn, sync, min_time, reps)["median_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    case = CASES["B"]
    parser.add_argument("--dim", type=int, default=case["dim"])
    parser.add_argument("--hidden", type=int, default=case["hidden"])
    parser.add_argument("--batch", type=int, default=case["batch"])
    parser.add_argument("--torch", action="store_true")
    parser.add_argument("--rng-ab", action="store_true")
    args = parser.parse_args()
    d, h, b, k = args.dim, args.hidden, args.batch, LAYERS

    tf = load_tf(2)
    import keras
    import numpy as np

    from tfp_flows import flows

    if args.rng_ab:
        rng_ab(tf, flows, d, h, k)
        return
    x = tf.constant(np.random.default_rng(0).standard_normal((b, d)).astype(np.float32))
    dist = flows.maf(d, num_layers=k, hidden_units=(h, h))
    variables = list(dist.trainable_variables)
    opt = keras.optimizers.Adam(1e-3)
    opt.build(variables)
    grads0 = [tf.ones_like(v) * 1e-3 for v in variables]
    made_layers = [b.conditioner for b in dist.bijector.bijectors if hasattr(b, "conditioner")]
    assert len(made_layers) == k
    masked = [
        [tf.Variable(kern * mask) for kern, mask in zip(m._kernels, m._kernel_masks)]
        for m in made_layers
    ]
    biases = [[tf.Variable(bias.value) for bias in m._biases] for m in made_layers]
    bare_vars = [v for layer in masked + biases for v in layer]
    flops = 2.0 * b * (d * h + h * h + h * 2 * d) * k

    def loss_fn(x):
        return -tf.reduce_mean(dist.log_prob(x))

    def fwd_bwd(x):
        with tf.GradientTape() as tape:
            loss = loss_fn(x)
        return tape.gradient(loss, variables)

    def step(x):
        grads = fwd_bwd(x)
        opt.apply_gradients(zip(grads, variables))
        return grads[0]

    def adam():
        opt.apply_gradients(zip(grads0, variables))
        return variables[0]

    def bare_loss(x):
        z, logdet = x, 0.0
        for kernels, bs in zip(masked, biases):
            hcur = tf.nn.relu(z @ kernels[0] + bs[0])
            hcur = tf.nn.relu(hcur @ kernels[1] + bs[1])
            params = tf.reshape(hcur @ kernels[2] + bs[2], [-1, d, 2])
            shift, log_scale = params[..., 0], params[..., 1]
            z = ((z - shift) * tf.exp(-log_scale))[:, ::-1]
            logdet += -tf.reduce_sum(log_scale, -1)
        return -tf.reduce_mean(-0.5 * tf.reduce_sum(z**2, -1) + logdet)

    def bare_fwd_bwd(x):
        with tf.GradientTape() as tape:
            loss = bare_loss(x)
        return tape.gradient(loss, bare_vars)

    def matmuls(x):
        hcur = tf.tile(x, [1, 1])
        out = 0.0
        for kernels in masked:
            h1 = hcur @ kernels[0]
            h2 = h1 @ kernels[1]
            out += tf.reduce_sum(h2 @ kernels[2])
        return out

    iaf = flows.iaf(d, num_layers=k, hidden_units=(h, h))
    seed = tf.constant([3, 4])

    def rng_default(seed):
        return tf.random.stateless_normal([512, d], seed)

    def rng_philox(seed):
        return tf.random.stateless_normal([512, d], seed, alg="philox")

    def iaf_sample(seed):
        return iaf.sample(512, seed=seed)

    def sync(r):
        return tf.nest.map_structure(lambda t: t.numpy(), r)

    print(f"case D={d} H={h} batch={b}; forward matmul FLOPs {flops / 1e9:.2f} GFLOP")
    for jit in (True, False):
        fns = {
            "step": step,
            "fwd_bwd": fwd_bwd,
            "log_prob": loss_fn,
            "adam": adam,
            "bare_fwd_bwd": bare_fwd_bwd,
            "bare_loss": bare_loss,
            "matmuls": matmuls,
            "rng_default": rng_default,
            "rng_philox": rng_philox,
            "iaf_sample": iaf_sample,
        }
        rows = {}
        for name, f in fns.items():
            compiled = tf.function(f, jit_compile=jit)
            seeded = name.startswith(("rng", "iaf"))
            call_args = () if name == "adam" else (seed,) if seeded else (x,)
            rows[name] = timeit(lambda c=compiled, a=call_args: c(*a), sync)
        print(f"-- TF {'jit_compile=True' if jit else 'tf.function'}")
        for name, sec in rows.items():
            work = flops * (3 if "bwd" in name or name == "step" else 1)
            if name == "iaf_sample":
                work = 2.0 * 512 * (d * h + h * h + h * 2 * d) * k
            plain = name == "adam" or name.startswith("rng")
            extra = "" if plain else f"  {work / sec / 1e9:6.1f} GFLOP/s"
            print(f"   {name:14s} {sec * 1e3:8.2f} ms{extra}")

    if args.torch:
        import torch

        torch.set_num_threads(2)
        tx = torch.from_numpy(x.numpy())
        tk = [[torch.tensor(v.numpy(), requires_grad=True) for v in layer] for layer in masked]
        tb = [[torch.tensor(v.numpy(), requires_grad=True) for v in layer] for layer in biases]

        def t_loss(x):
            z, logdet = x, 0.0
            for kernels, bs in zip(tk, tb):
                hcur = torch.relu(z @ kernels[0] + bs[0])
                hcur = torch.relu(hcur @ kernels[1] + bs[1])
                params = (hcur @ kernels[2] + bs[2]).reshape(-1, d, 2)
                shift, log_scale = params[..., 0], params[..., 1]
                z = ((z - shift) * torch.exp(-log_scale)).flip(-1)
                logdet = logdet - log_scale.sum(-1)
            return -(-0.5 * (z**2).sum(-1) + logdet).mean()

        def t_fwd_bwd(loss_fn):
            def run():
                loss = loss_fn(tx)
                loss.backward()
                return loss

            return run

        compiled = torch.compile(t_loss)
        print("-- torch (bare MADEs, same kernels)")
        for name, fn in (("eager", t_loss), ("compile", compiled)):
            sec = timeit(t_fwd_bwd(fn), lambda r: r.detach())
            rate = 3 * flops / sec / 1e9
            print(f"   bare_fwd_bwd {name:8s} {sec * 1e3:8.2f} ms  {rate:6.1f} GFLOP/s")
            with torch.no_grad():
                sec = timeit(lambda fn=fn: fn(tx), lambda r: r)
            print(
                f"   bare_loss    {name:8s} {sec * 1e3:8.2f} ms  {flops / sec / 1e9:6.1f} GFLOP/s"
            )


def rng_ab(tf, flows, d, h, k, blocks=15, calls=5):
    """Interleaved A/B of the base noise: Philox (the flows' base) vs TF's default algorithm."""
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    iaf = flows.iaf(d, num_layers=k, hidden_units=(h, h))
    plain = tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(0.0, 1.0), sample_shape=[d]), iaf.bijector
    )
    seed = tf.constant([3, 4])
    fns = {
        "iaf_sample_philox_base": lambda s: iaf.sample(512, seed=s),
        "iaf_sample_default_base": lambda s: plain.sample(512, seed=s),
        "rng_philox": lambda s: tf.random.stateless_normal([512, d], s, alg="philox"),
        "rng_default": lambda s: tf.random.stateless_normal([512, d], s),
    }
    compiled = {name: tf.function(fn, jit_compile=True) for name, fn in fns.items()}
    for fn in compiled.values():
        fn(seed).numpy()
        fn(seed).numpy()
    times: dict = {name: [] for name in compiled}
    for _ in range(blocks):
        for name, fn in compiled.items():  # A B A B ...
            start = time.perf_counter()
            for _ in range(calls):
                out = fn(seed)
            out.numpy()
            times[name].append((time.perf_counter() - start) / calls)
    print(f"interleaved A/B, D={d} H={h}, {blocks} blocks of {calls} calls, jit_compile=True")
    for name, values in times.items():
        print(
            f"   {name:24s} median {statistics.median(values) * 1e3:7.2f} ms  "
            f"min {min(values) * 1e3:7.2f} ms"
        )


if __name__ == "__main__":
    main()
