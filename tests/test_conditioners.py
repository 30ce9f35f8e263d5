"""The coupling conditioners: zero-initialised, built at construction, any leading dims."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows.nn import ConvConditioner, MLPConditioner


def _perturb(layer, seed=0):
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(w + rng.normal(scale=0.3, size=w.shape).astype(w.dtype))


def _mlp(**kwargs):
    return MLPConditioner(3, 2, hidden_units=(16,), **kwargs)


def _conv(**kwargs):
    return ConvConditioner((4, 4, 2), 3, filters=8, num_blocks=1, **kwargs)


CASES = {"mlp": (_mlp, [3], 2), "conv": (_conv, [4, 4, 2], 3)}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_built_and_zero_output_at_construction(kind):
    make, event, out = CASES[kind]
    layer = make()
    assert layer.built and layer.weights
    shift, log_scale = layer(tf.random.normal([5, *event]))
    assert shift.shape == log_scale.shape == [5, *event[:-1], out]
    np.testing.assert_array_equal(shift, 0.0)
    np.testing.assert_array_equal(log_scale, 0.0)


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("leading", [[], [6], [2, 3]])
def test_any_leading_dims(kind, leading):
    make, event, out = CASES[kind]
    layer = make(conditional_size=2)
    _perturb(layer)
    x = tf.random.stateless_normal([6, *event], seed=[1, 2])
    c = tf.random.stateless_normal([6, 2], seed=[1, 3])
    n = int(np.prod(leading))
    flat_shift, flat_log_scale = layer(x[:n], conditional=c[:n])
    xs = tf.reshape(x[:n], [*leading, *event])
    cs = tf.reshape(c[:n], [*leading, 2])
    shift, log_scale = layer(xs, conditional=cs)
    assert shift.shape == [*leading, *event[:-1], out]
    np.testing.assert_allclose(tf.reshape(shift, flat_shift.shape), flat_shift, rtol=1e-5)
    np.testing.assert_allclose(
        tf.reshape(log_scale, flat_log_scale.shape), flat_log_scale, rtol=1e-5
    )
    assert not np.allclose(shift, 0.0) and not np.allclose(shift, log_scale)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_conditional_input_changes_and_broadcasts(kind):
    make, event, _ = CASES[kind]
    layer = make(conditional_size=2)
    _perturb(layer)
    x = tf.random.stateless_normal([4, *event], seed=[2, 2])
    c = tf.constant([0.5, -1.0])
    broadcast = layer(x, conditional=c)[0]
    tiled = layer(x, conditional=tf.tile(c[None], [4, 1]))[0]
    np.testing.assert_allclose(broadcast, tiled, rtol=1e-6)
    assert not np.allclose(broadcast, layer(x, conditional=-c)[0], atol=1e-4)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_float64(kind):
    make, event, _ = CASES[kind]
    layer = make(dtype="float64")
    assert all(w.dtype == "float64" for w in layer.weights)
    shift, log_scale = layer(tf.zeros([2, *event], tf.float64))
    assert shift.dtype == log_scale.dtype == tf.float64


@pytest.mark.parametrize("kind", sorted(CASES))
def test_errors_name_the_problem(kind):
    make, event, _ = CASES[kind]
    plain, conditional = make(), make(conditional_size=2)
    x = tf.zeros([2, *event])
    wrong = tf.zeros([2, *event[:-1], event[-1] + 1])
    with pytest.raises(ValueError, match="conditional_size=None"):
        plain(x, conditional=tf.zeros([2, 2]))
    with pytest.raises(ValueError, match="`conditional` input of size 2 is required"):
        conditional(x)
    with pytest.raises(ValueError, match="`conditional` input must have last dimension 2"):
        conditional(x, conditional=tf.zeros([2, 3]))
    with pytest.raises(ValueError, match=r"input must have (last dimension 3|event shape)"):
        plain(wrong)


def test_conv_wrong_image_size():
    with pytest.raises(ValueError, match=r"event shape \[4, 4, 2\]"):
        _conv()(tf.zeros([1, 4, 6, 2]))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: MLPConditioner(0, 2), "input_size"),
        (lambda: MLPConditioner(2, 2, hidden_units=(8, -1)), "hidden_units"),
        (lambda: MLPConditioner(2, 2, conditional_size=0), "conditional_size"),
        (lambda: ConvConditioner((4, 4), 2), "input_shape"),
        (lambda: ConvConditioner((4, 4, 2), 2, num_blocks=-1), "num_blocks"),
        (lambda: ConvConditioner((4, 4, 2), 0), "output_channels"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("kind", sorted(CASES))
def test_config_round_trip(kind):
    make, _, _ = CASES[kind]
    layer = make(conditional_size=2, dtype="float64", name="net")
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert [w.shape for w in clone.weights] == [w.shape for w in layer.weights]


@pytest.mark.parametrize("kind", sorted(CASES))
def test_keras_save_and_load(kind, tmp_path):
    make, event, _ = CASES[kind]
    layer = make(conditional_size=2)
    _perturb(layer)
    x, c = keras.Input(event), keras.Input([2])
    model = keras.Model([x, c], list(layer(x, conditional=c)))
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    xs = tf.random.stateless_normal([3, *event], seed=[4, 4])
    cs = tf.random.stateless_normal([3, 2], seed=[4, 5])
    for a, b in zip(restored([xs, cs]), model([xs, cs])):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        assert not np.allclose(a, 0.0)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_num_params_gives_raw_params_zero_at_init(kind):
    make, event, out = CASES[kind]
    layer = make(num_params=5)
    params = layer(tf.random.normal([4, *event]))
    assert params.shape == [4, *event[:-1], out, 5]
    np.testing.assert_array_equal(params, 0.0)
    assert layer.get_config()["num_params"] == 5 and make().get_config()["num_params"] is None
    _perturb(layer)
    x = tf.random.stateless_normal([2, 3, *event], seed=[1, 2])  # any leading dims
    flat = layer(tf.reshape(x, [6, *event]))
    np.testing.assert_allclose(tf.reshape(layer(x), flat.shape), flat, rtol=1e-5)
    clone = type(layer).from_config(layer.get_config())
    assert [w.shape for w in clone.weights] == [w.shape for w in layer.weights]


def test_params_layout_is_element_major():
    """Output column `i * P + j` is element `i`, param `j`: one element's params are adjacent."""
    layer = MLPConditioner(1, 2, hidden_units=(4,), num_params=3)
    _, bias = layer.output_layer.weights
    bias.assign(np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(layer(tf.zeros([1, 1]))[0], [[0, 1, 2], [3, 4, 5]])


def test_bad_num_params():
    with pytest.raises(ValueError, match="num_params"):
        MLPConditioner(2, 2, num_params=0)
    with pytest.raises(TypeError, match="num_params"):
        ConvConditioner((4, 4, 2), 2, num_params="two")
