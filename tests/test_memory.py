"""A dropped model frees its compiled steps: nothing global keeps its graphs or weights alive.

TF's gradient registry (a graph-mode custom gradient per traced training step, from Keras'
optimizer) and TFP's bijector cache would keep every traced step graph, and with it the flow and
its variables, for the life of the process (issue 13: 20 toy models in one process reached
3.8 GB). `tfp_flows.train.traces` releases them after `fit`, `evaluate` and `predict`.
"""

import gc
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import ops

from tfp_flows.keras import DensityModel, VariationalModel

X = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")


def _density(flow):
    kwargs = {"maf": {"dim": 2}, "real_nvp": {"event_shape": [2]}}[flow]
    model = DensityModel(flow, {**kwargs, "num_layers": 2, "hidden_units": [8]})
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    model.fit(X, batch_size=32, epochs=1, verbose=0)
    model.evaluate(X, batch_size=32, verbose=0)
    model.predict(X, batch_size=32, verbose=0)
    return model


def _variational(flow):
    kwargs = {"iaf": {"dim": 2}, "real_nvp": {"event_shape": [2], "normalization": None}}[flow]
    model = VariationalModel(
        flow,
        {**kwargs, "num_layers": 2, "hidden_units": [8]},
        target_log_prob_fn=lambda z: -0.5 * tf.reduce_sum(z**2, -1),
        num_samples=16,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    model.fit(steps_per_epoch=2, epochs=1, verbose=0)
    nothing = tf.data.Dataset.from_tensors(tf.zeros([1])).repeat()  # it takes no data
    model.evaluate(nothing, steps=1, verbose=0)
    return model


CASES = {
    "density-maf": lambda: _density("maf"),
    "density-real_nvp": lambda: _density("real_nvp"),
    "variational-iaf": lambda: _variational("iaf"),
    "variational-real_nvp": lambda: _variational("real_nvp"),
}


@pytest.mark.parametrize("build", CASES.values(), ids=CASES.keys())
def test_a_dropped_model_frees_its_flow_and_steps(build):
    registered = len(ops.gradient_registry._registry)
    refs = []
    for _ in range(2):
        model = build()
        refs += [weakref.ref(model), weakref.ref(model.flow)]
        refs += [weakref.ref(v) for v in model.trainable_variables[:2]]
        del model
        gc.collect()
    alive = [type(r()).__name__ for r in refs if r() is not None]
    assert not alive, f"still alive after the model was dropped: {alive}"
    assert len(ops.gradient_registry._registry) == registered, "gradient registry grew"


def test_a_released_model_trains_and_evaluates_on():
    model = _density("maf")
    before = [v.numpy() for v in model.trainable_variables]
    history = model.fit(X, batch_size=32, epochs=2, verbose=0)  # the same (released) step
    assert np.isfinite(history.history["nll"]).all()
    assert any(not np.allclose(a, v.numpy()) for a, v in zip(before, model.trainable_variables))
    assert np.isfinite(model.evaluate(X, batch_size=32, verbose=0, return_dict=True)["nll"])


def _minimize_once(jit_compile) -> list:
    """Trains a small flow with `train.minimize`; returns weak references to it."""
    from tfp_flows import flows, losses, train

    flow = flows.real_nvp([2], num_layers=2, hidden_units=[8], normalization=None)
    data = tf.constant(X)
    result = train.minimize(
        lambda: losses.forward_kl(flow, data),
        flow.trainable_variables,
        num_steps=5,
        jit_compile=jit_compile,
    )
    assert result.steps == 5 and np.isfinite(result.losses).all()
    return [weakref.ref(flow)] + [weakref.ref(v) for v in flow.trainable_variables[:2]]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_finished_minimize_run_lets_its_flow_go(jit_compile):
    registered = len(ops.gradient_registry._registry)
    refs = _minimize_once(jit_compile) + _minimize_once(jit_compile)
    gc.collect()
    alive = [type(r()).__name__ for r in refs if r() is not None]
    assert not alive, f"still alive after the run: {alive}"
    assert len(ops.gradient_registry._registry) == registered, "gradient registry grew"
