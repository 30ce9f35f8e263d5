import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors import ActNorm, initialize_actnorm

tfb, tfd = tfp.bijectors, tfp.distributions


def test_init_gives_zero_mean_unit_std_per_channel():
    data = tf.random.stateless_normal([64, 4, 4, 3], seed=[1, 1]) * [1.0, 5.0, 0.1] + [3, -2, 7]
    bij = ActNorm(3)
    z = bij.inverse(data)
    assert bool(bij.is_initialized)
    np.testing.assert_allclose(tf.reduce_mean(z, [0, 1, 2]), 0.0, atol=1e-4)
    np.testing.assert_allclose(tf.math.reduce_std(z, [0, 1, 2]), 1.0, atol=1e-4)
    # A second batch does not re-initialise.
    before = bij.shift.numpy().copy()
    bij.inverse(data * 2.0 + 1.0)
    np.testing.assert_array_equal(bij.shift.numpy(), before)


def test_zero_variance_channel_is_finite():
    data = tf.concat([tf.fill([32, 1], 4.0), tf.random.normal([32, 1])], axis=-1)
    bij = ActNorm(2, event_ndims=1)
    z = bij.inverse(data)
    assert np.all(np.isfinite(z.numpy()))
    assert np.all(np.isfinite(bij.inverse_log_det_jacobian(data, event_ndims=1).numpy()))
    np.testing.assert_allclose(z[:, 0], 0.0)
    np.testing.assert_allclose(tf.math.reduce_std(z[:, 1]), 1.0, atol=1e-4)


def test_log_det_counts_every_position():
    bij = ActNorm(2)
    bij.inverse(tf.random.normal([8, 3, 5, 2]) * 2.0)
    expected = 3 * 5 * tf.reduce_sum(bij.log_scale)
    got = bij.forward_log_det_jacobian(tf.zeros([1, 3, 5, 2]), event_ndims=3)
    np.testing.assert_allclose(got, [expected], rtol=1e-6)


def test_sampling_before_init_warns_and_does_not_initialise():
    bij = ActNorm(2, event_ndims=1)
    with pytest.warns(UserWarning, match="before its data-dependent initialisation"):
        bij.forward(tf.random.normal([4, 2]))
    assert not bool(bij.is_initialized)


def test_init_inside_tf_function_and_xla():
    for jit in (False, True):
        bij = ActNorm(2, event_ndims=1)
        data = tf.random.stateless_normal([128, 2], seed=[3, jit]) * 4.0 + 1.0
        z = tf.function(bij.inverse, jit_compile=jit)(data)
        assert bool(bij.is_initialized)
        np.testing.assert_allclose(tf.math.reduce_std(z, 0), 1.0, atol=1e-4)


def test_initialize_actnorm_runs_the_chain_in_data_order():
    first, second = ActNorm(2, event_ndims=1, name="a"), ActNorm(2, event_ndims=1, name="b")
    flow = tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(0.0, 1.0), [2]), tfb.Chain([first, tfb.Scale(3.0), second])
    )
    data = tf.random.stateless_normal([256, 2], seed=[4, 4]) * 10.0 - 5.0
    layers = initialize_actnorm(flow, data)
    assert set(layers) == {first, second}
    assert all(bool(layer.is_initialized) for layer in layers)
    # `second` is applied first in the data direction, `first` sees its output divided by 3.
    z = flow.bijector.inverse(data)
    np.testing.assert_allclose(tf.math.reduce_std(z, 0), 1.0, atol=1e-3)


def test_initialized_flag_survives_checkpoint_restore(tmp_path):
    bij = ActNorm(2, event_ndims=1)
    bij.inverse(tf.random.normal([64, 2]) * 3.0)
    path = tf.train.Checkpoint(bijector=bij).save(str(tmp_path / "ckpt"))
    restored = ActNorm(2, event_ndims=1)
    tf.train.Checkpoint(bijector=restored).restore(path).assert_consumed()
    assert bool(restored.is_initialized)
    np.testing.assert_array_equal(restored.log_scale.numpy(), bij.log_scale.numpy())
    restored.inverse(tf.random.normal([64, 2]) * 100.0)  # must not re-initialise
    np.testing.assert_array_equal(restored.log_scale.numpy(), bij.log_scale.numpy())


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match="expected 3 channels"):
        ActNorm(3).inverse(tf.zeros([2, 4, 4, 2]))
    with pytest.raises(ValueError, match="num_channels"):
        ActNorm(0)


def test_non_finite_input_with_validate_args():
    bij = ActNorm(2, event_ndims=1, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-finite"):
        bij.inverse(tf.constant([[1.0, np.nan], [0.0, 1.0]]))
    assert not bool(bij.is_initialized)


@pytest.mark.parametrize("mode", ["eager", "function", "jit"])
def test_non_finite_batch_does_not_initialise_or_corrupt(mode):
    bij = ActNorm(2, event_ndims=1)
    bad = tf.constant([[1.0, np.nan], [0.0, 1.0], [2.0, np.inf]])
    good = tf.random.stateless_normal([64, 2], seed=[3, 4]) * 2.0 + 1.0
    call = {
        "eager": bij.inverse,
        "function": tf.function(bij.inverse),
        "jit": tf.function(bij.inverse, jit_compile=True),
    }[mode]
    call(bad)
    assert not bool(bij.is_initialized)
    np.testing.assert_array_equal(bij.shift.numpy(), 0.0)
    np.testing.assert_array_equal(bij.log_scale.numpy(), 0.0)
    z = call(good)  # the next finite batch initialises it
    assert bool(bij.is_initialized)
    np.testing.assert_allclose(tf.reduce_mean(z, 0), 0.0, atol=1e-4)
