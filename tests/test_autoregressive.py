"""MAF and IAF: agreement with TFP's MAF, one-pass density/sampling paths, conditioning, errors."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors import (
    InverseAutoregressiveFlow,
    MaskedAutoregressiveFlow,
    PerformanceWarning,
)
from tfp_flows.nn import MADE
from tfp_flows.testing import perturb_variables

tfb, tfd = tfp.bijectors, tfp.distributions
D = 4


def _made(dtype="float64", **kwargs):
    made = MADE(D, (8, 8), dtype=dtype, **kwargs)
    perturb_variables(_Holder(made), 0.4, seed=2)
    return made


class _Holder(tf.Module):
    def __init__(self, layer):
        self.variables_ = [w.value for w in layer.weights]


class _Counting:
    """Wraps a conditioner and counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def _points(n=6, seed=0, dtype=tf.float64):
    return tf.random.stateless_normal([n, D], seed=[seed, 1], dtype=dtype)


def _base(dtype=tf.float64):
    return tfd.MultivariateNormalDiag(tf.zeros(D, dtype))


@pytest.mark.parametrize("order", ["left-to-right", [2, 4, 1, 3]])
def test_maf_matches_tfp_maf(order):
    made = _made(input_order=order)

    def shift_and_log_scale(y):
        return tuple(tf.unstack(made(y), axis=-1))

    ours = MaskedAutoregressiveFlow(shift_and_log_scale, log_scale_clamp=None)
    theirs = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale)
    x, y = _points(seed=1), _points(seed=2)
    for method, arg in (
        ("forward", x),
        ("inverse", y),
        ("forward_log_det_jacobian", x),
        ("inverse_log_det_jacobian", y),
    ):
        kw = {"event_ndims": 1} if "log_det" in method else {}
        a = getattr(ours, method)(tf.identity(arg), **kw)
        b = getattr(theirs, method)(tf.identity(arg), **kw)
        assert not np.allclose(a, 0.0)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=method)


def test_params_tensor_and_tuple_conditioners_agree_and_clamp_applies():
    made = _made()
    as_tuple = MaskedAutoregressiveFlow(lambda y: tuple(tf.unstack(made(y), axis=-1)))
    as_made = MaskedAutoregressiveFlow(made)
    y = _points() * 3.0
    np.testing.assert_allclose(as_made.inverse(y), as_tuple.inverse(tf.identity(y)), rtol=1e-12)
    # The clamp bounds the log-scale: |ildj| < D * clamp even for huge raw log-scales.
    for raw, clamp in ((100.0, 2.0), (0.5, 2.0), (0.5, None)):
        bij = MaskedAutoregressiveFlow(lambda y, r=raw: (y, r + 0.0 * y), log_scale_clamp=clamp)
        ildj = bij.inverse_log_det_jacobian(y, event_ndims=1).numpy()
        s = raw if clamp is None else clamp * np.tanh(raw / clamp)
        np.testing.assert_allclose(ildj, -D * s, rtol=1e-12)


def test_maf_log_prob_calls_the_made_once_and_sampling_d_times():
    counting = _Counting(_made())
    dist = tfd.TransformedDistribution(_base(), MaskedAutoregressiveFlow(counting))
    dist.log_prob(_points())
    assert counting.calls == 1
    counting.calls = 0
    dist.sample(3, seed=1)
    assert counting.calls == D  # one pass per dimension (run eagerly: the loop is unrolled)


def test_maf_forward_log_det_needs_no_extra_pass():
    counting = _Counting(_made())
    maf = MaskedAutoregressiveFlow(counting)
    x = _points()
    y = maf.forward(x)
    fldj = maf.forward_log_det_jacobian(x, event_ndims=1)  # served from the cache
    assert counting.calls == D
    np.testing.assert_allclose(fldj, -maf.inverse_log_det_jacobian(tf.identity(y), 1), rtol=1e-10)


def test_iaf_sample_and_log_prob_is_one_pass_and_correct():
    counting = _Counting(_made())
    iaf = InverseAutoregressiveFlow(counting)
    dist = tfd.TransformedDistribution(_base(), iaf)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)  # no D-pass inverse here
        samples, log_prob = dist.experimental_sample_and_log_prob(5, seed=3)
    assert counting.calls == 1
    with pytest.warns(PerformanceWarning, match=rf"{D} sequential.*experimental_sample_and_log"):
        expected = dist.log_prob(tf.identity(samples))  # new points: D passes
    assert counting.calls == 1 + D
    np.testing.assert_allclose(log_prob, expected, rtol=1e-9)
    # The warning is given once per bijector.
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        dist.log_prob(tf.identity(samples))


def test_iaf_is_the_inverse_of_a_maf():
    made = _made()
    iaf, maf = InverseAutoregressiveFlow(made), MaskedAutoregressiveFlow(made)
    assert isinstance(iaf.bijector, MaskedAutoregressiveFlow)
    assert type(iaf).__mro__[1] is type(tfb.Invert(maf))  # what tfb.Invert gives for a MAF
    x = _points()
    np.testing.assert_allclose(iaf.forward(x), maf.inverse(tf.identity(x)), rtol=1e-12)
    np.testing.assert_allclose(
        iaf.forward_log_det_jacobian(x, 1), maf.inverse_log_det_jacobian(tf.identity(x), 1)
    )


def test_variables_and_keras_layers_are_reachable():
    made = MADE(D, (8,))
    ids = sorted(id(w.value) for w in made.weights)
    for bij in (MaskedAutoregressiveFlow(made), InverseAutoregressiveFlow(made)):
        assert sorted(id(v) for v in bij.trainable_variables) == ids
        assert bij.keras_layers == [made]
        assert bij.keras_variables == []
        # Also through the containers a flow lives in (a composite IAF would hide them here).
        chain = tfb.Chain([bij, tfb.Shift(tf.Variable(1.0))])
        assert len(chain.trainable_variables) == len(ids) + 1
        dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(D)), bij)
        assert sorted(id(v) for v in dist.trainable_variables) == ids


def test_a_new_flow_is_the_identity():
    x = _points()
    for bij in (
        MaskedAutoregressiveFlow(MADE(D, dtype="float64")),
        InverseAutoregressiveFlow(MADE(D, dtype="float64")),
    ):
        np.testing.assert_array_equal(bij.forward(x), x)
        np.testing.assert_array_equal(bij.forward_log_det_jacobian(tf.identity(x), 1), 0.0)


def test_conditional_maf():
    made = _made(conditional_size=2)
    dist = tfd.TransformedDistribution(_base(), MaskedAutoregressiveFlow(made))
    y = _points()
    c1, c2 = tf.constant([0.0, 1.0], tf.float64), tf.constant([2.0, -1.0], tf.float64)
    lp1 = dist.log_prob(y, bijector_kwargs={"conditional": c1})
    lp2 = dist.log_prob(y, bijector_kwargs={"conditional": c2})
    assert np.all(np.abs(lp1 - lp2) > 1e-6)
    # A batch of conditions, one per point, matches the per-point results.
    per_point = dist.log_prob(y, bijector_kwargs={"conditional": tf.stack([c1] * 3 + [c2] * 3)})
    np.testing.assert_allclose(per_point, np.concatenate([lp1[:3], lp2[3:]]), rtol=1e-10)
    samples = dist.sample(4, seed=2, bijector_kwargs={"conditional": c1})
    assert samples.shape == (4, D)
    with pytest.raises(ValueError, match=r"conditional=\.\.\."):
        dist.log_prob(y)


@pytest.mark.parametrize("d,loops", [(4, 0), (40, 8)])
def test_forward_compiles_under_xla_with_static_trip_counts(d, loops):
    """D = 4: four one-pass blocks, unrolled; D = 40: eight blocks of five passes, eight loops."""
    made = MADE(d, (8, 8), dtype="float32")
    perturb_variables(_Holder(made), 0.4, seed=2)
    maf = MaskedAutoregressiveFlow(made)
    x = tf.constant(np.random.default_rng(0).normal(size=(5, d)), tf.float32)
    fwd = tf.function(lambda t: maf.forward(t), jit_compile=True)
    np.testing.assert_allclose(fwd(x), maf.forward(tf.identity(x)), rtol=1e-5, atol=1e-5)
    text = fwd.experimental_get_compiler_ir(x)(stage="hlo")
    assert text.count(" while(") == loops, text.count(" while(")


def test_wrong_shapes_raise():
    with pytest.raises(ValueError, match=r"\[\.\.\., 4, 2\]"):
        MaskedAutoregressiveFlow(lambda y: tf.stack([y, y, y], axis=-1)).inverse(_points())
    with pytest.raises(ValueError, match=r"shift must have shape \[\.\.\., 4\]"):
        MaskedAutoregressiveFlow(lambda y: (y[..., :2], y)).inverse(_points())
    with pytest.raises(ValueError, match="size 4"):
        MaskedAutoregressiveFlow(MADE(D, (8,))).inverse(tf.zeros([2, 3]))
    with pytest.raises(ValueError, match="num_params"):
        MaskedAutoregressiveFlow(MADE(D, (8,), num_params=3))
    with pytest.raises(ValueError, match="log_scale_clamp"):
        MaskedAutoregressiveFlow(MADE(D, (8,)), log_scale_clamp=0.0)


@pytest.mark.parametrize("d", [1, 3, 17])
@pytest.mark.parametrize("hidden_degrees", ["equal", "random"])
@pytest.mark.parametrize("conditional_size,transformer", [(None, "affine"), (3, "spline")])
def test_blocked_sampling_passes_equal_full_passes(
    d, hidden_degrees, conditional_size, transformer
):
    """The forward's blocks of cut-down networks give what D passes of the full MADE give."""
    num_params = 2 if transformer == "affine" else 3 * 8 - 1
    made = MADE(
        d,
        (7, 5),
        num_params,
        input_order="random",
        hidden_degrees=hidden_degrees,
        conditional_size=conditional_size,
        seed=1,
        dtype="float64",
    )
    perturb_variables(_Holder(made), 0.4, seed=2)
    maf = MaskedAutoregressiveFlow(made, transformer=transformer)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(6, d)))
    kwargs = {}
    if conditional_size:
        kwargs["conditional"] = tf.constant(rng.normal(size=(6, conditional_size)))
    plan = made.sequential_plan(8)
    assert sum(passes for passes, _ in plan) == d and len(plan) == min(d, 8)
    assert all(u >= 1 for _, units in plan for u in units)
    assert plan[-1][1] == ((7, 5) if d > 1 else (1, 1))  # D = 1: its output sees no unit
    y, log_det = maf._forward_and_log_det(x, **kwargs)
    maf._SEQUENTIAL_BLOCKS = 1  # one block: the full network in every pass
    y_full, log_det_full = maf._forward_and_log_det(x, **kwargs)
    np.testing.assert_allclose(y, y_full, atol=1e-12)
    np.testing.assert_allclose(log_det, log_det_full, atol=1e-12)
    x_back, inverse_log_det = maf._inverse_and_log_det(y, **kwargs)  # one full pass
    np.testing.assert_allclose(x_back, x, atol=1e-10)
    np.testing.assert_allclose(inverse_log_det, -log_det, atol=1e-10)


def test_sequential_weights_relabel_the_units_and_a_cut_network_is_exact_where_needed():
    made = MADE(5, (9, 6), hidden_degrees="random", input_order="random", seed=3, dtype="float64")
    perturb_variables(_Holder(made), 0.4, seed=4)
    x = tf.constant(np.random.default_rng(1).normal(size=(4, 5)))
    weights = made.sequential_weights()
    np.testing.assert_allclose(made(x, weights=weights), made(x), atol=1e-12)
    full, end = made(x), 0
    for passes, units in made.sequential_plan(3):
        end += passes  # this block's passes need the outputs of degree <= end
        cut = made(x, weights=made.truncated_weights(weights, units))
        assert cut.shape == full.shape
        needed = made.input_order <= end
        np.testing.assert_allclose(
            tf.boolean_mask(cut, needed, axis=1), tf.boolean_mask(full, needed, axis=1), atol=1e-12
        )
        if end < 5:  # the cut network is smaller, so some later outputs differ
            assert units != made.hidden_units
            assert np.abs(tf.boolean_mask(cut - full, ~needed, axis=1)).max() > 1e-6


def test_blocked_forward_gives_every_variable_a_dense_finite_gradient():
    """Random hidden degrees are sorted by a permutation; no variable gets a sparse gradient."""
    made = MADE(5, (8, 6), hidden_degrees="random", input_order="random", seed=3)
    perturb_variables(_Holder(made), 0.3, seed=4)
    maf = MaskedAutoregressiveFlow(made)
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 5)), tf.float32)
    with tf.GradientTape() as tape:
        y, log_det = maf._forward_and_log_det(x)
        loss = tf.reduce_sum(y**2) + tf.reduce_sum(log_det)
    grads = tape.gradient(loss, maf.trainable_variables)
    assert len(grads) == 6
    for v, g in zip(maf.trainable_variables, grads):
        assert isinstance(g, tf.Tensor), (v.name, type(g).__name__)
        assert np.isfinite(g.numpy()).all() and np.abs(g.numpy()).max() > 0, v.name


def test_unfixed_dimensions_cannot_poison_later_passes():
    """Without a clamp, a dimension's value before its own pass can overflow; it is zeroed.

    MADE without hidden layers, D = 2: log_scale_2 = 100 - 100 * y_1. At y = 0 (the first pass)
    that is 100, so y_2 = 0.5 * e^100 = inf in float32; the final y_1 = 1 makes it 0, y_2 = 0.5.
    Kept as inf, y_2 would reach the second pass's matmul as inf * 0 (masked) = NaN.
    """
    made = MADE(2, (), dtype="float32")
    kernel, bias = made.weights
    k = np.zeros([2, 4], np.float32)  # columns: (shift_1, log_scale_1, shift_2, log_scale_2)
    k[0, 3] = -100.0
    kernel.assign(k)
    bias.assign([0.0, 0.0, 0.0, 100.0])
    maf = MaskedAutoregressiveFlow(made, log_scale_clamp=None)
    y, log_det = maf._forward_and_log_det(tf.constant([[1.0, 0.5]]))
    np.testing.assert_allclose(y, [[1.0, 0.5]], atol=1e-5)
    np.testing.assert_allclose(log_det, [0.0], atol=1e-4)


# -- validate_args: the conditioner's autoregressive structure -----------------------------------


def _dense_conditioner():
    """A Keras network with the right output shape `[..., D, 2]`; each output sees every input."""
    return keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(2 * D), keras.layers.Reshape((D, 2))]
    )


@pytest.mark.filterwarnings("ignore::tfp_flows.bijectors.PerformanceWarning")
@pytest.mark.parametrize("cls", [MaskedAutoregressiveFlow, InverseAutoregressiveFlow])
@pytest.mark.parametrize("method", ["forward", "inverse"])
def test_validate_args_refuses_a_conditioner_that_is_not_autoregressive(cls, method):
    bij = cls(_dense_conditioner(), validate_args=True)
    with pytest.raises(ValueError, match=r"not autoregressive.* dimension 0 depend on input 0"):
        getattr(bij, method)(_points(dtype=tf.float32))
    # Without the check, the MAF's log-det is silently wrong: the Jacobian is not triangular.
    maf = MaskedAutoregressiveFlow(_dense_conditioner())
    x = _points(dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = maf.inverse(x)
    _, autodiff = tf.linalg.slogdet(tape.batch_jacobian(y, x))
    assert np.abs(maf.inverse_log_det_jacobian(tf.identity(x), 1) - autodiff).max() > 0.1


def test_validate_args_names_a_dependency_cycle_and_checks_under_tf_function():
    def swap(y):  # the shift of dimension 0 sees input 3 and that of 3 sees input 0
        shift = tf.concat([y[..., 3:], tf.zeros_like(y[..., 1:3]), y[..., :1]], axis=-1)
        return shift, None

    bij = MaskedAutoregressiveFlow(swap, validate_args=True)
    with pytest.raises(ValueError, match=r"dimension 0 depend on input 3.*cycle 0 -> 3 -> 0"):
        tf.function(bij.inverse)(_points())  # the probe runs eagerly, at trace time


def test_validate_args_accepts_autoregressive_conditioners_and_probes_once():
    made = _made(input_order=[2, 4, 1, 3], conditional_size=2)
    c = tf.constant([[0.5, -1.0]], tf.float64)
    counting = _Counting(lambda y, conditional: made(y, conditional=conditional))
    for conditioner in (made, counting):  # a MADE (its input_order), any callable (no cycle)
        bij = MaskedAutoregressiveFlow(conditioner, validate_args=True)
        y = bij.forward(_points(), conditional=c)
        bij.inverse(tf.identity(y), conditional=c)
    assert counting.calls == 1 + D + 1  # one probe, D forward passes, one inverse pass
    # A MADE is checked against its own input_order: here its output mask was edited.
    made = _made(input_order=[2, 4, 1, 3])
    made._kernel_masks[-1] = tf.ones_like(made._kernel_masks[-1])
    with pytest.raises(
        ValueError, match=r"dimension 0 \(degree 2 in the MADE.s `input_order`\) depend on input \d"
    ):
        MaskedAutoregressiveFlow(made, validate_args=True).inverse(_points())


# -- the conditioner's protocol: any transformer, the block plan, the input order ---------------


class _Planned:
    """A MADE behind a plain callable that plans its own passes (duck-typed, not a MADE)."""

    def __init__(self, made):
        self.made, self.input_order, self.calls = made, made.input_order, []

    def __call__(self, y, weights=None, tag=None):
        self.calls.append(tag)
        return self.made(y, weights=weights)

    def sequential_blocks(self, max_blocks):
        blocks = self.made.sequential_blocks(max_blocks)
        return [(p, {**kw, "tag": b}) for b, (p, kw) in enumerate(blocks)]


def test_maf_follows_the_block_plan_of_any_conditioner_that_has_one():
    made = _made(input_order=[2, 4, 1, 3])
    planned = _Planned(made)
    x = _points()
    maf = MaskedAutoregressiveFlow(planned)
    maf._SEQUENTIAL_BLOCKS = 2
    np.testing.assert_allclose(
        maf.forward(x),
        MaskedAutoregressiveFlow(made).forward(tf.identity(x)),
        atol=1e-12,
    )
    plan = [p for p, _ in made.sequential_blocks(2)]
    assert planned.calls == [b for b, p in enumerate(plan) for _ in range(p)]  # block by block
    plain = _Counting(made)  # no plan: D full passes
    MaskedAutoregressiveFlow(plain).forward(x)
    assert plain.calls == D


@pytest.mark.filterwarnings("ignore::tfp_flows.bijectors.PerformanceWarning")
@pytest.mark.parametrize("name", ["affine", "sigmoid", "additive", "spline"])
@pytest.mark.parametrize("cls", [MaskedAutoregressiveFlow, InverseAutoregressiveFlow])
def test_every_transformer_by_name(cls, name):
    from tfp_flows.bijectors import transformers

    p = transformers.get(name).num_params
    bij = cls(_made(num_params=p), transformer=name)
    assert bij.bijector.transformer.num_params == p if cls is InverseAutoregressiveFlow else True
    x = _points()
    y = bij.forward(x)
    np.testing.assert_allclose(bij.inverse(tf.identity(y)), x, atol=1e-9)
    assert bij.is_constant_jacobian == (name == "additive")


def test_the_bijectors_do_not_know_about_made():
    """The MAF asks its conditioner (duck-typed), it does not check for a MADE."""
    import pathlib

    import tfp_flows.bijectors

    for path in pathlib.Path(tfp_flows.bijectors.__file__).parent.rglob("*.py"):
        text = path.read_text()
        assert "\nfrom tfp_flows.nn" not in text and "isinstance(made" not in text, path.name
