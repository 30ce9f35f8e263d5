"""Coupling: any transformer, any mask; what the shared property suite does not cover."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from registry import SoftplusAffine
from tfp_flows.bijectors import AffineCoupling, Coupling, MaskedAutoregressiveFlow, transformers
from tfp_flows.nn import MADE, ConvConditioner, MLPConditioner
from tfp_flows.testing import perturb_variables

NETS = {
    "half": (lambda p=None, **kw: MLPConditioner(2, 3, hidden_units=(8,), num_params=p, **kw), [5]),
    "channel": (
        lambda p=None, **kw: ConvConditioner((2, 2, 1), 2, filters=4, num_params=p, **kw),
        [2, 2, 3],
    ),
    "checkerboard": (
        lambda p=None, **kw: ConvConditioner((2, 2, 2), 2, filters=4, num_params=p, **kw),
        [2, 2, 2],
    ),
}


def _normal(shape, dtype=tf.float64, seed=0):
    return tf.random.stateless_normal(shape, seed=[seed, 5], dtype=dtype)


@pytest.mark.parametrize("mask", sorted(NETS))
@pytest.mark.parametrize("scale", ["exp", "sigmoid", "additive"])
def test_affine_coupling_is_coupling_with_the_affine_transformers(mask, scale):
    """AffineCoupling and Coupling share one net: equal outputs, and equal to the formula
    `y_b = x_b exp(s) + t` written out here, with `s` as each scale defines it."""
    make, event = NETS[mask]
    net = make(dtype="float64")
    old = AffineCoupling(net, mask=mask, scale=scale)
    transformer = {"exp": "affine", "sigmoid": "sigmoid", "additive": "additive"}[scale]
    new = Coupling(net, transformer, mask=mask)
    perturb_variables(old, 0.4)
    x = _normal([4, *event])
    for method in ("forward", "inverse"):
        np.testing.assert_array_equal(getattr(old, method)(x), getattr(new, method)(x))
    np.testing.assert_array_equal(
        old.forward_log_det_jacobian(x, len(event)), new.forward_log_det_jacobian(x, len(event))
    )
    assert old.is_constant_jacobian == new.is_constant_jacobian == (scale == "additive")
    if mask != "half":
        return
    shift, h = net(x[:, :2])
    s = {"exp": 3.0 * np.tanh(h / 3.0), "sigmoid": -np.log(1 / (1 + np.exp(-(h + 2.0))))}
    s = s.get(scale, np.zeros_like(h))
    np.testing.assert_allclose(new.forward(x)[:, 2:], x[:, 2:] * np.exp(s) + shift, rtol=1e-12)
    np.testing.assert_allclose(new.forward_log_det_jacobian(x, 1), s.sum(-1), rtol=1e-12)


def test_params_and_shift_log_scale_conditioners_agree():
    net = MLPConditioner(2, 3, hidden_units=(8,), num_params=2, dtype="float64")
    perturb_variables(Coupling(net, "affine"), 0.5)

    def as_tuple(x_a):
        params = net(x_a)
        return params[..., 0], params[..., 1]

    x = _normal([4, 5])
    a, b = Coupling(net, "affine"), Coupling(as_tuple, "affine")
    np.testing.assert_allclose(a.forward(x), b.forward(x), rtol=1e-14)
    np.testing.assert_allclose(a.inverse_log_det_jacobian(x, 1), b.inverse_log_det_jacobian(x, 1))


@pytest.mark.parametrize("mask", sorted(NETS))
@pytest.mark.parametrize("name", ["affine", "additive", "spline", "sigmoid"])
def test_zero_initialised_conditioner_gives_the_identity_except_for_sigmoid(mask, name):
    make, event = NETS[mask]
    transformer = transformers.get(name, num_bins=4, bound=3.0)
    bij = Coupling(make(transformer.num_params), transformer, mask=mask)
    x = _normal([3, *event], tf.float32)
    log_det = bij.forward_log_det_jacobian(x, len(event))
    if name == "sigmoid":  # the inverse scale is sigmoid(2) where transformed
        assert not np.allclose(bij.forward(x), x, atol=1e-3)
        assert np.all(log_det.numpy() > 0)
    else:
        np.testing.assert_allclose(bij.forward(x), x, atol=1e-5)
        np.testing.assert_allclose(log_det, 0.0, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_checkerboard_spline_changes_only_its_parity(reverse):
    spline = transformers.RationalQuadratic(4, bound=3.0)
    net = ConvConditioner((4, 4, 2), 2, filters=4, num_params=spline.num_params)
    bij = Coupling(net, spline, mask="checkerboard", reverse=reverse)
    perturb_variables(bij, 0.5)
    x = _normal([3, 4, 4, 2], tf.float32)
    i, j = np.indices([4, 4])
    kept = (i + j + reverse) % 2 == 0
    changed = np.any(np.abs(bij.forward(x) - x) > 1e-6, axis=(0, 3))
    np.testing.assert_array_equal(changed, ~kept)


def test_a_duck_typed_transformer_plugs_into_coupling_and_maf():
    class Shift:  # implements the protocol without subclassing Transformer
        num_params = 1

        def forward_and_log_det(self, x, params):
            return x + params[..., 0], tf.zeros_like(x)

        def inverse_and_log_det(self, y, params):
            return y - params[..., 0], tf.zeros_like(y)

    shift = Shift()
    assert transformers.get(shift) is shift
    coupling = Coupling(MLPConditioner(2, 2, hidden_units=(8,), num_params=1), shift)
    maf = MaskedAutoregressiveFlow(MADE(4, (8,), num_params=1), transformer=shift)
    x = _normal([3, 4], tf.float32)
    for bij in (coupling, maf):
        perturb_variables(bij, 0.5)
        y = bij.forward(x)
        assert not np.allclose(y, x, atol=1e-3)
        np.testing.assert_allclose(bij.inverse(tf.identity(y)), x, atol=1e-5)
    user = SoftplusAffine()
    assert Coupling(lambda x_a: (x_a, x_a), user).transformer is user


def test_keras_layers_variables_and_conditional_size():
    net = MLPConditioner(2, 2, hidden_units=(8,), num_params=11, conditional_size=3)
    bij = Coupling(net, transformers.RationalQuadratic(4))
    assert bij.keras_layers == [net] and bij.conditional_size == 3
    assert {id(v) for v in bij.trainable_variables} == {id(w.value) for w in net.weights}
    with pytest.raises(ValueError, match=r"conditional input of size 3.*conditional=\.\.\."):
        bij.forward(tf.zeros([2, 4]))


def test_mixed_precision_conditioner_output_is_cast():
    net = MLPConditioner(2, 2, hidden_units=(8,), num_params=2, dtype="mixed_bfloat16")
    bij = Coupling(net, "affine")
    perturb_variables(bij, 0.5)
    assert bij.dtype == tf.float32
    y = bij.forward(_normal([3, 4], tf.float32))
    assert y.dtype == tf.float32


@pytest.mark.parametrize(
    "conditioner,transformer,match",
    [
        (lambda x_a: (x_a, x_a), "spline", "num_params=23"),
        (lambda x_a: tf.stack([x_a, x_a, x_a], -1), "affine", r"shape \[\.\.\., 2, 2\]"),
        (lambda x_a: tf.stack([x_a[..., :1]] * 2, -1), "affine", r"got shape \(3, 1, 2\)"),
        (lambda x_a: (None, x_a), "affine", "no shift"),
    ],
)
def test_wrong_conditioner_outputs_are_named(conditioner, transformer, match):
    with pytest.raises(ValueError, match=match):
        Coupling(conditioner, transformer).forward(tf.zeros([3, 4]))


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        (("cubic",), {}, "`transformer`"),
        ((object(),), {}, "`transformer`"),
        (("affine",), {"mask": "stripes"}, "`mask`"),
        (("affine",), {"mask": "checkerboard", "split": 1}, "`split`"),
        (("affine",), {"dtype": tf.float64}, "dtype"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Coupling(MLPConditioner(2, 2, hidden_units=(8,)), *args, **kwargs)


def test_unbuilt_keras_conditioner():
    with pytest.raises(ValueError, match="unbuilt Keras layer"):
        Coupling(keras.layers.Dense(4), "affine")
