"""`DensityModel(..., num_bins=K, dequantize=True)`: pixels as they come, fresh noise per step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows.keras import DensityModel, load_model

GLOW = {"image_shape": [4, 4, 1], "levels": 1, "steps_per_level": 1, "logit_alpha": 0.05}
PIXELS = np.random.default_rng(0).integers(0, 256, size=(32, 4, 4, 1), dtype=np.uint8)


def _model(seed=0, jit_compile=False, **kwargs):
    keras.utils.set_random_seed(0)  # the same initial weights for every model
    model = DensityModel("glow", GLOW, num_bins=256, dequantize=True, seed=seed, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    return model


def _fit(model, x, **kwargs):
    kwargs = {"batch_size": 16, "epochs": 2, "shuffle": False, "verbose": 0, **kwargs}
    return model.fit(x, **kwargs).history


def _state(model):
    return [v.numpy().copy() for v in model.variables]


def _assert_unchanged(model, before):
    for a, b in zip(before, _state(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_uint8_pixels_train_and_report_bits_per_dim():
    model = _model()
    history = _fit(model, PIXELS, validation_data=PIXELS[:16])
    bpd, nll = history["bits_per_dim"], history["nll"]
    assert np.all(np.isfinite(bpd)) and np.all(np.isfinite(history["val_bits_per_dim"]))
    np.testing.assert_allclose(bpd, (np.array(nll) + 16 * np.log(256)) / (16 * np.log(2)), 1e-5)
    weighted = _fit(_model(), PIXELS, sample_weight=np.linspace(0.5, 1.5, 32), epochs=1)
    assert np.isfinite(weighted["bits_per_dim"][0])


def test_each_batch_is_dequantised_with_fresh_noise():
    model = _model()
    pixels = tf.constant(PIXELS)
    first, _, _ = model._unpack(pixels)
    second, _, _ = model._unpack(pixels)
    k = PIXELS.astype(np.float32)
    for x in (first.numpy(), second.numpy()):  # x = (k + u) / 256, u in [0, 1)
        assert x.dtype == np.float32 and np.all(np.floor(x * 256) == k)
    assert np.all(first.numpy() != second.numpy())
    # Weights unchanged, so two evaluations differ only by their noise.
    a, b = (model.evaluate(PIXELS, batch_size=32, verbose=0) for _ in range(2))
    assert a != b


def test_a_seed_reproduces_a_run_and_floats_k_over_255_match_uint8():
    runs = [_fit(_model(seed=1), PIXELS), _fit(_model(seed=1), PIXELS)]
    assert runs[0] == runs[1]
    assert _fit(_model(seed=2), PIXELS)["nll"] != runs[0]["nll"]
    for dtype in ("float32", "float64"):
        floats = (PIXELS / 255.0).astype(dtype)
        np.testing.assert_allclose(_fit(_model(seed=1), floats)["nll"], runs[0]["nll"], 1e-6)


GRID = r"outside \[0, 1\] or off the grid k / 255"  # a dataset's floats, checked in-graph


@pytest.mark.parametrize(
    "pixels, match, dataset_match",
    [
        (np.full([4, 4, 4, 1], 256, np.int32), r"outside \[0, 255\].*\[256, 256\]", None),
        (PIXELS.astype(np.int16) - 1, r"outside \[0, 255\].*\[-1, 254\]", None),
        (PIXELS / 127.5, r"outside \[0, 255\].*floats: k / 255, in \[0, 1\]", GRID),
        ((PIXELS + 0.5) / 256.0, r"off the grid k / 255.*dequantised already", GRID),
        (np.where(PIXELS == PIXELS[0, 0, 0, 0], np.nan, PIXELS / 255), "non-finite", None),
    ],
    ids=["256", "negative", "floats_over_1", "dequantised", "nan"],
)
def test_bad_pixels_are_refused_naming_the_range_before_any_weight_change(
    pixels, match, dataset_match
):
    model = _model()
    model.optimizer.build(model.trainable_variables)
    before = _state(model)  # the count of noise draws included
    with pytest.raises(ValueError, match=match):
        model.fit(pixels, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match=match):
        model.evaluate(pixels, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(pixels).batch(16)
    dataset_match = dataset_match or match.split(".*")[0]
    with pytest.raises(tf.errors.InvalidArgumentError, match=dataset_match):
        model.fit(dataset, shuffle=False, verbose=0)
    _assert_unchanged(model, before)


def test_a_dataset_of_uint8_batches():
    model = _model()
    dataset = tf.data.Dataset.from_tensor_slices(PIXELS).batch(16)
    history = _fit(model, dataset, batch_size=None, validation_data=dataset)
    assert np.all(np.isfinite(history["bits_per_dim"] + history["val_bits_per_dim"]))
    floats = dataset.map(lambda k: tf.cast(k, tf.float32) / 255.0)  # the same run, as floats
    again = _fit(_model(), floats, batch_size=None, validation_data=floats)
    np.testing.assert_allclose(again["nll"], history["nll"], rtol=1e-6)


def test_jit_compile():
    model = _model(jit_compile=True)
    history = _fit(model, PIXELS)
    assert np.all(np.isfinite(history["bits_per_dim"]))
    a, b = (model.evaluate(PIXELS, batch_size=32, verbose=0) for _ in range(2))
    assert a != b


def test_log_prob_dequantises_integer_pixels_and_takes_floats_as_points():
    model = _model()
    first, second = model.log_prob(PIXELS[:4]), model.log_prob(PIXELS[:4])
    assert first.shape == (4,) and np.all(np.isfinite(first)) and np.all(first != second)
    x = model.sample(3, seed=(1, 2))  # points in [0, 1)
    np.testing.assert_array_equal(model.log_prob(x), model.flow.log_prob(x))
    with pytest.raises(ValueError, match=r"outside \[0, 255\]"):
        model.log_prob(np.full([1, 4, 4, 1], 300))


def test_save_and_load_keep_dequantize_and_the_noise_state(tmp_path):
    model = _model(seed=5)
    _fit(model, PIXELS, epochs=1)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert (loaded.dequantize, loaded.num_bins, loaded.seed) == (True, 256, 5)
    assert int(loaded._noise_draws.numpy()) == int(model._noise_draws.numpy()) == 2
    expected = model.evaluate(PIXELS, batch_size=32, verbose=0, return_dict=True)
    got = loaded.evaluate(PIXELS, batch_size=32, verbose=0, return_dict=True)
    assert got == pytest.approx(expected, rel=1e-6)  # the same weights and the same noise


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="`dequantize=True` needs `num_bins`"):
        DensityModel("glow", GLOW, dequantize=True)
    with pytest.raises(ValueError, match="num_bins` >= 2"):
        DensityModel("glow", GLOW, num_bins=1, dequantize=True)
    with pytest.raises(TypeError, match="`dequantize` must be True or False"):
        DensityModel("glow", GLOW, num_bins=256, dequantize="yes")
    model = DensityModel("glow", GLOW, num_bins=256)  # without dequantize: integers refused
    model.compile(optimizer="adam")
    with pytest.raises(TypeError, match="integer"):
        model.fit(PIXELS, verbose=0)
