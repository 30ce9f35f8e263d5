"""Numerical robustness: high learning rates stay finite, NaN losses stop training with a
diagnosis and the last good weights, and memory does not grow over long training."""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import datasets, flows
from tfp_flows.diagnostics import NonFiniteLossError, StopOnNonFinite, find_first_nonfinite
from tfp_flows.keras import DensityModel
from tfp_flows.testing import perturb_variables


def _local_checkerboard(n: int, *, seed: int = 0) -> np.ndarray:
    """Uniform on the 8 squares of side 2 of [-4, 4]^2 whose cells (i, j) have i + j even."""
    rng = np.random.default_rng(seed)
    cells = np.array([(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0])
    chosen = cells[rng.integers(len(cells), size=n)]
    return (2.0 * (chosen + rng.uniform(size=(n, 2)))).astype(np.float32)


def checkerboard(n: int, *, seed: int = 0) -> np.ndarray:
    if hasattr(datasets, "checkerboard"):
        return np.asarray(datasets.checkerboard(n, seed=seed), np.float32)
    return _local_checkerboard(n, seed=seed)


def test_local_checkerboard_sampler():
    x = _local_checkerboard(20000, seed=1)
    assert x.shape == (20000, 2) and np.all(np.abs(x) <= 4.0)
    cells = np.floor(x / 2.0).astype(int)
    assert np.all((cells[:, 0] + cells[:, 1]) % 2 == 0)
    counts = np.unique(cells[:, 0] * 4 + cells[:, 1], return_counts=True)[1]
    assert len(counts) == 8 and counts.min() > 0.9 * counts.mean()  # 8 squares, uniform


# -- high learning rate ------------------------------------------------------------------------


def _train_at_high_lr(flow, flow_kwargs, steps, tmp_path, seed=0):
    keras.utils.set_random_seed(seed)  # the same run whichever tests ran before in the process
    model = DensityModel(flow, flow_kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = checkerboard(steps * 128, seed=0)
    held_out = checkerboard(4096, seed=1)
    before = float(-tf.reduce_mean(model.flow.log_prob(held_out)))
    guard = StopOnNonFinite(tmp_path / "last_good.weights.h5")
    history = model.fit(x, batch_size=128, epochs=1, shuffle=True, callbacks=[guard], verbose=0)
    assert guard.step == steps and guard.message is None
    assert all(np.isfinite(w).all() for w in model.get_weights())
    log_prob = model.log_prob(held_out)
    samples = model.sample(4096, seed=2)
    assert np.isfinite(log_prob).all() and np.isfinite(samples).all()
    after = float(-tf.reduce_mean(log_prob))
    # It trained, not merely stayed finite: 300 steps gain 0.48-0.72 nats over seeds 0-3.
    assert after < before - 0.3, (before, after)
    return history.history["nll"][-1], after


REAL_NVP = {"event_shape": [2], "num_layers": 6, "hidden_units": [64, 64]}
MAF = {"dim": 2, "num_layers": 5, "hidden_units": [64, 64]}


def test_300_steps_at_lr_1e_2_stay_finite(tmp_path):
    _train_at_high_lr("real_nvp", REAL_NVP, 300, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "flow, kwargs", [("real_nvp", REAL_NVP), ("maf", MAF)], ids=["real_nvp", "maf"]
)
def test_2000_steps_at_lr_1e_2_stay_finite(flow, kwargs, tmp_path):
    train_nll, held_out_nll = _train_at_high_lr(flow, kwargs, 2000, tmp_path)
    # The checkerboard's entropy is log(32) = 3.47 nats; a flow gets within ~0.4 of it.
    assert held_out_nll < 4.2, (train_nll, held_out_nll)


# -- a NaN in training ---------------------------------------------------------------------------


class _PoisonAt(keras.callbacks.Callback):
    """Records the weights after step `step - 1`, sets one bias to `value` after step `step`."""

    def __init__(self, step, variable, value):
        super().__init__()
        self.target, self.variable, self.value = step, variable, value
        self.count, self.recorded = 0, None

    def on_train_batch_end(self, batch, logs=None):
        self.count += 1
        if self.count == self.target - 1:
            self.recorded = self.model.get_weights()
        if self.count == self.target:
            values = self.variable.numpy()
            values.flat[0] = self.value
            self.variable.assign(values)


def _small_model():
    model = DensityModel("real_nvp", {"event_shape": [2], "num_layers": 3, "hidden_units": [8]})
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


@pytest.mark.parametrize(
    "value", [np.nan, pytest.param(np.inf, marks=pytest.mark.slow)], ids=["nan", "inf"]
)
def test_nan_stops_training_naming_step_and_layer_and_saves_last_good_weights(value, tmp_path):
    model = _small_model()
    coupling = model.flow.bijector.bijectors[2]  # data -> latent: coupling_0, actnorm, coupling_1
    assert coupling.name == "coupling_1"
    bias = coupling.conditioner.output_layer.bias
    poison = _PoisonAt(11, bias, value)  # after step 11 = epoch 2, batch 3 (8 batches an epoch)
    path = tmp_path / "last_good.weights.h5"
    guard = StopOnNonFinite(path)
    x = datasets.two_moons(512, seed=0)
    with pytest.raises(NonFiniteLossError) as info:
        model.fit(x, batch_size=64, epochs=3, callbacks=[poison, guard], verbose=0)
    message = str(info.value)
    # The poisoned bias makes the loss, the gradients and the weights themselves non-finite.
    assert "non-finite nll, gradient and weights at step 12 (epoch 2, batch 4)" in message, message
    assert "bijector 'coupling_1' (AffineCoupling), inverse output" in message, message
    assert "mlp_1/shift_and_log_scale/bias" in message, message
    assert info.value.step == 12 and info.value.finding.bijector == "coupling_1"
    assert "(those step 11, the last step with a finite loss, started from)" in message, message
    # The last good weights (those step 11 started from) are in the model and in the file.
    expected = poison.recorded
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_array_equal(got, want)
    restored = _small_model()
    restored.load_weights(path)
    for got, want in zip(restored.get_weights(), expected):
        assert np.isfinite(got).all()
        np.testing.assert_array_equal(got, want)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
    # The callback only read the model's step record; it is off again, as before `fit`.
    assert "train_step" not in model.__dict__ and model.record_steps is False


class _Recorder(keras.callbacks.Callback):
    """Records the weights and the optimizer's variables after every step (execution)."""

    def __init__(self):
        super().__init__()
        self.states = []

    def on_train_batch_end(self, batch, logs=None):
        self.states.append(
            (
                [w.numpy() for w in self.model.weights],
                [v.numpy() for v in self.model.optimizer.variables],
            )
        )


def _assert_state(model, state):
    """Weights and optimizer variables equal `state`; a VariationalModel's draw counter aside."""
    weights, optimizer = state
    assert len(model.optimizer.variables) == len(optimizer) > len(model.trainable_variables)
    draws = getattr(model, "_draws", None)
    for w, want in zip(model.weights, weights, strict=True):
        if w is not draws:
            np.testing.assert_array_equal(w.numpy(), want)
    for got, want in zip([v.numpy() for v in model.optimizer.variables], optimizer, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_stop_restores_the_optimizer_so_fit_resumes_exactly(steps_per_execution):
    """Adam's moments of the NaN step would poison every later step: they are put back too."""
    batch, executions = 64, 6
    x = datasets.two_moons(batch * steps_per_execution * executions, seed=0)
    more = datasets.two_moons(batch * steps_per_execution * 2, seed=1)

    def make():
        model = DensityModel("real_nvp", {"event_shape": [2], "num_layers": 3, "hidden_units": [8]})
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=steps_per_execution
        )
        return model

    model = make()
    initial = [w.numpy() for w in model.weights]
    bias = model.flow.bijector.bijectors[2].conditioner.output_layer.bias
    recorder = _Recorder()
    with pytest.raises(NonFiniteLossError) as info:
        model.fit(
            x,
            batch_size=batch,
            shuffle=False,
            verbose=0,
            callbacks=[recorder, _PoisonAt(5, bias, np.nan), StopOnNonFinite()],
        )
    assert info.value.step == 6, str(info.value)
    assert "weights and optimizer state (those step 5" in str(info.value)
    # Step 5 (an execution of `steps_per_execution` batches) started from the state after step 4.
    _assert_state(model, recorder.states[3])
    assert int(model.optimizer.iterations.numpy()) == 4 * steps_per_execution
    # The same state, reached without the accident; then both train on the same new batches.
    reference = make()
    reference.set_weights(initial)
    reference.fit(x[: 4 * steps_per_execution * batch], batch_size=batch, shuffle=False, verbose=0)
    for fitted in (model, reference):
        nll = fitted.fit(more, batch_size=batch, shuffle=False, verbose=0).history["nll"]
        assert np.isfinite(nll).all()
    for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def _variational(target, num_samples=64, jit_compile=False):
    from tfp_flows.keras import VariationalModel

    model = VariationalModel(
        "iaf",
        {"dim": 2, "num_layers": 2, "hidden_units": [8]},
        target_log_prob_fn=target,
        num_samples=num_samples,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    return model


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_variational_guard_names_the_target_and_restores_the_state(jit_compile):
    outside = tf.Variable(False)  # after step 4 the target's support shrinks to z_0 <= 0.5
    seen = tf.Variable(-1)  # how many samples the target refused in the latest step

    def target(z):
        log_p = -0.5 * tf.reduce_sum(z**2, -1)
        refused = outside & (z[..., 0] > 0.5)
        seen.assign(tf.reduce_sum(tf.cast(refused, tf.int32)))
        return tf.where(refused, tf.constant(-np.inf), log_p)

    class Shrink(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                outside.assign(True)

    model = _variational(target, jit_compile=jit_compile)
    recorder = _Recorder()
    with pytest.raises(NonFiniteLossError) as info:
        model.fit(steps_per_epoch=10, verbose=0, callbacks=[recorder, Shrink(), StopOnNonFinite()])
    message = str(info.value)
    assert info.value.step == 5 and info.value.finding.bijector == "<target>", message
    found = re.search(r"target log p~\(z\) at (\d+) of 64 finite flow samples", message)
    # The count is that of the failing step's own samples (counted in the step, not redrawn).
    assert found and int(found.group(1)) == int(seen.numpy()) > 0, (message, int(seen.numpy()))
    assert "(target)" in message  # the function's name
    _assert_state(model, recorder.states[2])  # after step 3: what step 4 started from
    assert int(model._draws.numpy()) == 5  # not rewound: a resumed fit draws new samples
    assert all(np.isfinite(w).all() for w in model.get_weights())
    outside.assign(False)
    history = model.fit(steps_per_epoch=2, verbose=0).history  # resumes; no record kept
    assert model.record_steps is False and model.step_record is None
    assert sorted(history) == ["elbo", "ess", "log_z", "skipped_steps"]
    assert np.isfinite(history["elbo"]).all()


def test_variational_guard_with_no_finite_step_restores_the_initial_state():
    model = _variational(lambda z: tf.fill(tf.shape(z)[:1], np.nan))
    initial = [v.numpy() for v in model.trainable_variables]
    with pytest.raises(NonFiniteLossError, match="No step had a finite loss") as info:
        model.fit(steps_per_epoch=3, verbose=0, callbacks=[StopOnNonFinite()])
    assert info.value.finding.bijector == "<target>"
    assert "at 64 of 64 finite flow samples" in str(info.value)
    for v, want in zip(model.trainable_variables, initial, strict=True):
        np.testing.assert_array_equal(v.numpy(), want)
    assert int(model.optimizer.iterations.numpy()) == 0


def test_diverging_learning_rate_is_stopped_with_a_diagnosis(tmp_path):
    """No clamp and a huge learning rate: the loss overflows; the guard stops and names a layer."""
    model = DensityModel(
        "real_nvp",
        {"event_shape": [2], "num_layers": 4, "hidden_units": [32], "log_scale_clamp": None},
    )
    model.compile(optimizer=keras.optimizers.SGD(1e6))
    guard = StopOnNonFinite(tmp_path / "last_good.keras", raise_error=False)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        model.fit(
            datasets.two_moons(2048, seed=0) * 50.0,
            batch_size=64,
            epochs=2,
            verbose=0,
            callbacks=[guard],
        )
    assert model.stop_training
    assert re.search(
        r"at step \d+ \(epoch \d, batch \d+\): first non-finite value in ", guard.message
    )
    assert guard.finding is not None
    assert all(np.isfinite(w).all() for w in model.get_weights())
    loaded = keras.models.load_model(tmp_path / "last_good.keras")
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_guard_is_inert_on_finite_training():
    model = _small_model()
    guard = StopOnNonFinite()
    history = model.fit(
        datasets.two_moons(256, seed=0), batch_size=64, epochs=2, verbose=0, callbacks=[guard]
    )
    assert guard.step == 8 and guard.message is None
    assert sorted(history.history) == ["nll", "skipped_steps"]  # the record is not logged
    assert "train_step" not in model.__dict__ and model.record_steps is False


def test_find_first_nonfinite_descends_into_multiscale_glow():
    dist = flows.glow((4, 4, 1), levels=2, steps_per_level=2, filters=4)
    x = tf.random.stateless_uniform([8, 4, 4, 1], seed=[0, 1])
    dist.log_prob(x)  # initialise ActNorm
    perturb_variables(dist.bijector, 0.05)
    assert find_first_nonfinite(dist, x) is None
    conv = next(b for b in flows.flow_bijectors(dist) if b.name == "l1_step1_conv")
    lower = conv.lower.numpy()
    lower[1, 0] = np.nan
    conv.lower.assign(lower)
    before = [v.numpy() for v in dist.variables]
    finding = find_first_nonfinite(dist, x)
    assert finding.bijector == "l1_step1_conv" and finding.kind == "Invertible1x1Conv"
    assert finding.path[:4] == ("glow_chain", "level_0", "l0_factor_out", "level_1")
    assert finding.where == "inverse output" and finding.variables == ("l1_step1_conv/lower",)
    for v, value in zip(dist.variables, before):
        np.testing.assert_array_equal(v.numpy(), value)  # no side effects
    nan_data = x.numpy()
    nan_data[3, 1, 1, 0] = np.nan
    assert find_first_nonfinite(dist, nan_data).where == "input"


def test_stop_on_nonfinite_rejects_unknown_file_types():
    with pytest.raises(ValueError, match="filepath"):
        StopOnNonFinite("weights.h5")


# -- memory ------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class _RssAt(keras.callbacks.Callback):
    def __init__(self, steps):
        super().__init__()
        self.steps, self.rss, self.count = set(steps), {}, 0

    def on_train_batch_end(self, batch, logs=None):
        self.count += 1
        if self.count in self.steps:
            self.rss[self.count] = _rss_bytes()


def _glow_rss(first, last):
    model = DensityModel(
        "glow", {"image_shape": [8, 8, 1], "levels": 2, "steps_per_level": 2, "filters": 16}
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = np.random.default_rng(0).uniform(size=(32 * 64, 8, 8, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(x).shuffle(2048, seed=0).batch(32).repeat()
    probe = _RssAt([first, last])
    model.fit(dataset, steps_per_epoch=last, epochs=1, callbacks=[probe], verbose=0)
    return probe.rss[first], probe.rss[last]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_glow_memory_after_2000_steps_within_5_percent_of_200():
    early, late = _glow_rss(200, 2000)
    print(
        f"RSS after 200 steps {early / 2**20:.1f} MiB, after 2000 {late / 2**20:.1f} MiB, "
        f"ratio {late / early:.4f}"
    )
    assert late / early < 1.05, (early, late)
