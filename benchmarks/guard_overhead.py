"""What the in-step non-finite guard costs: the training step with it vs without it.

    python benchmarks/guard_overhead.py                 # MAF cases C, A; Real NVP; XLA and graph
    python benchmarks/guard_overhead.py --rounds 5

Since the guard (loss, gradients and weights checked, the update applied under `tf.cond`, skips
counted) landed, every `DensityModel.fit` step carries it. Both models here are built from the
same weights and run Keras' own compiled train function on the same batches in one process,
timed in alternating rounds (`backends.timing.alternating_rounds`, as `paired_tf.py`), so
machine drift hits both alike. The figure is the median over rounds of the per-round ratio
guarded / unguarded (1.00: free). The sizes are `run.py`'s cases C, A and R (R with 8 couplings).
Writes `benchmarks/guard_overhead.md` and `.json`.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from backends._tf import load_tf  # noqa: E402
from backends.cases import CASES as BENCH_CASES  # noqa: E402
from backends.cases import LAYERS  # noqa: E402
from backends.timing import alternating_rounds  # noqa: E402
from run import machine_info, write_report  # noqa: E402

REAL_NVP_LAYERS = 8  # more couplings than run.py's case R (5): more guarded variables


def _case(name: str, layers: int = LAYERS) -> tuple[str, tuple[str, dict, int]]:
    """Row name -> (DensityModel factory, its kwargs, batch) of `run.py`'s case `name`."""
    c = BENCH_CASES[name]
    hidden = [c["hidden"], c["hidden"]]
    if c["flow"] == "maf":
        kwargs = {"dim": c["dim"], "num_layers": layers, "hidden_units": hidden}
        return f"MAF {name} (D={c['dim']}, H={c['hidden']})", ("maf", kwargs, c["batch"])
    kwargs = {"event_shape": [c["dim"]], "num_layers": layers, "hidden_units": hidden}
    return f"Real NVP (D={c['dim']}, {layers} layers)", ("real_nvp", kwargs, c["batch"])


CASES = dict([_case("C"), _case("A"), _case("R", layers=REAL_NVP_LAYERS)])


def _models(tf, keras, factory, kwargs, jit):
    from tfp_flows.keras import DensityModel

    class Unguarded(DensityModel):
        """The step as it was before the guard: the update is applied unconditionally."""

        def train_step(self, data):
            x, c, w = self._unpack(data)
            with tf.GradientTape() as tape:
                total, weight = self._weighted_nll(x, c, w)
                loss = total / weight
            variables = self.trainable_variables
            self.optimizer.apply(tape.gradient(loss, [v.value for v in variables]), variables)
            return self._update_metrics(loss, weight)

    models = {}
    for name, cls in (("guarded", DensityModel), ("unguarded", Unguarded)):
        keras.utils.set_random_seed(0)
        model = cls(factory, dict(kwargs))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
        model.optimizer.build(model.trainable_variables)
        model.make_train_function()
        models[name] = model
    return models


def run_case(tf, keras, name, factory, kwargs, batch, jit, rounds, min_time):
    import numpy as np

    dim = kwargs.get("dim") or kwargs["event_shape"][0]
    x = np.random.default_rng(0).normal(size=[batch * 8, dim]).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True).repeat()
    models = _models(tf, keras, factory, kwargs, jit)
    fns = {k: functools.partial(m.train_function, iter(data)) for k, m in models.items()}
    times, n = alternating_rounds(
        fns,
        lambda logs: float(logs["nll"]),
        rounds=rounds,
        min_time=min_time,
        warmup=3,
        min_calls=3,
    )
    ratios = [g / u for g, u in zip(times["guarded"], times["unguarded"])]
    return {
        "case": name,
        "jit_compile": jit,
        "guarded_ms": 1e3 * statistics.median(times["guarded"]),
        "unguarded_ms": 1e3 * statistics.median(times["unguarded"]),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "calls_per_block": n,
    }


def render(results, meta) -> str:
    lines = [
        "# The in-step non-finite guard's cost (DensityModel training step)",
        "",
        f"Command: `python benchmarks/guard_overhead.py {meta['args']}` ({meta['minutes']:.1f} "
        f"min). Machine: {meta['machine']}.",
        "",
        "Keras' compiled train function of `DensityModel` (loss, gradients and weights checked, "
        "update under `tf.cond`, skips counted) against the same model with the update applied "
        "unconditionally, same weights and batches, one process, alternating rounds. Ratio = "
        "guarded / unguarded time per step, median (min-max) over rounds; 1.00 means free.",
        "",
        "| case | compiled | guarded | unguarded | ratio |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {'XLA' if r['jit_compile'] else 'graph'} | "
            f"{r['guarded_ms']:.2f} ms | {r['unguarded_ms']:.2f} ms | **{r['ratio']:.3f}** "
            f"({r['ratio_min']:.3f}-{r['ratio_max']:.3f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per block")
    parser.add_argument("--out", default=os.path.join(HERE, "guard_overhead"), help="path stem")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = load_tf(2)
    import keras

    start = time.perf_counter()
    results = [
        run_case(tf, keras, name, *spec, jit, args.rounds, args.min_time)
        for name, spec in CASES.items()
        for jit in (True, False)
    ]
    info = machine_info([{"versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}])
    meta = {
        "args": " ".join(argv if argv is not None else sys.argv[1:]),
        "minutes": (time.perf_counter() - start) / 60,
        "machine": (
            f"{info.get('Model name', '?')}, {info['nproc']} CPUs, flags {info.get('Flags', '?')}; "
            f"TF {tf.__version__}, Keras {keras.__version__}; 2 intra-op, 1 inter-op threads; "
            f"1-minute load average at the end {os.getloadavg()[0]:.1f}"
        ),
    }
    write_report(args.out, {"meta": meta, "results": results}, render(results, meta))


if __name__ == "__main__":
    main()
