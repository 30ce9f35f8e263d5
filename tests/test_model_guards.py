"""The Keras models never let data, a target or an argument corrupt them.

Every case ends in a correct result or a clear error naming the problem, with the weights and
the optimizer state unchanged. The training step itself skips non-finite updates (no callback
needed), under XLA and with `steps_per_execution > 1`; `tests/test_distributed.py` checks it on
two replicas.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import datasets
from tfp_flows.keras import DensityModel, NonFiniteLossError, VariationalModel

SMALL = {"event_shape": [2], "num_layers": 2, "hidden_units": [8]}


def _model(flow="real_nvp", kwargs=None, *, lr=1e-2, **compile_kwargs):
    model = DensityModel(flow, dict(kwargs or SMALL))
    model.compile(optimizer=keras.optimizers.Adam(lr), **compile_kwargs)
    return model


def _state(model):
    return [v.numpy().copy() for v in (*model.weights, *model.optimizer.variables)]


def _assert_unchanged(model, before):
    after = _state(model)
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def _trained(model):
    """One finite fit first, so the optimizer has state (moments, iterations) to keep."""
    model.fit(datasets.two_moons(64, seed=0), batch_size=32, verbose=0)
    return model


@pytest.mark.parametrize("jit, steps_per_execution", [(False, 1), (False, 3), (True, 1), (True, 3)])
@pytest.mark.parametrize("value", [1e20, 1e30])
def test_overflowing_data_skips_every_update_then_stops(value, jit, steps_per_execution):
    model = _trained(_model(jit_compile=jit, steps_per_execution=steps_per_execution))
    before = _state(model)
    x = np.full([192, 2], value, np.float32)
    with pytest.raises(NonFiniteLossError) as info:
        model.fit(x, batch_size=32, verbose=0)
    message = str(info.value)
    assert "3 consecutive training steps were skipped" in message, message
    assert "data values too large for float32" in message and f"{value:g}" in message, message
    _assert_unchanged(model, before)
    assert not np.isnan(model.log_prob(datasets.two_moons(8, seed=1)).numpy()).any()


def test_one_bad_batch_is_skipped_and_training_goes_on():
    model = _trained(_model())
    x = datasets.two_moons(256, seed=2).astype(np.float32)
    x[:32] = 1e20  # the first batch of 8
    iterations = int(model.optimizer.iterations.numpy())
    history = model.fit(x, batch_size=32, shuffle=False, verbose=0).history
    assert history["skipped_steps"] == [1.0]
    assert np.isfinite(history["nll"][0])  # the skipped step's NaN is not averaged in
    assert int(model.optimizer.iterations.numpy()) == iterations + 7
    assert all(np.isfinite(v.numpy()).all() for v in model.weights)


def test_float64_data_beyond_float32_is_refused_before_any_step():
    model = _trained(_model())
    before = _state(model)
    with pytest.raises(ValueError, match=r"beyond the largest float32.*No training step"):
        model.fit(np.full([64, 2], 1e39), batch_size=32, verbose=0)
    _assert_unchanged(model, before)


def _nan_off_support(z):
    normal = -0.5 * tf.reduce_sum(z**2, axis=-1)
    return tf.where(z[..., 0] > 0.0, normal, tf.constant(np.nan, z.dtype))


def test_variational_target_nan_at_some_samples_stops_with_weights_unchanged():
    model = VariationalModel(
        "iaf",
        {"dim": 2, "num_layers": 2, "hidden_units": [8]},
        target_log_prob_fn=_nan_off_support,
        num_samples=32,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
    model.optimizer.build(model.trainable_variables)
    before = _state(model)
    with pytest.raises(NonFiniteLossError, match="target log-density is NaN or inf") as info:
        model.fit(steps_per_epoch=10, verbose=0)
    assert "3 consecutive training steps were skipped" in str(info.value)
    # No update was applied (the sample counter is not a weight the optimizer touches).
    draws = next(i for i, w in enumerate(model.weights) if w is model._draws)
    before.pop(draws)
    after = _state(model)
    after.pop(draws)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def test_variational_target_returning_integers_is_refused():
    with pytest.raises(TypeError, match=r"dtype int32.*floating"):
        VariationalModel(
            "iaf",
            {"dim": 2, "num_layers": 1, "hidden_units": [4]},
            target_log_prob_fn=lambda z: tf.zeros(tf.shape(z)[:1], tf.int32),
        )


def test_sample_weight_gives_the_weighted_mean_nll():
    x = datasets.two_moons(32, seed=3).astype(np.float32)
    w = np.random.default_rng(0).uniform(0.0, 2.0, size=32)
    model = DensityModel("real_nvp", dict(SMALL, normalization=None))
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    reference = [v.numpy() for v in model.trainable_variables]
    # By hand: one SGD step on sum(w * nll) / sum(w), from the same weights.
    with tf.GradientTape() as tape:
        nll = -model.flow.log_prob(x)
        loss = tf.reduce_sum(w.astype(np.float32) * nll) / w.sum()
    grads = tape.gradient(loss, model.flow.trainable_variables)
    expected = {
        id(v): v.numpy() - 0.1 * g.numpy() for v, g in zip(model.flow.trainable_variables, grads)
    }
    history = model.fit(x, sample_weight=w, batch_size=32, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["nll"][0], float(loss), rtol=1e-5)
    assert abs(history["nll"][0] - float(tf.reduce_mean(nll))) > 1e-3  # weights matter
    for v in model.trainable_variables:
        np.testing.assert_allclose(v.numpy(), expected[id(v.value)], rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(v.numpy(), r) for v, r in zip(model.trainable_variables, reference))


@pytest.mark.parametrize(
    "weights, match",
    [
        (np.ones(31), "32 numbers"),
        (-np.ones(32), "non-negative"),
        (np.zeros(32), "positive sum"),
        (np.full(32, np.nan), "finite"),
    ],
)
def test_bad_sample_weight_is_refused(weights, match):
    model = _model()
    with pytest.raises(ValueError, match=match):
        model.fit(datasets.two_moons(32, seed=0), sample_weight=weights, verbose=0)


def test_class_weight_is_refused_with_a_reason():
    with pytest.raises(ValueError, match=r"class_weight.*sample_weight"):
        _model().fit(datasets.two_moons(32, seed=0), class_weight={0: 1.0}, verbose=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(x=None), ValueError, "needs data"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=-1), ValueError, "batch_size"),
        (dict(batch_size=2.5), ValueError, "batch_size"),
        (dict(epochs=-1), ValueError, "epochs"),
        (dict(steps_per_epoch=0), ValueError, "steps_per_epoch"),
    ],
)
def test_bad_fit_arguments_are_named(kwargs, error, match):
    model = _trained(_model())
    before = _state(model)
    kwargs = {"x": datasets.two_moons(32, seed=0), **kwargs}
    with pytest.raises(error, match=match):
        model.fit(**kwargs, verbose=0)
    _assert_unchanged(model, before)


def test_fit_before_compile_says_compile():
    with pytest.raises(RuntimeError, match=r"compile\(optimizer"):
        DensityModel("real_nvp", dict(SMALL)).fit(datasets.two_moons(32, seed=0), verbose=0)


def test_a_python_generator_of_batches_trains_and_is_checked():
    model = _model()

    def batches(bad=False):
        for i in range(4):
            x = datasets.two_moons(32, seed=i)
            if bad and i == 2:
                x[0, 0] = np.nan
            yield x

    reference = [v.numpy() for v in model.trainable_variables]
    history = model.fit(batches(), verbose=0).history
    assert np.isfinite(history["nll"][0])
    assert any(
        not np.array_equal(v.numpy(), r) for v, r in zip(model.trainable_variables, reference)
    )
    # Keras runs a generator inside tf.data, which re-raises the check's ValueError as its own.
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="1 non-finite value"):
        model.fit(batches(bad=True), verbose=0)


def test_validation_condition_mismatch_is_refused_before_training():
    model = _trained(_model())
    before = _state(model)
    x = datasets.two_moons(64, seed=0)
    with pytest.raises(ValueError, match="unconditional one takes x alone"):
        model.fit(x, validation_data=(x, np.zeros([64, 3])), verbose=0)
    _assert_unchanged(model, before)


def test_raw_pixels_into_a_logit_flow_are_refused_naming_the_range():
    kwargs = {"image_shape": [4, 4, 1], "levels": 1, "steps_per_level": 1, "logit_alpha": 0.05}
    model = _model("glow", kwargs)
    pixels = np.random.default_rng(0).integers(0, 256, size=[16, 4, 4, 1]).astype(np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.fit(pixels, batch_size=8, verbose=0)
    model.optimizer.build(model.trainable_variables)
    before = _state(model)
    dataset = tf.data.Dataset.from_tensor_slices(pixels).batch(8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="logit pre-transform"):
        model.fit(dataset, verbose=0)
    _assert_unchanged(model, before)


def test_log_prob_of_none_and_negative_sample_counts_are_named():
    model = _model()
    with pytest.raises(TypeError, match="x is None"):
        model.log_prob(None)
    with pytest.raises(ValueError, match="`n` must be an integer >= 0; got -1"):
        model.sample(-1)
    assert model.sample(0).shape == (0, 2)


def test_batch_normalization_is_refused_as_documented():
    with pytest.raises(ValueError, match=r"tfb\.BatchNormalization"):
        DensityModel("real_nvp", dict(SMALL, normalization="batchnorm"))


def test_a_lambda_target_is_refused_at_save_time_leaving_no_file(tmp_path):
    model = VariationalModel(
        "iaf",
        {"dim": 2, "num_layers": 1, "hidden_units": [4]},
        target_log_prob_fn=lambda z: -0.5 * tf.reduce_sum(z**2, -1),
    )
    path = tmp_path / "vi.keras"
    with pytest.raises(ValueError, match=r"not registered with Keras.*register_keras_serializable"):
        model.save(path)
    assert os.listdir(tmp_path) == []
