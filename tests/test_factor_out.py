import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors import ActNorm, FactorOut, FlowBijector, Invertible1x1Conv, Squeeze
from tfp_flows.testing import check_bijector, perturb_variables

tfb, tfd = tfp.bijectors, tfp.distributions


class _ConditionalShift(FlowBijector):
    """Test helper: y = x + shift * scale, with `shift` a call-time keyword argument."""

    def __init__(self, name="cond_shift", with_layer=False):
        layer = keras.layers.Dense(1, dtype="float64") if with_layer else None
        super().__init__(
            forward_min_event_ndims=1, keras_layers=[layer] if layer else [], name=name
        )
        self.layer = layer
        self.scale = self._add_variable("scale", tf.constant(1.5, tf.float64))

    def _forward_and_log_det(self, x, shift):
        return x + shift * self.scale, tf.zeros(tf.shape(x)[:-1], x.dtype)

    def _inverse_and_log_det(self, y, shift):
        return y - shift * self.scale, tf.zeros(tf.shape(y)[:-1], y.dtype)


def _x(shape, seed=0):
    return tf.random.stateless_normal(shape, seed=[seed, 1], dtype=tf.float64)


def test_forward_inverse_and_log_det_follow_the_definition():
    inner = Invertible1x1Conv(3, seed=1, dtype=tf.float64)
    perturb_variables(inner, 0.3)
    bij = FactorOut(inner, split=2)
    x = _x([4, 2, 2, 5])
    y = bij.forward(x)
    np.testing.assert_array_equal(y[..., :2], x[..., :2])
    np.testing.assert_allclose(y[..., 2:], inner.forward(x[..., 2:]), rtol=1e-12)
    np.testing.assert_allclose(bij.inverse(tf.identity(y)), x, rtol=1e-10, atol=1e-12)
    expected = inner.forward_log_det_jacobian(x[..., 2:], event_ndims=3)
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=3), expected)
    np.testing.assert_allclose(bij.inverse_log_det_jacobian(y, event_ndims=3), -expected)


def test_constant_jacobian_inner_gives_full_batch_shape_log_det():
    bij = FactorOut(tfb.Scale(tf.constant(2.0, tf.float64)), split=1, event_ndims=1)
    x = _x([2, 3, 4])
    ldj = bij.forward_log_det_jacobian(x, event_ndims=1)
    assert ldj.shape == [2, 3]
    np.testing.assert_allclose(ldj, np.full([2, 3], 3 * np.log(2.0)))


def test_kwargs_reach_the_inner_bijector():
    x = _x([3, 4])
    direct = FactorOut(_ConditionalShift(), split=1, event_ndims=1)
    y = direct.forward(x, shift=2.0)
    np.testing.assert_allclose(y[:, 1:], x[:, 1:] + 3.0)
    np.testing.assert_allclose(direct.inverse(tf.identity(y), shift=2.0), x)
    # An inner chain routes by sub-bijector name; an outer chain routes to the FactorOut by name.
    inner = tfb.Chain([_ConditionalShift(name="cs"), tfb.Scale(tf.constant(2.0, tf.float64))])
    outer = tfb.Chain([FactorOut(inner, split=2, event_ndims=1, name="fo")])
    y = outer.forward(x, fo={"cs": {"shift": -1.0}})
    np.testing.assert_allclose(y[:, 2:], 2.0 * x[:, 2:] - 1.5)
    np.testing.assert_allclose(outer.inverse(tf.identity(y), fo={"cs": {"shift": -1.0}}), x)


def test_variables_and_keras_objects_of_the_whole_inner_tree():
    deep = _ConditionalShift(name="deep", with_layer=True)
    deep.layer.build((None, 1))
    shallow = _ConditionalShift(name="shallow")
    nested = FactorOut(tfb.Chain([deep]), split=1, event_ndims=1)
    bij = FactorOut(tfb.Chain([shallow, nested]), split=1, event_ndims=1)
    assert {id(v) for v in bij.trainable_variables} >= {id(deep.scale), id(shallow.scale)}
    expected = shallow.keras_variables + deep.keras_variables
    assert {id(v) for v in bij.keras_variables} == {id(v) for v in expected}
    assert len(bij.keras_variables) == 2  # each once, although `nested` also reaches `deep`
    assert bij.keras_layers == [deep.layer]
    assert nested.keras_layers == [deep.layer]


def test_bad_split_or_shape_changing_inner_are_clear_errors():
    with pytest.raises(ValueError, match="split"):
        FactorOut(tfb.Identity(), split=0)
    with pytest.raises(ValueError, match=r"`split`=4 must be in \[1, C - 1\] for the 4 channels"):
        FactorOut(tfb.Identity(), split=4).forward(tf.zeros([1, 2, 2, 4]))
    with pytest.raises(ValueError, match="must preserve the shape"):
        FactorOut(Squeeze(), split=2).forward(tf.zeros([1, 4, 4, 6]))
    with pytest.raises(TypeError, match=r"tfb\.Bijector"):
        FactorOut(lambda t: t, split=1)


def _level(channels, inner=None, name="level"):
    steps = [
        ActNorm(channels, dtype=tf.float64, name=f"{name}_actnorm"),
        Invertible1x1Conv(channels, seed=channels, dtype=tf.float64, name=f"{name}_conv"),
    ]
    if inner is not None:
        steps.append(FactorOut(inner, split=channels // 2, name=f"{name}_factor_out"))
    return tfb.Chain([tfb.Invert(Squeeze()), *steps, Squeeze()], name=name)


def test_two_level_multi_scale_flow_is_one_correct_bijector():
    flow = _level(4, inner=_level(8, name="level_2"), name="level_1")
    data = _x([16, 8, 8, 1], seed=3) * 2.0 + 1.0
    flow.inverse(data)  # initialises the ActNorms
    perturb_variables(flow, 0.1)
    assert len(flow.trainable_variables) == 10
    # Round trips and log-dets against autodiff on the 64-dim event (jit: see the registry).
    check_bijector(flow, data[:6], modes=("eager",), sample_shapes=(), check_gradients=False)
    # The channels factored out at level 1 do not depend on level 2: in the data direction the
    # chain squeezes, runs ActNorm and the conv (`bijectors[1:3]`, in list order), then splits.
    expected = Squeeze().forward(data)
    for step in flow.bijectors[1:3]:
        expected = step.inverse(expected)
    z = Squeeze().forward(flow.inverse(tf.identity(data)))
    np.testing.assert_allclose(z[..., :2], expected[..., :2], rtol=1e-10, atol=1e-12)
    assert not np.allclose(z[..., 2:], expected[..., 2:])  # the rest went through level 2
