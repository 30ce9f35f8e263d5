"""MADE: the autoregressive property (autodiff Jacobian and mask products), conditioning, config."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows.nn import MADE

D = 5
ORDERS = {
    "left-to-right": np.arange(1, D + 1),
    "right-to-left": np.arange(D, 0, -1),
    "given": np.array([3, 5, 1, 2, 4]),
}


def _perturb(layer, scale=0.5, seed=0):
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(w.numpy() + rng.normal(scale=scale, size=w.shape))


def _made(order, **kwargs):
    if order == "random":
        made = MADE(D, (16, 16), 3, input_order="random", seed=3, dtype="float64", **kwargs)
    else:
        made = MADE(D, (16, 16), 3, input_order=ORDERS[order], dtype="float64", **kwargs)
    _perturb(made)
    return made


def _allowed(degrees):
    """allowed[i, d] = 1 iff output d may depend on input i."""
    return (degrees[:, None] < degrees[None, :]).astype(int)


@pytest.mark.parametrize("hidden_degrees", ["equal", "random"])
@pytest.mark.parametrize("order", ["left-to-right", "right-to-left", "random", "given"])
def test_jacobian_is_strictly_triangular_under_the_ordering(order, hidden_degrees):
    made = _made(order, hidden_degrees=hidden_degrees)
    degrees = made.input_order
    if order != "random":
        np.testing.assert_array_equal(degrees, ORDERS[order])
    x = tf.random.stateless_normal([8, D], seed=[1, 2], dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = made(x)  # [8, D, 3]
    jac = tape.batch_jacobian(out, x).numpy()  # [8, D, 3, D]: d out[d, p] / d x[i]
    depends = np.any(jac != 0, axis=(0, 2)).T.astype(int)  # [input i, output d]
    if hidden_degrees == "equal":
        np.testing.assert_array_equal(depends, _allowed(degrees))
    else:  # random hidden degrees may drop paths, but never add one
        assert np.all(depends <= _allowed(degrees))
        assert depends.sum() > 0
    # Sorted by the ordering, the Jacobian is strictly lower triangular (input i -> output d).
    perm = np.argsort(degrees)
    np.testing.assert_array_equal(np.triu(depends[np.ix_(perm, perm)].T), 0)


@pytest.mark.parametrize("order", ["left-to-right", "right-to-left", "random", "given"])
def test_mask_product_is_the_strict_autoregressive_mask(order):
    made = _made(order)
    connectivity = np.linalg.multi_dot(made.masks)  # number of paths from input i to output d
    np.testing.assert_array_equal((connectivity > 0).astype(int), _allowed(made.input_order))
    perm = np.argsort(made.input_order)
    sorted_connectivity = (connectivity[np.ix_(perm, perm)] > 0).astype(int)
    np.testing.assert_array_equal(sorted_connectivity, np.triu(np.ones([D, D], int), k=1))


def test_no_hidden_layers_and_single_dimension():
    made = MADE(3, hidden_units=(), num_params=2, dtype="float64")
    np.testing.assert_array_equal(made.masks[0], _allowed(np.arange(1, 4)))
    one = MADE(1, hidden_units=(4,), dtype="float64")
    _perturb(one)
    x = tf.constant([[0.3], [-2.0]], tf.float64)
    out = one(x)
    assert out.shape == (2, 1, 2)
    np.testing.assert_allclose(out[0], out[1])  # depends on nothing


def test_variables_exist_and_output_starts_at_zero():
    made = MADE(4, (8, 6), 2)
    assert made.built
    assert [tuple(w.shape) for w in made.weights] == [(4, 8), (8,), (8, 6), (6,), (6, 8), (8,)]
    out = made(tf.random.normal([3, 2, 4]))
    assert out.shape == (3, 2, 4, 2)
    np.testing.assert_array_equal(out, 0.0)


def test_output_layout_is_dimension_major():
    """Column d * P + p of the output kernel is param p of dimension d."""
    made = MADE(3, (6,), 2, dtype="float64")
    _perturb(made)
    kernel, bias = made.weights[-2], made.weights[-1]
    out = made(tf.zeros([1, 3], tf.float64)).numpy()[0]
    h = np.maximum(made.weights[1].numpy(), 0)  # hidden activations at x = 0
    masked = kernel.numpy() * np.repeat(made.masks[-1], 2, axis=1)
    np.testing.assert_allclose(out, (h @ masked + bias.numpy()).reshape(3, 2))


def test_conditional_input_changes_the_output_and_is_checked():
    made = MADE(4, (8,), 2, conditional_size=3, dtype="float64")
    _perturb(made)
    x = tf.random.stateless_normal([5, 4], seed=[0, 3], dtype=tf.float64)
    c1, c2 = tf.zeros([5, 3], tf.float64), tf.ones([5, 3], tf.float64)
    out1, out2 = made(x, conditional=c1), made(x, conditional=c2)
    assert np.all(np.abs(out1 - out2) > 0)  # every output sees the condition, including the first
    # A single condition broadcasts against the batch.
    np.testing.assert_allclose(made(x, conditional=tf.ones([3], tf.float64)), out2)
    with pytest.raises(ValueError, match="conditional_size=3"):
        made(x)
    with pytest.raises(ValueError, match=r"conditional.*\[\.\.\., 3\]"):
        made(x, conditional=tf.zeros([5, 2], tf.float64))
    with pytest.raises(ValueError, match="without a conditional input"):
        MADE(4, (8,))(x, conditional=c1)
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        made(tf.zeros([5, 3], tf.float64), conditional=c1)


def test_conditional_jacobian_stays_autoregressive():
    made = MADE(4, (8,), 2, conditional_size=2, dtype="float64")
    _perturb(made)
    x = tf.random.stateless_normal([3, 4], seed=[2, 3], dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = made(x, conditional=tf.ones([3, 2], tf.float64))
    depends = np.any(tape.batch_jacobian(out, x).numpy() != 0, axis=(0, 2)).T.astype(int)
    np.testing.assert_array_equal(depends, _allowed(np.arange(1, 5)))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="input_order"):
        MADE(3, input_order=[1, 2, 2])
    with pytest.raises(ValueError, match="input_order"):
        MADE(3, input_order="backwards")
    with pytest.raises(ValueError, match="hidden_degrees"):
        MADE(3, hidden_degrees="uniform")
    with pytest.raises(ValueError, match="event_size"):
        MADE(0)


def test_config_round_trip_rebuilds_the_same_network():
    for order in ("random", [2, 3, 1]):
        made = MADE(3, (7,), 2, input_order=order, hidden_degrees="random", conditional_size=2)
        config = made.get_config()
        assert config["input_order"] == (order if isinstance(order, str) else [2, 3, 1])
        clone = MADE.from_config(config)
        for a, b in zip(made.degrees, clone.degrees):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(made.masks, clone.masks):
            np.testing.assert_array_equal(a, b)
        assert clone.conditional_size == 2 and clone.hidden_units == (7,)


def test_keras_save_and_load_round_trip(tmp_path):
    import keras

    made = MADE(4, (8,), input_order=[2, 4, 1, 3], hidden_degrees="random", conditional_size=2)
    _perturb(made)
    x, c = keras.Input((4,)), keras.Input((2,))
    model = keras.Model([x, c], made(x, conditional=c))
    path = str(tmp_path / "made.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    inputs = [np.random.default_rng(0).normal(size=(3, 4)), np.ones((3, 2))]
    inputs = [v.astype("float32") for v in inputs]
    assert len(loaded.weights) == len(made.weights)
    np.testing.assert_allclose(loaded(inputs), model(inputs), rtol=1e-6)
    assert not np.allclose(model(inputs), 0.0)


def test_sequential_blocks_cover_the_passes_with_cut_networks():
    """The block plan a MAF asks for: passes summing to D, each block's call kwargs a network
    cut to the units it needs, exact on the outputs of its passes' degrees."""
    made = _made("given", hidden_degrees="random")
    x = tf.constant(np.random.default_rng(0).normal(size=(3, D)))
    blocks = made.sequential_blocks(3)
    assert [p for p, _ in blocks] == [p for p, _ in made.sequential_plan(3)]
    assert sum(p for p, _ in blocks) == D
    full, end = made(x), 0
    for passes, kwargs in blocks:
        end += passes
        assert set(kwargs) == {"weights"}
        needed = made.input_order <= end
        cut = made(x, **kwargs)
        np.testing.assert_allclose(
            tf.boolean_mask(cut, needed, axis=1), tf.boolean_mask(full, needed, axis=1), atol=1e-12
        )
