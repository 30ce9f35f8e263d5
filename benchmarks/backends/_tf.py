"""What the TensorFlow backends share: threads, the compiled calls, the matmul peak."""

from __future__ import annotations

import abc
import time
from typing import Any

import numpy as np

from .base import Runner

__all__ = ["TFRunner", "load_tf", "standard_normal", "tf_peak"]


def load_tf(threads: int):
    """Imports TensorFlow with `threads` intra-op and 1 inter-op threads (if not yet running)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised (in-process use): keep its settings
        pass
    return tf


def tf_peak(tf, reps: int, n: int) -> float:
    """Float32 FLOP/s of TF's `n x n x n` matmul, best of `reps` after one warm-up."""
    a = tf.random.stateless_normal([n, n], seed=[0, 1])
    b = tf.random.stateless_normal([n, n], seed=[0, 2])
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def standard_normal(tf, shape):
    """A standard-normal base of event shape `shape` (TFP's `Sample(Normal)`)."""
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    return tfd.Sample(tfd.Normal(tf.constant(0.0), tf.constant(1.0)), sample_shape=shape)


class TFRunner(Runner):
    """A TFP distribution timed under `tf.function`: mode `"xla"` (jit_compile) or `"graph"`.

    A backend implements `build()` only: the distribution, an IAF to sample from (or None) and a
    note on how its log-scale is parameterised.
    """

    framework = "tf"
    modes = ("xla", "graph")

    def __init__(self, case: dict, mode: str, **kwargs) -> None:
        super().__init__(case, mode, **kwargs)
        self.tf = load_tf(self.threads)
        import keras  # noqa: F401  (loaded now: counted with the framework's memory)
        import tensorflow_probability  # noqa: F401

    @abc.abstractmethod
    def build(self) -> tuple[Any, Any, str]:
        """(distribution, IAF distribution or None, how the log-scale is parameterised)."""

    def setup(self, x: np.ndarray | None = None) -> None:
        import keras
        import tensorflow_probability as tfp

        tf = self.tf
        tf.random.set_seed(0)
        dist, iaf, log_scale = self.build()
        self.dist, self.x = dist, tf.constant(self.data(x))
        dist.log_prob(self.x)  # builds lazily built networks; initialises ActNorm from the data
        variables = list(dist.trainable_variables)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(variables)

        def step(x):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(dist.log_prob(x))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        n = self.case["sample_n"]
        compiled = tf.function(jit_compile=self.mode == "xla")
        self._step = compiled(step)
        self._log_prob = compiled(lambda x: dist.log_prob(x))
        self._sample = compiled(lambda seed: dist.sample(n, seed=seed))
        self._seed = tf.constant([3, 4], tf.int32)
        self.has_iaf = iaf is not None
        if self.has_iaf:
            self._iaf_sample = compiled(lambda seed: iaf.sample(n, seed=seed))
        self.num_params = int(sum(v.shape.num_elements() for v in variables))
        self.versions = {
            "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__,
            "keras": keras.__version__,
        }
        self.settings = {
            "jit_compile": self.mode == "xla",
            "tf_function": True,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "optimizer": "keras.optimizers.Adam(1e-3)",
            "log_scale": log_scale,
        }

    def train_step(self):
        return self._step(self.x)

    def log_prob(self):
        return self._log_prob(self.x)

    def sample(self):
        return self._sample(self._seed)

    def iaf_sample(self):
        if not self.has_iaf:
            return super().iaf_sample()
        return self._iaf_sample(self._seed)

    def sync(self, out):
        return self.tf.nest.map_structure(lambda t: t.numpy(), out)

    def peak_flops(self, reps: int, n: int) -> float:
        return tf_peak(self.tf, reps, n)
