"""The elementwise transformers of the autoregressive flows: the spline against TFP's, and the
spline MAF against the affine one where the spline should win."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import datasets, flows, losses, nn
from tfp_flows.bijectors import MaskedAutoregressiveFlow, transformers


def _params(shape, num_bins, scale, seed):
    shape = [*shape, 3 * num_bins - 1]
    return tf.random.stateless_normal(shape, [seed, 1], dtype=tf.float64) * scale


@pytest.mark.parametrize("num_bins", [2, 5, 16])
def test_spline_matches_tfp_rational_quadratic_spline(num_bins):
    """Value and log-derivative, both directions, against `tfb.RationalQuadraticSpline`
    built from the same parameters; points inside, outside and exactly on the bounds."""
    spline = transformers.RationalQuadratic(num_bins, bound=2.5)
    params = _params([400, 3], num_bins, 1.5, seed=num_bins)
    x = tf.random.stateless_normal([400, 3], [7, num_bins], dtype=tf.float64) * 1.8
    x = tf.tensor_scatter_nd_update(
        x, [[0, 0], [1, 1], [2, 2]], tf.constant([2.5, -2.5, 0.0], x.dtype)
    )
    reference = spline.spline(params)
    assert float(tf.reduce_mean(tf.cast(tf.abs(x) > 2.5, tf.float64))) > 0.1  # tails exercised

    y, log_det = spline.forward_and_log_det(x, params)
    np.testing.assert_allclose(y, reference.forward(x), atol=1e-12)
    np.testing.assert_allclose(
        log_det, reference.forward_log_det_jacobian(x, event_ndims=0), atol=1e-10
    )
    y = tf.identity(y)  # no bijector cache between the directions
    x_back, inverse_log_det = spline.inverse_and_log_det(y, params)
    np.testing.assert_allclose(x_back, reference.inverse(y), atol=1e-9)
    np.testing.assert_allclose(x_back, x, atol=1e-9)
    np.testing.assert_allclose(inverse_log_det, -log_det, atol=1e-9)


def test_spline_is_monotone_identity_outside_and_at_zero_params():
    spline = transformers.RationalQuadratic(8, bound=3.0)
    x = tf.linspace(tf.constant(-5.0, tf.float64), 5.0, 2001)[:, None]
    params = _params([1, 1], 8, 2.0, seed=3) + tf.zeros([2001, 1, 23], tf.float64)
    y, _ = spline.forward_and_log_det(x, params)
    assert np.all(np.diff(y.numpy()[:, 0]) > 0)
    outside = np.abs(x.numpy()[:, 0]) >= 3.0
    np.testing.assert_array_equal(y.numpy()[outside], x.numpy()[outside])
    y0, log_det0 = spline.forward_and_log_det(x, tf.zeros_like(params))
    np.testing.assert_allclose(y0, x, atol=1e-12)
    np.testing.assert_allclose(log_det0, 0.0, atol=1e-12)


def test_spline_gradients_are_finite_at_and_beyond_the_bounds():
    spline = transformers.RationalQuadratic(4, bound=1.0)
    x = tf.constant([[-3.0], [-1.0], [-0.999], [0.0], [1.0], [7.0]], tf.float32)
    params = tf.Variable(tf.random.stateless_normal([6, 1, 11], [0, 2]))
    for direction in (spline.forward_and_log_det, spline.inverse_and_log_det):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, log_det = direction(x, params)
            total = tf.reduce_sum(y) + tf.reduce_sum(log_det)
        grads = tape.gradient(total, [x, params])
        assert all(bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads)


def test_bad_transformer_arguments_are_named():
    with pytest.raises(ValueError, match="transformer"):
        transformers.get("cubic")
    with pytest.raises(ValueError, match="num_bins"):
        transformers.RationalQuadratic(num_bins=1)
    with pytest.raises(ValueError, match="bound"):
        transformers.RationalQuadratic(bound=-1.0)
    with pytest.raises(ValueError, match="num_params"):  # an affine MADE for a spline
        MaskedAutoregressiveFlow(nn.MADE(3, (8,), num_params=2), transformer="spline")
    with pytest.raises(ValueError, match="transformer"):
        flows.maf(2, transformer="quadratic")


@pytest.mark.filterwarnings("ignore::tfp_flows.bijectors.PerformanceWarning")
def test_spline_iaf_samples_with_their_log_prob_in_one_pass():
    """`experimental_sample_and_log_prob` (one pass per layer) against `log_prob` of the same
    points through the D-pass inverse, on a trained-looking (perturbed) spline IAF."""
    from tfp_flows.testing import perturb_variables

    dist = flows.iaf(3, num_layers=2, hidden_units=(16,), transformer="spline", num_bins=6)
    perturb_variables(dist, 0.2, seed=4)
    samples, log_prob = dist.experimental_sample_and_log_prob(256, seed=(1, 2))
    np.testing.assert_allclose(log_prob, dist.log_prob(tf.identity(samples)), atol=2e-4)
    assert float(tf.math.reduce_std(log_prob)) > 0.1  # not the identity flow


def test_spline_maf_beats_affine_maf_on_rings_in_the_same_steps():
    """Four concentric rings: an affine MAF of the same depth and width cannot fold the plane
    into rings, a spline MAF can. Same data, steps, seeds and optimizer; held-out gap to the
    true entropy (the data's log-density is known)."""
    toy = datasets.TOY_DENSITIES["rings"]
    data = tf.constant(toy.sample(20_000, seed=1))
    test = toy.sample(5_000, seed=2)
    gaps = {}
    for transformer in ("affine", "spline"):
        tf.random.set_seed(0)
        dist = flows.maf(
            2,
            num_layers=3,
            hidden_units=(64, 64),
            transformer=transformer,
            num_bins=16,
            spline_bound=4.0,
        )

        def loss(dist=dist):
            idx = tf.random.uniform([256], 0, data.shape[0], tf.int32)
            return -tf.reduce_mean(dist.log_prob(tf.gather(data, idx)))

        losses.minimize(loss, dist.trainable_variables, steps=400, learning_rate=3e-3)
        gaps[transformer] = float(np.mean(toy.log_prob(test) - dist.log_prob(test).numpy()))
    print("rings gap after 400 steps:", gaps)
    assert np.isfinite(gaps["spline"])
    assert gaps["spline"] < 0.6 * gaps["affine"]


# -- the protocol and the four transformers ----------------------------------------------------


def test_get_names_and_instances():
    assert isinstance(transformers.get("affine", log_scale_clamp=None), transformers.Affine)
    assert isinstance(transformers.get("sigmoid"), transformers.SigmoidAffine)
    assert isinstance(transformers.get("additive"), transformers.Additive)
    spline = transformers.get("spline", num_bins=5, bound=2.0)
    assert (spline.num_bins, spline.bound, spline.num_params) == (5, 2.0, 14)
    assert transformers.get(spline) is spline
    assert transformers.get("affine").get_config() == {"name": "affine", "log_scale_clamp": 3.0}
    with pytest.raises(ValueError, match="num_params"):
        transformers.get(object())


@pytest.mark.parametrize("name", ["affine", "sigmoid", "additive", "spline"])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_round_trip_and_elementwise_log_det_against_autodiff(name, dtype):
    transformer = transformers.get(name, log_scale_clamp=2.0, num_bins=4, bound=2.0)
    x = tf.random.stateless_normal([50, 3], [0, 5], dtype=dtype) * 1.5
    params = tf.random.stateless_normal([50, 3, transformer.num_params], [1, 5], dtype=dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y, log_det = transformer.forward_and_log_det(x, params)
    slope = tape.gradient(y, x)  # elementwise: the diagonal of the Jacobian
    tol = 1e-10 if dtype == tf.float64 else 1e-4
    np.testing.assert_allclose(log_det, np.log(slope), atol=tol)
    x_back, inverse_log_det = transformer.inverse_and_log_det(tf.identity(y), params)
    np.testing.assert_allclose(x_back, x, atol=tol * 10)
    np.testing.assert_allclose(inverse_log_det, -log_det, atol=tol)
    assert log_det.shape == x.shape and log_det.dtype == dtype
    assert getattr(transformer, "is_constant_jacobian", False) == (name == "additive")


def test_sigmoid_affine_is_glow_and_not_the_identity_at_zero():
    h = tf.constant([-3.0, 0.0, 4.0], tf.float64)
    params = tf.stack([tf.constant([0.5, -1.0, 2.0], tf.float64), h], axis=-1)
    y = tf.constant([1.0, 2.0, -3.0], tf.float64)
    x, log_det = transformers.SigmoidAffine().inverse_and_log_det(y, params)
    np.testing.assert_allclose(x, (y - params[..., 0]) * tf.sigmoid(h + 2.0), rtol=1e-14)
    np.testing.assert_allclose(log_det, tf.math.log_sigmoid(h + 2.0), rtol=1e-14)
    _, log_det0 = transformers.SigmoidAffine().forward_and_log_det(y, tf.zeros([3, 2], tf.float64))
    np.testing.assert_allclose(log_det0, -np.log(1 / (1 + np.exp(-2.0))), rtol=1e-14)


def test_spline_params_broadcast_over_leading_dims():
    """One spline per dimension `[D, P]`, applied to a batch `[N, D]` (as PixelwiseSpline does)."""
    spline = transformers.RationalQuadratic(4, bound=2.0)
    params = _params([3], 4, 1.0, seed=9)
    x = tf.random.stateless_normal([7, 3], [2, 2], dtype=tf.float64)
    full = tf.broadcast_to(params, [7, 3, 11])
    for method in ("forward_and_log_det", "inverse_and_log_det"):
        got, expected = getattr(spline, method)(x, params), getattr(spline, method)(x, full)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-14)


def test_spline_accepts_float32_params_of_rank_above_five():
    """TensorFlow's CPU softmax refuses float32 inputs of rank > 5; the spline reshapes."""
    spline = transformers.RationalQuadratic(3, bound=2.0)
    x = tf.zeros([2, 3, 2, 2, 2], tf.float32)
    y, _ = spline.forward_and_log_det(x, tf.zeros([2, 3, 2, 2, 2, 8], tf.float32))
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_each_formula_lives_in_one_place():
    """`soft_clamp` and Glow's sigmoid scale are written once in the package."""
    import pathlib

    import tfp_flows
    from tfp_flows import bijectors

    assert bijectors.soft_clamp is transformers.soft_clamp
    sources = [p.read_text() for p in pathlib.Path(tfp_flows.__file__).parent.rglob("*.py")]
    assert sum(s.count("def soft_clamp(") for s in sources) == 1
    assert sum(s.count("tf.math.softplus(-(") for s in sources) == 1
