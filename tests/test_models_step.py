"""The models' step as callbacks see it: its logs (no `val_skipped_steps`) and its record
(`record_steps` / `step_record`, the hook `StopOnNonFinite` reads instead of patching the model).
"""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_flows
from tfp_flows.models import DensityModel, VariationalModel

SMALL = {"event_shape": [2], "num_layers": 2, "hidden_units": [8]}


def _density(jit_compile=False, steps_per_execution=1, **kwargs):
    model = DensityModel("real_nvp", dict(SMALL, **kwargs.pop("flow", {})), **kwargs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


class _Records(keras.callbacks.Callback):
    """The model's `step_record` and the logs after every step (execution)."""

    def __init__(self):
        super().__init__()
        self.records, self.logs = [], []

    def on_train_batch_end(self, batch, logs=None):
        record = self.model.step_record
        self.records.append({k: v.numpy() for k, v in record.items()} if record else None)
        self.logs.append(dict(logs or {}))


# -- logs -----------------------------------------------------------------------------------------


def test_validation_logs_have_no_skip_count_and_evaluate_keeps_it():
    model = _density()
    x = np.random.default_rng(0).normal(size=(128, 2)).astype("float32")
    bad = x.copy()
    bad[64:96] = 1e30  # the third of four batches overflows: its update is skipped
    history = model.fit(bad, batch_size=32, shuffle=False, validation_data=x[:64], verbose=0)
    assert sorted(history.history) == ["nll", "skipped_steps", "val_nll"]
    assert history.history["skipped_steps"] == [1.0]
    assert sorted(model.evaluate(x, verbose=0, return_dict=True)) == ["nll"]
    assert int(model.skipped_steps.result().numpy()) == 1  # a training count: evaluate keeps it
    assert model.skipped_steps in model.metrics


def test_variational_evaluate_reports_no_skip_count():
    model = VariationalModel(
        "iaf",
        {"dim": 2, "num_layers": 1, "hidden_units": [4]},
        target_log_prob_fn=lambda z: -0.5 * tf.reduce_sum(z**2, -1),
        num_samples=8,
    )
    model.compile(optimizer="adam")
    nothing = tf.data.Dataset.from_tensors(tf.zeros([1])).repeat()  # it takes no data
    logs = model.evaluate(nothing, steps=1, verbose=0, return_dict=True)
    assert sorted(logs) == ["elbo", "ess", "log_z"]


# -- the step record ------------------------------------------------------------------------------


@pytest.mark.parametrize("jit, steps_per_execution", [(False, 1), (False, 3), (True, 1), (True, 3)])
def test_record_is_the_batch_the_step_used(jit, steps_per_execution):
    model = _density(jit_compile=jit, steps_per_execution=steps_per_execution)
    assert model.record_steps is False and model.step_record is None
    x = np.random.default_rng(1).normal(size=(88, 2)).astype("float32")  # 5 batches of 16, one 8
    model.record_steps = True
    seen = _Records()
    model.fit(x, batch_size=16, shuffle=False, callbacks=[seen], verbose=0)
    batches = [x[i : i + 16] for i in range(0, len(x), 16)]
    last = batches[steps_per_execution - 1 :: steps_per_execution]  # an execution's last step
    assert len(seen.records) == len(last)
    for record, batch in zip(seen.records, last, strict=True):
        assert sorted(record) == ["x"]
        np.testing.assert_array_equal(record["x"], batch)
    for logs in seen.logs:
        assert sorted(logs) == ["nll", "skipped_steps"]  # the record never reaches the logs


def test_record_of_a_conditional_and_a_dequantising_model():
    rng = np.random.default_rng(2)
    x, c = rng.normal(size=(32, 2)).astype("float32"), rng.normal(size=(32, 1))
    model = _density(flow={"conditional_size": 1})
    model.record_steps = True
    model.fit(x, c, batch_size=32, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.step_record["x"], x)
    np.testing.assert_array_equal(model.step_record["c"], c.astype("float32"))

    flow = {"image_shape": [2, 2, 1], "levels": 1, "steps_per_level": 1, "logit_alpha": 0.05}
    model = DensityModel("glow", flow, num_bins=4, dequantize=True)
    model.compile(optimizer="adam")
    pixels = rng.integers(0, 4, (16, 2, 2, 1), dtype=np.uint8)
    model.record_steps = True
    model.fit(pixels, batch_size=16, shuffle=False, verbose=0)
    seen = model.step_record["x"].numpy()  # the dequantised points the flow saw
    np.testing.assert_array_equal(np.floor(seen * 4), pixels)
    assert not np.isin(seen * 4, np.arange(4)).all()


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_variational_record_is_the_steps_samples(jit):
    def target(z):
        return -0.5 * tf.reduce_sum(z**2, -1)

    model = VariationalModel(
        "iaf",
        {"dim": 2, "num_layers": 1, "hidden_units": [4]},
        target_log_prob_fn=target,
        num_samples=16,
    )
    model.compile(optimizer="adam", jit_compile=jit)
    model.record_steps = True
    model.fit(steps_per_epoch=2, verbose=0)
    record = model.step_record
    assert sorted(record) == ["log_q", "log_w", "z"]
    assert record["z"].shape == (16, 2) and record["log_q"].shape == (16,)
    np.testing.assert_allclose(
        record["log_w"], target(record["z"]) - record["log_q"], rtol=1e-5, atol=1e-5
    )


def test_record_steps_switches_at_any_time_and_is_a_bool():
    model = _density()
    x = np.random.default_rng(3).normal(size=(64, 2)).astype("float32")
    model.fit(x, batch_size=32, verbose=0)  # builds (and traces) the step without the record

    class TurnOn(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.model.record_steps = True  # after `fit` built its train function

    model.fit(x, batch_size=32, shuffle=False, callbacks=[TurnOn()], verbose=0)
    np.testing.assert_array_equal(model.step_record["x"], x[32:])
    model.record_steps = False
    assert model.step_record is None
    model.fit(x, batch_size=32, verbose=0)
    assert model.step_record is None
    with pytest.raises(TypeError, match="record_steps"):
        model.record_steps = 1


def test_no_callback_patches_a_models_methods():
    """Callbacks report; they do not patch the model (CONVENTIONS: the step is the guard)."""
    package = pathlib.Path(tfp_flows.__file__).parent
    modules = [*(package / "models").rglob("*.py"), *(package / "diagnostics").rglob("*.py")]
    assert len(modules) > 5
    patching = [p.name for p in modules if "object.__setattr__" in p.read_text()]
    assert patching == []
