import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors import Squeeze

tfb = tfp.bijectors


def test_permutation_on_an_arange_image():
    # x[i, j, c] = (4 * i + j) * 2 + c on a 4x4x2 image; each output pixel holds one 2x2 block,
    # pixels in row-major order within the block, channels innermost.
    x = tf.reshape(tf.range(32.0), [1, 4, 4, 2])
    y = Squeeze().forward(x)
    assert y.shape == [1, 2, 2, 8]
    np.testing.assert_array_equal(y[0, 0, 0], [0, 1, 2, 3, 8, 9, 10, 11])
    np.testing.assert_array_equal(y[0, 0, 1], [4, 5, 6, 7, 12, 13, 14, 15])
    np.testing.assert_array_equal(y[0, 1, 0], [16, 17, 18, 19, 24, 25, 26, 27])
    np.testing.assert_array_equal(y[0, 1, 1], [20, 21, 22, 23, 28, 29, 30, 31])
    np.testing.assert_array_equal(Squeeze().inverse(y), x)


@pytest.mark.parametrize("factor, shape", [(2, [3, 6, 4, 3]), (3, [2, 6, 9, 2])])
def test_matches_space_to_depth_and_depth_to_space(factor, shape):
    x = tf.random.stateless_normal(shape, seed=[0, factor])
    bij = Squeeze(factor)
    y = bij.forward(x)
    np.testing.assert_array_equal(y, tf.nn.space_to_depth(x, factor))
    np.testing.assert_array_equal(bij.inverse(tf.identity(y)), tf.nn.depth_to_space(y, factor))
    np.testing.assert_array_equal(bij.inverse(tf.identity(y)), x)


def test_any_leading_dims_and_zero_log_det_of_full_batch_shape():
    x = tf.random.stateless_normal([2, 3, 4, 6, 1], seed=[1, 1], dtype=tf.float64)
    bij = Squeeze()
    y = bij.forward(x)
    assert y.shape == [2, 3, 2, 3, 4]
    np.testing.assert_array_equal(y[1, 2], tf.nn.space_to_depth(x[1, 2][None], 2)[0])
    assert bij.forward(x[0, 0]).shape == [2, 3, 4]  # no batch dims at all
    for ldj in (bij.forward_log_det_jacobian(x, 3), bij.inverse_log_det_jacobian(y, 3)):
        assert ldj.shape == [2, 3] and ldj.dtype == tf.float64
        np.testing.assert_array_equal(ldj, np.zeros([2, 3]))
    assert bij.forward_log_det_jacobian(x[0, 0], 3).shape == []


def test_event_shapes_static_and_dynamic():
    bij = Squeeze(2)
    assert bij.forward_event_shape([5, 4, 6, 3]) == [5, 2, 3, 12]
    assert bij.inverse_event_shape([2, 3, 12]) == [4, 6, 3]
    assert bij.forward_event_shape([None, 4, 3]).as_list() == [None, 2, 12]
    np.testing.assert_array_equal(bij.forward_event_shape_tensor([4, 6, 3]), [2, 3, 12])
    np.testing.assert_array_equal(bij.inverse_event_shape_tensor([7, 2, 3, 12]), [7, 4, 6, 3])
    inverted = tfb.Invert(bij)
    assert inverted.forward_event_shape([2, 3, 12]) == [4, 6, 3]


def test_unknown_spatial_size_in_tf_function():
    bij = Squeeze()
    fn = tf.function(
        lambda t: bij.inverse(bij.forward(t)),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
    )
    x = tf.random.stateless_normal([2, 6, 4, 3], seed=[2, 2])
    np.testing.assert_array_equal(fn(x), x)


def test_invert_squeeze_composes_to_the_identity():
    x = tf.random.stateless_normal([2, 4, 4, 8], seed=[3, 3])
    chain = tfb.Chain([tfb.Invert(Squeeze()), Squeeze()])
    np.testing.assert_array_equal(chain.forward(x), x)
    np.testing.assert_array_equal(tfb.Invert(Squeeze()).forward(x), tf.nn.depth_to_space(x, 2))


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"height 5 .* not divisible by the squeeze factor 2"):
        Squeeze().forward(tf.zeros([1, 5, 4, 1]))
    with pytest.raises(ValueError, match=r"width 4 .* not divisible by the squeeze factor 3"):
        Squeeze(3).forward(tf.zeros([1, 6, 4, 1]))
    with pytest.raises(ValueError, match=r"6 channels .* not divisible by factor\*\*2 = 4"):
        Squeeze().inverse(tf.zeros([1, 2, 2, 6]))
    with pytest.raises(ValueError, match="rank >= 3"):
        Squeeze().forward(tf.zeros([4, 4]))
    with pytest.raises(ValueError, match="factor"):
        Squeeze(0)


def test_sizes_known_only_at_run_time_are_checked_with_clear_errors():
    """In a `tf.function` with unknown sizes, a run-time assertion names the size and factor.

    Under `jit_compile=True` XLA drops run-time assertions, so there the reshape's own error
    remains.
    """
    bij = Squeeze()
    spec = tf.TensorSpec([None, None, None, None], tf.float32)
    forward = tf.function(bij.forward, input_signature=[spec])
    inverse = tf.function(bij.inverse, input_signature=[spec])
    for x, axis in (([1, 5, 4, 3], "height] [5]"), ([2, 4, 7, 1], "width] [7]")):
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            forward(tf.zeros(x))
        assert f"{axis} [of the forward input is not divisible by the squeeze factor 2]" in str(
            error.value
        )
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"channels\] \[6\] \[of the inverse input are not divisible by factor\*\*2 = 4\]",
    ):
        inverse(tf.zeros([1, 2, 2, 6]))
    assert forward(tf.zeros([1, 4, 6, 3])).shape == [1, 2, 3, 12]
