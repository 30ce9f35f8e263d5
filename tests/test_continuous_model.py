"""FlowMatchingModel: fit, validation NLL, save/load, bad input, conditional and OT training."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.continuous import FlowMatchingModel, interpolate, ot_pairing

tfd = tfp.distributions


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 2)) * [0.5, 2.0] + [1.0, -1.0]).astype(np.float32)


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    options = dict(hidden_units=(16,), num_steps=4, num_frequencies=1)
    model = FlowMatchingModel([2], **{**options, **kwargs})
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def test_fit_lowers_the_loss_and_reports_the_held_out_nll_every_n_epochs():
    model = _model(nll_every=2)
    x, xv = _data(512), _data(128, seed=1)
    history = model.fit(x, batch_size=64, epochs=4, validation_data=xv, verbose=0).history
    assert history["fm_loss"][-1] < history["fm_loss"][0]
    assert len(history["val_fm_loss"]) == 4 and len(history["val_nll"]) == 2  # epochs 2 and 4
    assert isinstance(model.flow, tfd.Distribution)
    assert model.flow.bijector.velocity is model.velocity
    nll = model.evaluate(xv, verbose=0, return_dict=True)["nll"]
    np.testing.assert_allclose(nll, -np.mean(model.log_prob(xv)), rtol=1e-5)
    untrained = -np.mean(_model().log_prob(xv))  # the base, N(0, I)
    assert nll < untrained - 0.3


def test_save_and_load_are_exact(tmp_path):
    model = _model(path="gaussian", sigma_min=0.01)
    model.fit(_data(), batch_size=64, epochs=1, verbose=0)
    path = str(tmp_path / "fm.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # safe mode
    assert isinstance(loaded, FlowMatchingModel) and loaded.probability_path == "gaussian"
    x = _data(8, seed=2)
    np.testing.assert_array_equal(loaded.log_prob(x), model.log_prob(x))
    z = tf.random.stateless_normal([4, 2], [1, 2])
    np.testing.assert_array_equal(loaded.flow.bijector.forward(z), model.flow.bijector.forward(z))


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros([8, 3], np.float32), "shape"),
        (np.array([[np.nan, 0.0]] * 8, np.float32), "non-finite"),
        (np.zeros([8, 2], np.int32), "integer"),
    ],
    ids=["wrong_shape", "nan", "integer"],
)
def test_bad_data_is_refused_before_any_weight_changes(x, match):
    model = _model()
    before = _weights(model)
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(x, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)


def test_times_outside_the_unit_interval_are_refused():
    model = _model()
    x = _data(4)
    for t in (1.5, -0.1, np.nan):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            model.velocity_at(x, t)
    with pytest.raises(ValueError, match="times"):
        model.trajectory(x, [0.0, 2.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate("linear", x, x, np.full([4], 1.2, np.float32))
    assert model.velocity_at(x, 0.5).shape == [4, 2]


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="path"):
        FlowMatchingModel([2], path="cosine")
    with pytest.raises(ValueError, match="sigma_min"):
        FlowMatchingModel([2], path="linear", sigma_min=0.1)
    with pytest.raises(ValueError, match="ot"):
        FlowMatchingModel([2], ot=True, conditional_size=2)
    with pytest.raises(ValueError, match="XLA"):
        FlowMatchingModel([2], ot=True).compile(optimizer="adam", jit_compile=True)


def test_conditional_fit_uses_the_condition():
    rng = np.random.default_rng(3)
    c = rng.choice([-1.0, 1.0], size=(512, 1)).astype(np.float32)
    x = (rng.normal(size=(512, 2)) * 0.3 + 2.0 * c).astype(np.float32)
    model = _model(conditional_size=1)
    model.fit(x, c, batch_size=64, epochs=6, verbose=0)
    right = model.evaluate(x[:128], c[:128], verbose=0, return_dict=True)["nll"]
    wrong = model.evaluate(x[:128], -c[:128], verbose=0, return_dict=True)["nll"]
    assert right < wrong - 1.0
    with pytest.raises(ValueError, match="condition"):
        model.fit(x, batch_size=64, epochs=1, verbose=0)
    assert model.sample(3, np.float32([[1.0]]), seed=(1, 2)).shape == [3, 1, 2]


def test_ot_pairing_is_the_optimal_assignment():
    x0 = tf.random.stateless_normal([6, 2], [0, 1])
    x1 = tf.random.stateless_normal([6, 2], [2, 3]) + 3.0
    paired = ot_pairing(x0, x1)
    cost = float(tf.reduce_sum((paired - x1) ** 2))
    import itertools

    best = min(
        float(tf.reduce_sum((tf.gather(x0, list(p)) - x1) ** 2))
        for p in itertools.permutations(range(6))
    )
    assert abs(cost - best) < 1e-4
    np.testing.assert_allclose(np.sort(paired.numpy(), 0), np.sort(x0.numpy(), 0))


def test_ot_training_runs_and_learns():
    model = _model(ot=True)
    history = model.fit(_data(512), batch_size=64, epochs=3, verbose=0).history
    assert history["fm_loss"][-1] < history["fm_loss"][0]


def test_fourier_features_are_saved_not_redrawn(tmp_path):
    model = _model(fourier_features=4, fourier_scale=0.5)
    model.fit(_data(), batch_size=64, epochs=1, verbose=0)
    (frequencies,) = model.velocity.non_trainable_weights
    assert frequencies.shape == (2, 4)
    frequencies.assign(frequencies.numpy() + 1.0)  # no longer what the seed would draw
    path = str(tmp_path / "fm.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.velocity.fourier_features == 4 and loaded.velocity.fourier_scale == 0.5
    np.testing.assert_array_equal(loaded.velocity.non_trainable_weights[0], frequencies)
    x = _data(8, seed=2)
    np.testing.assert_array_equal(loaded.log_prob(x), model.log_prob(x))
    assert all(w is not frequencies for w in model.trainable_variables)  # fixed, not trained
