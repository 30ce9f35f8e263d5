import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors import Invertible1x1Conv
from tfp_flows.testing import perturb_variables

tfb = tfp.bijectors


def _perturbed(lu=True, channels=4, seed=4, dtype=tf.float64, **kwargs):
    conv = Invertible1x1Conv(channels, lu=lu, seed=seed, dtype=dtype, **kwargs)
    perturb_variables(conv, 0.3, seed=seed)
    return conv


def _tfp_lower_upper(conv):
    """TFP's packed LU from the raw variables: entries outside the masks must be ignored."""
    lower, upper = conv.lower.numpy(), conv.upper.numpy()
    diag = conv.sign.numpy() * np.exp(conv.log_scale.numpy())
    return tf.constant(np.tril(lower, -1) + np.triu(upper, 1) + np.diag(diag))


def test_lu_variant_matches_tfp_scale_matvec_lu_per_pixel():
    conv = _perturbed()
    perm = conv.permutation.numpy()
    assert not np.array_equal(perm[perm], np.arange(4))  # else perm == its inverse proves less
    reference = tfb.ScaleMatvecLU(_tfp_lower_upper(conv), conv.permutation.numpy())
    x = tf.random.stateless_normal([2, 3, 5, 4], seed=[0, 1], dtype=tf.float64)
    np.testing.assert_allclose(conv.forward(x), reference.forward(x), rtol=1e-10, atol=1e-12)
    y = tf.random.stateless_normal([2, 3, 5, 4], seed=[0, 2], dtype=tf.float64)
    np.testing.assert_allclose(conv.inverse(y), reference.inverse(y), rtol=1e-10, atol=1e-12)
    for method in ("forward_log_det_jacobian", "inverse_log_det_jacobian"):
        got = getattr(conv, method)(x, event_ndims=3)
        expected = getattr(reference, method)(x, event_ndims=3)  # TFP: one broadcasting scalar
        assert got.shape == [2]
        np.testing.assert_allclose(got, np.broadcast_to(expected, [2]), rtol=1e-10)
    # The per-pixel log-det, times H * W.
    per_pixel = reference.forward_log_det_jacobian(x[0, 0, 0], event_ndims=1)
    np.testing.assert_allclose(conv.forward_log_det_jacobian(x, 3), 15 * per_pixel, rtol=1e-10)
    np.testing.assert_allclose(
        conv.weight_matrix,
        tf.linalg.lu_reconstruct(_tfp_lower_upper(conv), conv.permutation),
        rtol=1e-12,
    )


def test_masked_entries_do_not_change_the_map():
    conv = _perturbed()
    x = tf.random.stateless_normal([3, 2, 2, 4], seed=[1, 1], dtype=tf.float64)
    y = conv.forward(x).numpy()
    conv.lower.assign_add(np.triu(np.ones([4, 4])))  # diagonal and above: masked out
    conv.upper.assign_add(np.tril(np.ones([4, 4])))  # diagonal and below: masked out
    np.testing.assert_allclose(conv.forward(tf.identity(x)), y, rtol=1e-12)


def test_plain_and_lu_give_the_same_map_for_the_same_matrix():
    lu = _perturbed(lu=True, seed=7)
    plain = Invertible1x1Conv(4, lu=False, seed=5, dtype=tf.float64)
    plain.weight.assign(lu.weight_matrix)
    x = tf.random.stateless_normal([2, 3, 3, 4], seed=[2, 2], dtype=tf.float64)
    np.testing.assert_allclose(plain.forward(x), lu.forward(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(plain.inverse(x), lu.inverse(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        plain.forward_log_det_jacobian(x, 3), lu.forward_log_det_jacobian(x, 3), rtol=1e-10
    )
    # The log-det is that of W, counted at every one of the 9 positions.
    _, log_abs_det = tf.linalg.slogdet(lu.weight_matrix)
    np.testing.assert_allclose(lu.forward_log_det_jacobian(x, 3), [9 * log_abs_det] * 2)


@pytest.mark.parametrize("lu", [True, False], ids=["lu", "plain"])
def test_init_is_a_seeded_random_rotation(lu):
    conv = Invertible1x1Conv(5, lu=lu, seed=3, dtype=tf.float64)
    w = conv.weight_matrix.numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-12)
    assert not np.allclose(w, np.diag(np.diag(w)))  # not a (signed) identity
    np.testing.assert_allclose(
        conv.forward_log_det_jacobian(tf.ones([1, 2, 2, 5], tf.float64), 3), [0.0], atol=1e-12
    )
    same = Invertible1x1Conv(5, lu=lu, seed=3, dtype=tf.float64).weight_matrix
    other = Invertible1x1Conv(5, lu=lu, seed=4, dtype=tf.float64).weight_matrix
    np.testing.assert_array_equal(same, w)
    assert not np.allclose(other, w)


def test_variables_lu_and_plain():
    assert {v.name.split(":")[0].split("/")[-1] for v in _perturbed().trainable_variables} == {
        "lower",
        "upper",
        "log_scale",
    }
    assert len(Invertible1x1Conv(3, lu=False).trainable_variables) == 1


@pytest.mark.parametrize("lu", [True, False], ids=["lu", "plain"])
def test_inverse_uses_triangular_solves_not_a_matrix_inverse(lu):
    conv = _perturbed(lu=lu, dtype=tf.float32)
    graph = (
        tf.function(conv.inverse)
        .get_concrete_function(tf.TensorSpec([None, 4, 4, 4], tf.float32))
        .graph
    )
    ops = {op.type for op in graph.get_operations()}
    assert "MatrixTriangularSolve" in ops
    assert not ops & {"MatrixInverse", "MatrixSolve", "Lu", "LogMatrixDeterminant"}


def test_vector_event_ndims_1():
    conv = _perturbed(event_ndims=1, channels=3, seed=2)
    x = tf.random.stateless_normal([7, 3], seed=[3, 3], dtype=tf.float64)
    np.testing.assert_allclose(conv.forward(x), x @ tf.transpose(conv.weight_matrix), rtol=1e-12)
    np.testing.assert_allclose(
        conv.forward_log_det_jacobian(x, event_ndims=1),
        np.full([7], np.sum(conv.log_scale.numpy())),
        rtol=1e-12,
    )


def test_checkpoint_restores_the_permutation(tmp_path):
    conv = _perturbed(seed=8)
    path = tf.train.Checkpoint(conv=conv).save(str(tmp_path / "ckpt"))
    restored = Invertible1x1Conv(4, seed=2, dtype=tf.float64)
    tf.train.Checkpoint(conv=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored.permutation, conv.permutation)
    np.testing.assert_allclose(restored.weight_matrix, conv.weight_matrix, rtol=1e-12)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="expected 4 channels"):
        Invertible1x1Conv(4).forward(tf.zeros([2, 3, 3, 3]))
    with pytest.raises(ValueError, match="expected 4 channels"):
        Invertible1x1Conv(4, lu=False, event_ndims=1).inverse(tf.zeros([2, 5]))
    with pytest.raises(ValueError, match="num_channels"):
        Invertible1x1Conv(0)
    with pytest.raises(ValueError, match="event_ndims"):
        Invertible1x1Conv(3, event_ndims=0)
