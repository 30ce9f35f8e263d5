"""Flow factories: structure, shapes, dtypes, conditional routing and argument checks."""

import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.bijectors.chain import _Chain
from tensorflow_probability.python.bijectors.invert import _Invert
from tensorflow_probability.python.distributions.transformed_distribution import (
    _TransformedDistribution,
)

from tfp_flows import bijectors as fb
from tfp_flows import flows
from tfp_flows.testing import perturb_variables

tfb, tfd = tfp.bijectors, tfp.distributions
# TFP hands back its non-composite base classes for bijectors holding Keras networks.
TRANSFORMED, CHAIN = _TransformedDistribution, _Chain

# name -> (factory(**kwargs) with small sizes, data shape)
FACTORIES = {
    "real_nvp": (lambda **k: flows.real_nvp(4, num_layers=3, hidden_units=(8,), **k), [4]),
    "maf": (lambda **k: flows.maf(4, num_layers=2, hidden_units=(8,), **k), [4]),
    "iaf": (lambda **k: flows.iaf(4, num_layers=2, hidden_units=(8,), **k), [4]),
    "real_nvp_image": (
        lambda **k: flows.real_nvp(
            (8, 8, 1), num_scales=2, steps_per_scale=1, filters=8, num_blocks=1, **k
        ),
        [8, 8, 1],
    ),
    "glow": (
        lambda **k: flows.glow((8, 8, 1), levels=2, steps_per_level=1, filters=8, **k),
        [8, 8, 1],
    ),
    "glow_additive": (
        lambda **k: flows.glow(
            (8, 8, 1), levels=2, steps_per_level=1, filters=8, coupling="additive", **k
        ),
        [8, 8, 1],
    ),
    "real_nvp_spline": (
        lambda **k: flows.real_nvp(4, num_layers=3, hidden_units=(8,), transformer="spline", **k),
        [4],
    ),
    "real_nvp_image_spline": (
        lambda **k: flows.real_nvp(
            (4, 4, 1), num_scales=2, steps_per_scale=1, filters=4, transformer="spline", **k
        ),
        [4, 4, 1],
    ),
    "glow_spline": (
        lambda **k: flows.glow(
            (4, 4, 2), levels=1, steps_per_level=2, filters=4, transformer="spline", **k
        ),
        [4, 4, 2],
    ),
}
IDS = list(FACTORIES)
# Smaller image flows (4x4, still two levels) for the many passes of the conditional tests.
SMALL = {
    **FACTORIES,
    "real_nvp_image": (
        lambda **k: flows.real_nvp(
            (4, 4, 1), num_scales=2, steps_per_scale=1, filters=4, num_blocks=1, **k
        ),
        [4, 4, 1],
    ),
    "glow": (
        lambda **k: flows.glow((4, 4, 1), levels=2, steps_per_level=1, filters=4, **k),
        [4, 4, 1],
    ),
    "glow_additive": (
        lambda **k: flows.glow(
            (4, 4, 2), levels=1, steps_per_level=1, filters=4, coupling="additive", **k
        ),
        [4, 4, 2],
    ),
}
PACKAGE_KINDS = (fb.FlowBijector, fb.InverseAutoregressiveFlow, _Invert, tfb.Permute, _Chain)


def _data(shape, n=6, dtype=tf.float32, seed=0):
    return tf.random.stateless_uniform([n, *shape], seed=[seed, 1], dtype=dtype)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", IDS)
def test_factory_builds_a_chain_of_package_bijectors(name):
    make, shape = FACTORIES[name]
    dist = make()
    assert isinstance(dist, TRANSFORMED)
    assert isinstance(dist.bijector, CHAIN)
    assert dist.event_shape == shape
    inner = flows.flow_bijectors(dist)[1:]
    assert inner and all(isinstance(b, PACKAGE_KINDS) for b in inner)
    assert dist.trainable_variables  # variables exist before any call
    x = _data(shape)
    log_prob = dist.log_prob(x)  # also runs ActNorm's data-dependent initialisation
    assert log_prob.shape == [6]
    assert np.all(np.isfinite(log_prob.numpy()))
    samples, sample_log_prob = dist.experimental_sample_and_log_prob(3, seed=1)
    assert samples.shape == [3, *shape]
    np.testing.assert_allclose(
        sample_log_prob, dist.log_prob(tf.identity(samples)), rtol=1e-4, atol=1e-4
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ["real_nvp", "glow"])
def test_float64_flows(name):
    make, shape = FACTORIES[name]
    dist = make(dtype=tf.float64)
    assert dist.dtype == tf.float64
    assert dist.log_prob(_data(shape, dtype=tf.float64)).dtype == tf.float64
    assert dist.sample(2, seed=3).dtype == tf.float64


def test_real_nvp_image_is_multi_scale():
    dist, _ = FACTORIES["real_nvp_image"]
    kinds = [type(b).__name__ for b in flows.flow_bijectors(dist())]
    assert {"AffineCoupling", "Squeeze", "FactorOut", "ActNorm"} <= set(kinds)
    masks = {b.mask for b in flows.flow_bijectors(dist()) if isinstance(b, fb.AffineCoupling)}
    assert masks == {"checkerboard", "channel"}


def _maps(dist):
    """The couplings' maps: the scale of each `AffineCoupling`, the transformer of the others."""
    couplings = [b for b in flows.flow_bijectors(dist) if isinstance(b, fb.Coupling)]
    return {
        b.scale if isinstance(b, fb.AffineCoupling) else type(b.transformer).__name__
        for b in couplings
    }


def test_glow_coupling_kinds():
    def glow(**kwargs):
        return flows.glow((4, 4, 2), levels=1, steps_per_level=2, filters=4, **kwargs)

    assert _maps(glow()) == _maps(glow(coupling="affine")) == {"sigmoid"}
    assert _maps(glow(coupling="additive")) == _maps(glow(transformer="additive")) == {"additive"}
    assert _maps(glow(coupling="exp")) == _maps(glow(scale="exp")) == {"exp"}
    assert _maps(glow(transformer="spline")) == {"RationalQuadratic"}
    additive = glow(transformer="additive")
    couplings = [b for b in flows.flow_bijectors(additive) if isinstance(b, fb.Coupling)]
    assert all(b.is_constant_jacobian for b in couplings)


@pytest.mark.parametrize("shape", [4, (4, 4, 1)], ids=["vector", "image"])
def test_real_nvp_transformers(shape):
    def real_nvp(**kwargs):
        small = dict(num_layers=2, hidden_units=(4,), num_scales=1, steps_per_scale=1, filters=4)
        return flows.real_nvp(shape, **small, **kwargs)

    assert _maps(real_nvp()) == {"exp"}
    assert _maps(real_nvp(scale="additive")) == _maps(real_nvp(transformer="additive"))
    assert _maps(real_nvp(transformer="additive")) == {"additive"}
    assert _maps(real_nvp(scale="sigmoid")) == {"sigmoid"}
    spline = real_nvp(transformer="spline", num_bins=5, spline_bound=4.0)
    maps = [b.transformer for b in flows.flow_bijectors(spline) if isinstance(b, fb.Coupling)]
    assert maps and all((t.num_bins, t.bound) == (5, 4.0) for t in maps)


@pytest.mark.parametrize("name", ["real_nvp_spline", "real_nvp_image_spline", "glow_spline"])
def test_spline_flows_log_prob_is_base_plus_autodiff_log_det(name):
    from tfp_flows.testing import autodiff_log_det_jacobian

    make, shape = FACTORIES[name]
    dist = make(dtype=tf.float64)
    x = _data(shape, n=3, dtype=tf.float64) * 4.0 - 2.0
    dist.log_prob(x)  # ActNorm initialisation
    perturb_variables(dist.bijector, 0.1, seed=2)
    inverse = dist.bijector.inverse
    log_det = autodiff_log_det_jacobian(
        lambda t: inverse(tf.identity(t)), x, event_ndims=len(shape)
    )
    assert np.max(np.abs(log_det.numpy())) > 1e-3  # not the identity
    expected = dist.distribution.log_prob(inverse(tf.identity(x))) + log_det
    np.testing.assert_allclose(dist.log_prob(tf.identity(x)), expected, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(dist.bijector.forward(inverse(tf.identity(x))), x, atol=1e-9)


def test_the_event_shape_has_one_name_and_the_former_ones_still_work():
    assert flows.maf(dim=3, num_layers=1, hidden_units=(4,)).event_shape == [3]
    assert flows.iaf([3], num_layers=1, hidden_units=(4,)).event_shape == [3]
    small = dict(levels=1, steps_per_level=1, filters=4)
    assert flows.glow(image_shape=(4, 4, 1), **small).event_shape == [4, 4, 1]
    assert flows.glow(event_shape=(4, 4, 1), **small).event_shape == [4, 4, 1]


def test_logit_alpha_adds_the_pre_transform_at_the_data_end():
    from tfp_flows.images import LogitTransform

    dist = flows.real_nvp((4, 4, 1), num_scales=1, steps_per_scale=1, filters=4, logit_alpha=0.05)
    assert isinstance(dist.bijector.bijectors[0], LogitTransform)


# -- conditional flows -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", IDS)
def test_conditional_flows(name):
    make, shape = SMALL[name]
    dist = make(conditional_size=3)
    x = _data(shape, n=5)
    flows.condition(dist, tf.zeros([5, 3])).log_prob(x)  # ActNorm initialisation
    perturb_variables(dist.bijector, 0.05, seed=5)  # zero-initialised layers ignore c
    c1 = tf.random.stateless_normal([5, 3], seed=[1, 2])
    c2 = tf.random.stateless_normal([5, 3], seed=[3, 4])
    lp1 = flows.condition(dist, c1).log_prob(x)
    lp2 = dist.log_prob(x, bijector_kwargs=flows.conditional_kwargs(dist, c2))
    assert lp1.shape == [5]
    assert np.all(np.isfinite(lp1.numpy()))
    assert np.max(np.abs(lp1.numpy() - lp2.numpy())) > 1e-3  # the condition matters
    np.testing.assert_allclose(
        flows.condition(dist, c2).log_prob(x), lp2, rtol=1e-5, atol=1e-5
    )  # both routes agree
    # One sample per condition, with batch shape from the condition.
    conditioned = flows.condition(dist, c1)
    assert conditioned.batch_shape == [5]
    samples, log_prob = conditioned.experimental_sample_and_log_prob(2, seed=7)
    assert samples.shape == [2, 5, *shape]
    np.testing.assert_allclose(
        log_prob, conditioned.log_prob(tf.identity(samples)), rtol=1e-4, atol=1e-3
    )
    # Omitting the condition is an error naming it.
    with pytest.raises(ValueError, match="conditional"):
        dist.log_prob(x)


@pytest.mark.parametrize("name", ["real_nvp", "maf", "glow"])
def test_condition_on_an_unconditional_flow_raises(name):
    make, _ = FACTORIES[name]
    dist = make()
    with pytest.raises(ValueError, match="no conditional layers"):
        flows.conditional_kwargs(dist, tf.ones([2, 3]))
    with pytest.raises(ValueError, match="no conditional layers"):
        flows.condition(dist, tf.ones([2, 3]))


def test_conditioned_flow_trains_the_same_variables():
    dist, _ = FACTORIES["real_nvp"]
    dist = dist(conditional_size=2)
    conditioned = flows.condition(dist, tf.ones([2]))
    assert {id(v) for v in conditioned.trainable_variables} == {
        id(v) for v in dist.trainable_variables
    }


# -- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: flows.glow((6, 6, 1), levels=2), "levels"),
        (lambda: flows.glow((8, 8, 1), levels=0), "levels"),
        (lambda: flows.real_nvp((6, 6, 1), num_scales=2), "num_scales"),
        (lambda: flows.real_nvp((5, 4, 1), num_scales=1), "num_scales"),
        (lambda: flows.real_nvp(4, normalization="layernorm"), "normalization"),
        (lambda: flows.glow((8, 8, 1), levels=1, coupling="spline"), "coupling"),
        (lambda: flows.glow((8, 8), levels=1), "event_shape"),
        (lambda: flows.glow(image_shape=(8, 8), levels=1), "image_shape"),
        (lambda: flows.glow((8, 8, 1), image_shape=(8, 8, 1)), "once, as `event_shape` or"),
        (lambda: flows.glow(), "once, as `event_shape` or `image_shape`; got neither"),
        (lambda: flows.glow((4, 4, 1), coupling="additive", transformer="spline"), "either"),
        (lambda: flows.real_nvp(4, transformer="bogus"), "transformer"),
        (lambda: flows.real_nvp(4, scale="bogus"), "scale"),
        (lambda: flows.real_nvp(4, transformer="spline", num_bins=0), "num_bins"),
        (lambda: flows.real_nvp(4, transformer="spline", spline_bound=-1.0), "spline_bound"),
        (lambda: flows.maf(dim=0), "dim"),
        (lambda: flows.maf([3, 2]), r"`event_shape` must be \[D\]"),
        (lambda: flows.maf(3, dim=3), "once"),
        (lambda: flows.real_nvp((8, 8), num_scales=1), "event_shape"),
        (lambda: flows.real_nvp(1), "2 dimensions"),
        (lambda: flows.maf(3, num_layers=0), "num_layers"),
        (lambda: flows.iaf(0), "event_shape"),
        (lambda: flows.real_nvp(4, logit_alpha=0.7), "alpha"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_factories_are_registered_and_keyword_only():
    import inspect

    assert {"real_nvp", "glow", "maf", "iaf"} <= set(flows.FACTORIES)
    for factory in (flows.real_nvp, flows.glow, flows.maf, flows.iaf):
        params = list(inspect.signature(factory).parameters.values())
        assert params[0].name == "event_shape"
        assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
        assert all(p.default is not inspect.Parameter.empty for p in params[1:])


@pytest.mark.parametrize("name", ["real_nvp", "glow", "maf", "iaf"])
def test_every_factory_argument_is_documented(name):
    import inspect

    factory = getattr(flows, name)
    doc = inspect.getdoc(factory)
    assert "\nArgs:\n" in doc, f"{name} has no Args section"
    args = doc.split("\nArgs:\n", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"^  (\w+):", args, flags=re.M))
    missing = [p for p in inspect.signature(factory).parameters if p not in documented]
    assert not missing, f"{name}'s docstring does not document {missing}"


@pytest.mark.parametrize("name", ["real_nvp", "glow", "maf", "iaf"])
def test_a_non_floating_dtype_is_refused_up_front(name):
    make, _ = FACTORIES[name]
    with pytest.raises(ValueError, match=r"`dtype` must be a floating-point dtype.*int32"):
        make(dtype=tf.int32)
    with pytest.raises(TypeError, match=r"`dtype` must be a floating-point dtype.*'floaty'"):
        make(dtype="floaty")


def test_a_condition_of_the_wrong_batch_size_is_a_clear_error():
    dist = flows.maf(2, num_layers=1, hidden_units=(4,), conditional_size=3)
    conditioned = flows.condition(dist, tf.zeros([3, 3]))
    message = r"batch shape \(5,\) of the inverse input .* batch shape \(3,\) of the condition"
    with pytest.raises(ValueError, match=message):
        conditioned.log_prob(tf.zeros([5, 2]))
    with pytest.raises(ValueError, match=message.replace("inverse", "forward")):
        conditioned.bijector.forward(tf.zeros([5, 2]))
    # Shapes that broadcast still work.
    assert conditioned.log_prob(tf.zeros([4, 3, 2])).shape == [4, 3]
    assert flows.condition(dist, tf.zeros([1, 3])).log_prob(tf.zeros([5, 2])).shape == [5]
    # A batch size known only at run time: the same check, as a run-time assertion.
    log_prob = tf.function(conditioned.log_prob, input_signature=[tf.TensorSpec([None, 2])])
    assert log_prob(tf.zeros([3, 2])).shape == [3]
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"batch shape\] \[5\] \[of the inverse input does not broadcast with the batch "
        r"shape\] \[3\] \[of the condition",
    ):
        log_prob(tf.zeros([5, 2]))


@pytest.mark.parametrize("conditional", [False, True])
def test_a_negative_sample_size_is_a_clear_error(conditional):
    dist = flows.maf(
        2, num_layers=1, hidden_units=(4,), conditional_size=3 if conditional else None
    )
    if conditional:
        dist = flows.condition(dist, tf.zeros([3, 3]))
    with pytest.raises(ValueError, match=r"`sample_shape` must not hold negative sizes"):
        dist.sample(-1, seed=0)


def test_glow_takes_real_nvps_shared_arguments_with_their_defaults():
    import inspect

    glow, real_nvp = inspect.signature(flows.glow), inspect.signature(flows.real_nvp)
    shared = ["transformer", "log_scale_clamp", "num_bins", "spline_bound", "logit_alpha"]
    shared += ["pixel_spline_bins", "base", "conditional_size", "dtype"]
    for name in shared:
        assert glow.parameters[name].default == real_nvp.parameters[name].default, name
    assert glow.parameters["scale"].default == "sigmoid"  # glow's own default wins
    assert glow.parameters["name"].default == "glow"
    assert "hidden_units" not in glow.parameters
    with pytest.raises(TypeError, match="hidden_units"):
        flows.glow((4, 4, 1), hidden_units=(8,))
    dist = flows.glow((4, 4, 1), levels=1, steps_per_level=1, filters=4, num_bins=3,
                      transformer="spline", base="diag_normal", dtype=tf.float64)  # fmt: skip
    assert dist.dtype == tf.float64
    spline = next(b for b in flows.flow_bijectors(dist) if hasattr(b, "transformer"))
    assert spline.transformer.num_bins == 3
