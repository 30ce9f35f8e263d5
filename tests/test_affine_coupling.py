"""AffineCoupling: what the shared property suite does not cover (see tests/registry.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors import AffineCoupling
from tfp_flows.nn import ConvConditioner, MLPConditioner
from tfp_flows.testing import perturb_variables

tfb, tfd = tfp.bijectors, tfp.distributions


def _normal(shape, dtype=tf.float64, seed=0):
    return tf.random.stateless_normal(shape, seed=[seed, 3], dtype=dtype)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_matches_tfp_real_nvp(split):
    net = MLPConditioner(split, 4 - split, hidden_units=(16,), dtype="float64")
    ours = AffineCoupling(net, mask="half", split=split, scale="exp", log_scale_clamp=None)
    perturb_variables(ours, 0.5)

    def shift_and_log_scale_fn(x0, output_units):
        assert output_units == 4 - split
        return net(x0)

    theirs = tfb.RealNVP(num_masked=split, shift_and_log_scale_fn=shift_and_log_scale_fn)
    x = _normal([7, 4])
    y = theirs.forward(x)
    assert not np.allclose(y, x, atol=1e-3)  # the comparison is not between identities
    # tf.identity breaks the bijector caches, so each value is computed from scratch.
    np.testing.assert_allclose(ours.forward(tf.identity(x)), y, rtol=1e-12)
    np.testing.assert_allclose(ours.inverse(tf.identity(x)), theirs.inverse(x), rtol=1e-12)
    for method in ("forward_log_det_jacobian", "inverse_log_det_jacobian"):
        np.testing.assert_allclose(
            getattr(ours, method)(tf.identity(x), event_ndims=1),
            getattr(theirs, method)(tf.identity(x), event_ndims=1),
            rtol=1e-12,
        )


def test_reverse_half_keeps_the_second_slice():
    net = MLPConditioner(3, 2, hidden_units=(16,))
    bij = AffineCoupling(net, mask="half", split=2, reverse=True)
    perturb_variables(bij, 0.5)
    x = _normal([5, 5], tf.float32)
    y = bij.forward(x)
    np.testing.assert_array_equal(y[:, 2:], x[:, 2:])
    assert not np.allclose(y[:, :2], x[:, :2], atol=1e-3)


def test_checkerboard_transforms_only_its_parity():
    x = _normal([3, 4, 4, 2], tf.float32)
    i, j = np.indices([4, 4])
    for reverse in (False, True):
        net = ConvConditioner((4, 4, 2), 2, filters=8, num_blocks=1)
        bij = AffineCoupling(net, mask="checkerboard", reverse=reverse)
        perturb_variables(bij, 0.5)
        kept = (i + j + reverse) % 2 == 0
        changed = np.any(np.abs(bij.forward(x) - x) > 1e-6, axis=(0, 3))
        np.testing.assert_array_equal(changed, ~kept)


def test_additive_is_volume_preserving():
    net = MLPConditioner(2, 2, hidden_units=(16,))
    bij = AffineCoupling(net, scale="additive")
    perturb_variables(bij, 0.5)
    assert bij.is_constant_jacobian
    x = _normal([2, 3, 4], tf.float32)
    assert not np.allclose(bij.forward(x), x, atol=1e-3)
    for ldj in (bij.forward_log_det_jacobian(x, 1), bij.inverse_log_det_jacobian(x, 1)):
        assert ldj.shape == [2, 3]
        np.testing.assert_array_equal(ldj, 0.0)


def test_additive_accepts_a_conditioner_without_log_scale():
    def shift_only(x_a):
        return 2.0 * x_a, None

    bij = AffineCoupling(shift_only, scale="additive")
    x = _normal([4, 4])
    np.testing.assert_allclose(bij.forward(x)[:, 2:], x[:, 2:] + 2.0 * x[:, :2])
    with pytest.raises(ValueError, match="log_scale"):
        AffineCoupling(shift_only, scale="exp").forward(x)


def test_sigmoid_scale_is_glow_s():
    net = MLPConditioner(2, 3, hidden_units=(16,), dtype="float64")
    bij = AffineCoupling(net, scale="sigmoid")
    perturb_variables(bij, 0.5)
    y = _normal([6, 5])
    shift, h = net(y[:, :2])
    expected_ildj = tf.reduce_sum(tf.math.log_sigmoid(h + 2.0), axis=-1)
    np.testing.assert_allclose(bij.inverse_log_det_jacobian(y, 1), expected_ildj, rtol=1e-12)
    x = bij.inverse(tf.identity(y))
    np.testing.assert_allclose(x[:, 2:], (y[:, 2:] - shift) * tf.sigmoid(h + 2.0), rtol=1e-12)


def test_exp_scale_is_soft_clamped():
    def huge(x_a):
        return tf.zeros_like(x_a), 100.0 + tf.zeros_like(x_a)

    x = _normal([3, 4])
    clamped = AffineCoupling(huge, log_scale_clamp=3.0).forward_log_det_jacobian(x, 1)
    np.testing.assert_allclose(clamped, 2 * 3.0 * np.tanh(100.0 / 3.0))
    free = AffineCoupling(huge, log_scale_clamp=None).forward_log_det_jacobian(x, 1)
    np.testing.assert_allclose(free, 200.0)


@pytest.mark.parametrize(
    "mask,make_net,shape",
    [
        ("half", lambda: MLPConditioner(3, 3, hidden_units=(16,)), [4, 6]),
        ("channel", lambda: ConvConditioner((4, 4, 1), 2, filters=8), [2, 4, 4, 3]),
        ("checkerboard", lambda: ConvConditioner((4, 4, 3), 3, filters=8), [2, 4, 4, 3]),
    ],
)
@pytest.mark.parametrize("scale", ["exp", "additive"])
def test_new_coupling_is_the_identity(mask, make_net, shape, scale):
    bij = AffineCoupling(make_net(), mask=mask, scale=scale)
    x = _normal(shape, tf.float32)
    np.testing.assert_array_equal(bij.forward(x), x)
    np.testing.assert_array_equal(bij.inverse(x), x)
    np.testing.assert_array_equal(bij.forward_log_det_jacobian(x, bij.forward_min_event_ndims), 0)


def test_new_sigmoid_coupling_scales_by_sigmoid_of_two():
    bij = AffineCoupling(MLPConditioner(2, 3, hidden_units=(16,)), scale="sigmoid")
    y = _normal([4, 5], tf.float32)
    x = bij.inverse(y)
    np.testing.assert_allclose(x[:, 2:], y[:, 2:] * tf.sigmoid(2.0), rtol=1e-6)
    np.testing.assert_allclose(bij.inverse_log_det_jacobian(y, 1), 3 * np.log(tf.sigmoid(2.0)))


def test_conditional_coupling():
    net = MLPConditioner(2, 2, hidden_units=(16,), conditional_size=3)
    bij = AffineCoupling(net)
    perturb_variables(bij, 0.5)
    x = _normal([5, 4], tf.float32)
    c1, c2 = _normal([5, 3], tf.float32, seed=1), _normal([5, 3], tf.float32, seed=2)
    y1, y2 = bij.forward(x, conditional=c1), bij.forward(x, conditional=c2)
    assert not np.allclose(y1, y2, atol=1e-3)
    np.testing.assert_allclose(bij.inverse(tf.identity(y1), conditional=c1), x, atol=1e-5)
    with pytest.raises(ValueError, match="conditional"):
        bij.forward(x)


def test_conditional_coupling_in_a_transformed_distribution():
    nets = [MLPConditioner(2, 2, hidden_units=(16,), conditional_size=1) for _ in range(2)]
    couplings = [
        AffineCoupling(nets[0], name="c0"),
        AffineCoupling(nets[1], reverse=True, name="c1"),
    ]
    flow = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [4]), tfb.Chain(couplings))
    for bij in couplings:
        perturb_variables(bij, 0.5)
    x = _normal([6, 4], tf.float32)
    c = tf.constant([[1.0]])

    def log_prob(cond):
        kwargs = {"c0": {"conditional": cond}, "c1": {"conditional": cond}}
        return flow.log_prob(x, bijector_kwargs=kwargs)

    # Chain([c0, c1]) runs c1 then c0 forward, so log_prob runs c0.inverse then c1.inverse.
    h = couplings[0].inverse(tf.identity(x), conditional=c)
    z = couplings[1].inverse(tf.identity(h), conditional=c)
    ildj = couplings[0].inverse_log_det_jacobian(tf.identity(x), 1, conditional=c)
    ildj += couplings[1].inverse_log_det_jacobian(tf.identity(h), 1, conditional=c)
    expected = tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(z), -1) + ildj
    np.testing.assert_allclose(log_prob(c), expected, rtol=1e-5)
    assert not np.allclose(log_prob(c), log_prob(-c), atol=1e-3)


def test_trainable_variables_are_the_conditioners():
    net = MLPConditioner(2, 2, hidden_units=(16, 16))
    bij = AffineCoupling(net)
    assert bij.keras_layers == [net]
    got = {id(v) for v in bij.trainable_variables}
    assert got == {id(w.value) for w in net.trainable_weights}
    assert len(bij.trainable_variables) == 6


def test_conditioner_of_the_wrong_shape():
    bij = AffineCoupling(MLPConditioner(2, 3, hidden_units=(16,)))  # outputs 3, needs 2
    with pytest.raises(ValueError, match=r"expected \(5, 2\), got \(5, 3\)"):
        bij.forward(tf.zeros([5, 4]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mask": "stripes"}, "`mask`"),
        ({"scale": "softplus"}, "`scale`"),
        ({"split": 0}, "`split`"),
        ({"mask": "checkerboard", "split": 1}, "`split`"),
        ({"log_scale_clamp": -1.0}, "`log_scale_clamp`"),
        ({"dtype": tf.float64}, "dtype"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AffineCoupling(MLPConditioner(2, 2, hidden_units=(16,)), **kwargs)


def test_unbuilt_keras_conditioner():
    with pytest.raises(ValueError, match="unbuilt Keras layer"):
        AffineCoupling(keras.layers.Dense(4))


@pytest.mark.parametrize(
    "mask,shape,match",
    [
        ("checkerboard", [4, 6], "rank >= 3"),
        ("checkerboard", [2, 3, 4, 2], "even H and W"),
        ("channel", [2, 4, 4, 1], "size >= 2"),
        ("half", [3, 1], "size >= 2"),
    ],
)
def test_bad_input_shapes(mask, shape, match):
    bij = AffineCoupling(lambda x_a: (x_a, x_a), mask=mask)
    with pytest.raises(ValueError, match=match):
        bij.forward(tf.zeros(shape))


def test_split_larger_than_the_event():
    bij = AffineCoupling(lambda x_a: (x_a, x_a), split=4)
    with pytest.raises(ValueError, match=r"`split` must be in \[1, 3\]"):
        bij.forward(tf.zeros([2, 4]))


def test_odd_channel_count():
    net = ConvConditioner((2, 2, 1), 2, filters=8, num_blocks=1, dtype="float64")
    bij = AffineCoupling(net, mask="channel")
    perturb_variables(bij, 0.5)
    x = _normal([3, 2, 2, 3])
    y = bij.forward(x)
    np.testing.assert_array_equal(y[..., :1], x[..., :1])
    np.testing.assert_allclose(bij.inverse(tf.identity(y)), x, rtol=1e-12)


def test_derived_signatures_list_every_argument_once():
    import inspect

    from tfp_flows.bijectors import (
        AffineCoupling,
        Coupling,
        InverseAutoregressiveFlow,
        MaskedAutoregressiveFlow,
    )

    iaf, maf = (
        inspect.signature(InverseAutoregressiveFlow),
        inspect.signature(MaskedAutoregressiveFlow),
    )
    assert list(iaf.parameters) == list(maf.parameters)
    assert iaf.parameters["name"].default == "inverse_autoregressive_flow"
    affine, coupling = inspect.signature(AffineCoupling), inspect.signature(Coupling)
    assert set(affine.parameters) == set(coupling.parameters) - {"transformer"} | {
        "scale",
        "log_scale_clamp",
    }
    bijector = AffineCoupling(MLPConditioner(2, 2, hidden_units=(4,)), reverse=True, split=1)
    assert bijector.parameters["reverse"] and bijector.parameters["split"] == 1
    assert type(bijector.copy()) is AffineCoupling and bijector.copy().parameters["split"] == 1
    with pytest.raises(TypeError, match="transformer"):
        AffineCoupling(MLPConditioner(2, 2, hidden_units=(4,)), transformer="spline")
