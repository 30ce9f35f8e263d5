"""Bad input, tried systematically (hypothesis): constructors, log_prob, sample and fit.

Every call either works, or raises `ValueError`, `TypeError` or `tf.errors.InvalidArgumentError`
with a message that names the problem (the argument, or "shape", "dtype", "finite"...). A call
that fails changes no weight. Decisions for non-finite data:

* `dist.log_prob` of a flow (TFP's API, which also runs in graphs and under XLA) propagates
  them row by row: an event with NaN or inf gets a non-finite log-prob, every other event of the
  batch a finite one (and ActNorm does not initialise from non-finite data).
* `DensityModel.log_prob` and `DensityModel.fit` always raise `ValueError` naming them.
* An empty batch `[0, *event_shape]` gives `log_prob` of shape `[0]` and `sample(0)` shape
  `[0, *event_shape]`; `fit` on no data raises `ValueError`.

Each test counts its cases and prints the count (`pytest -s`); the counts are asserted. Each
runs twice (the `hypothesis_profile` fixture, tests/conftest.py): deterministic in the default
run (the same cases on every run and machine), and exploring new random cases, 5x as many, under
`pytest -m slow`. `max_examples` below is a multiple of the profile's (80 or 400).
"""

import collections
import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfp_flows import bijectors as fb
from tfp_flows import flows, nn
from tfp_flows.keras import DensityModel, VariationalModel

ERRORS = (ValueError, TypeError, tf.errors.InvalidArgumentError)
TOTALS = collections.Counter()


def _settings(profile, scale=1.0):
    """The profile's settings with `scale` times its `max_examples`; no health check (these
    tests draw large inputs and call TensorFlow)."""
    return settings(
        profile,
        max_examples=round(scale * profile.max_examples),
        suppress_health_check=list(HealthCheck),
    )


def _snapshot(variables):
    return [np.array(v.numpy(), copy=True) for v in variables]


def _unchanged(variables, before):
    for v, value in zip(variables, before):
        np.testing.assert_array_equal(v.numpy(), value, err_msg=f"{v.name} changed")


def _call(fn, keywords, variables=()):
    """Runs `fn`; returns ("ok", result) or ("error", exc), checking the error's message."""
    before = _snapshot(variables)
    try:
        return "ok", fn()
    except ERRORS as error:
        message = str(error).lower()
        assert any(k.lower() in message for k in keywords), (
            f"{type(error).__name__} does not name the problem (any of {keywords}): {error}"
        )
        _unchanged(variables, before)
        return "error", error


# -- constructors ----------------------------------------------------------------------------

POSITIVE_INT_BAD = [0, -1, -7, 2.5, "3", None, True, float("nan"), float("inf"), [2]]
FLOAT_BAD = [0.0, -1.0, float("nan"), float("inf"), "1", [1.0]]
UNITS_BAD = [[0], [-4], [2.5], ["8"], [True], 8, "8", None]
CHOICE_BAD = ["bogus", 3, None, ""]


def _spec():
    """constructor -> (builder(kwargs), {argument: (valid values, invalid values)})."""
    mlp = lambda: nn.MLPConditioner(1, 1, hidden_units=(4,))  # noqa: E731
    made = lambda: nn.MADE(2, (4,))  # noqa: E731
    return {
        "real_nvp": (
            lambda kw: flows.real_nvp(**kw),
            {
                "event_shape": ([[2], [3], 4], [[1], [0], [-2], "ab", 2.5, [2, "a"], None, []]),
                "num_layers": ([1, 2], POSITIVE_INT_BAD),
                "hidden_units": ([(4,), [3, 3], ()], UNITS_BAD),
                "normalization": (["actnorm", None], ["bogus", 3, ""]),
                "scale": (["exp", "sigmoid", "additive"], CHOICE_BAD),
                "log_scale_clamp": ([3.0, None, 1], FLOAT_BAD),
                "conditional_size": ([None, 2], [0, -1, 2.5, "2", True]),
            },
        ),
        "maf": (
            lambda kw: flows.maf(**kw),
            {
                "dim": ([2, 3], [0, -1, 2.5, "3", None, True, [2, 2]]),
                "num_layers": ([1, 2], POSITIVE_INT_BAD),
                "hidden_units": ([(4,), [3, 3]], UNITS_BAD),
                "activation": (["relu", "tanh"], ["bogus", 3]),
                "log_scale_clamp": ([3.0, None], FLOAT_BAD),
                "conditional_size": ([None, 2], [0, -1, 2.5, "2", True]),
            },
        ),
        "iaf": (
            lambda kw: flows.iaf(**kw),
            {
                "dim": ([2, 3], [0, -1, 2.5, "3", None, True]),
                "num_layers": ([1, 2], POSITIVE_INT_BAD),
                "hidden_units": ([(4,)], UNITS_BAD),
                "log_scale_clamp": ([3.0, None], FLOAT_BAD),
            },
        ),
        "glow": (
            lambda kw: flows.glow(**kw),
            {
                "image_shape": ([[4, 4, 1], [4, 4, 2]], [[4, 4], [3, 4, 1], [0, 4, 1], "x", None]),
                "levels": ([1, 2], POSITIVE_INT_BAD),
                "steps_per_level": ([1], POSITIVE_INT_BAD),
                "filters": ([4], POSITIVE_INT_BAD),
                "coupling": (["affine", "additive", "exp"], CHOICE_BAD),
                "log_scale_clamp": ([3.0], FLOAT_BAD),
            },
        ),
        "MLPConditioner": (
            lambda kw: nn.MLPConditioner(**kw),
            {
                "input_size": ([1, 3], POSITIVE_INT_BAD),
                "output_size": ([1, 2], POSITIVE_INT_BAD),
                "hidden_units": ([(4,), ()], UNITS_BAD),
                "conditional_size": ([None, 2], [0, -1, 2.5, "2", True]),
            },
        ),
        "ConvConditioner": (
            lambda kw: nn.ConvConditioner(**kw),
            {
                "input_shape": ([(2, 2, 1), [4, 2, 3]], [(2, 2), (0, 2, 1), (2, -2, 1), "x", 3]),
                "output_channels": ([1, 2], POSITIVE_INT_BAD),
                "filters": ([4], POSITIVE_INT_BAD),
                "num_blocks": ([0, 1], [-1, 2.5, "1", None, True]),
                "conditional_size": ([None, 2], [0, -1, 2.5, "2", True]),
            },
        ),
        "MADE": (
            lambda kw: nn.MADE(**kw),
            {
                "event_size": ([1, 3], POSITIVE_INT_BAD),
                "hidden_units": ([(4,), [3, 3]], UNITS_BAD),
                "num_params": ([1, 2], POSITIVE_INT_BAD),
                "input_order": (["left-to-right", "random"], ["bogus", [1, 1, 1], [0, 1, 2], 3]),
                "hidden_degrees": (["equal", "random"], CHOICE_BAD),
                "conditional_size": ([None, 2], [0, -1, 2.5, "2", True]),
            },
        ),
        "ActNorm": (
            lambda kw: fb.ActNorm(**kw),
            {
                "num_channels": ([1, 3], POSITIVE_INT_BAD),
                "event_ndims": ([1, 3], POSITIVE_INT_BAD),
                "epsilon": ([1e-6, 0.0], [-1.0, float("nan"), "a"]),
            },
        ),
        "Invertible1x1Conv": (
            lambda kw: fb.Invertible1x1Conv(**kw),
            {
                "num_channels": ([1, 3], POSITIVE_INT_BAD),
                "lu": ([True, False], ["yes", None, 2]),
                "event_ndims": ([1, 3], POSITIVE_INT_BAD),
                "seed": ([0, None], [-1, 2.5, "s"]),
            },
        ),
        "Squeeze": (lambda kw: fb.Squeeze(**kw), {"factor": ([1, 2], POSITIVE_INT_BAD)}),
        "FactorOut": (
            lambda kw: fb.FactorOut(**kw),
            {
                "bijector": ([fb.Squeeze()], [None, "squeeze", mlp()]),
                "split": ([1, 2], POSITIVE_INT_BAD),
                "event_ndims": ([3, 1], POSITIVE_INT_BAD),
            },
        ),
        "AffineCoupling": (
            lambda kw: fb.AffineCoupling(**kw),
            {
                "conditioner": ([mlp()], [None, "net", 3]),
                "mask": (["half"], CHOICE_BAD),
                "split": ([None, 1], [0, -1, 2.5, "1", True]),
                "scale": (["exp", "sigmoid", "additive"], CHOICE_BAD),
                "log_scale_clamp": ([3.0, None], FLOAT_BAD),
            },
        ),
        "MaskedAutoregressiveFlow": (
            lambda kw: fb.MaskedAutoregressiveFlow(**kw),
            {
                "conditioner": ([made()], [None, "net", nn.MADE(2, (4,), num_params=3)]),
                "log_scale_clamp": ([3.0, None], FLOAT_BAD),
            },
        ),
        "InverseAutoregressiveFlow": (
            lambda kw: fb.InverseAutoregressiveFlow(**kw),
            {
                "conditioner": ([made()], [None, "net"]),
                "log_scale_clamp": ([3.0, None], FLOAT_BAD),
            },
        ),
        "DensityModel": (
            lambda kw: DensityModel(**kw),
            {
                "flow": (["maf"], ["bogus", 3, None]),
                "flow_kwargs": ([{"dim": 2, "num_layers": 1, "hidden_units": [4]}], ["x", 3]),
                "num_bins": ([None, 256], [0, -1, 2.5, "256", True]),
            },
        ),
        "VariationalModel": (
            lambda kw: VariationalModel(**kw),
            {
                "flow": (["iaf"], ["bogus", 3]),
                "flow_kwargs": ([{"dim": 2, "num_layers": 1, "hidden_units": [4]}], ["x"]),
                "target_log_prob_fn": ([lambda z: -tf.reduce_sum(z**2, -1)], [None, 3]),
                "num_samples": ([4], POSITIVE_INT_BAD),
            },
        ),
    }


SPEC = _spec()


def test_constructors_accept_valid_and_name_bad_arguments(hypothesis_profile):
    counts = collections.Counter()
    config = _settings(hypothesis_profile, 5)

    @config
    @given(st.data())
    def run(data):
        name = data.draw(st.sampled_from(sorted(SPEC)), label="constructor")
        build, arguments = SPEC[name]
        kwargs = {
            arg: data.draw(st.sampled_from(good), label=arg) for arg, (good, _) in arguments.items()
        }
        bad_arg = data.draw(st.sampled_from([None, *sorted(arguments)]), label="bad argument")
        if bad_arg is not None:
            kwargs[bad_arg] = data.draw(st.sampled_from(arguments[bad_arg][1]), label="bad value")
        counts["cases"] += 1
        if bad_arg is None:
            build(kwargs)  # valid arguments must work
            counts["ok"] += 1
            return
        outcome, _ = _call(lambda: build(kwargs), [bad_arg, *_ALIASES.get(bad_arg, [])])
        counts[outcome] += 1

    run()
    print(f"constructors: {dict(counts)}")
    TOTALS["constructors"] = counts["cases"]
    n = config.max_examples
    assert counts["cases"] >= n and counts["error"] > 0.375 * n and counts["ok"] > 0.05 * n


_ALIASES = {  # other words a message may use for the argument
    "flow": ["factory", "flow"],
    "image_shape": ["image_shape", "shape"],
    "event_shape": ["event_shape", "shape", "dimensions"],
}


# -- log_prob, sample, fit ---------------------------------------------------------------------

DTYPES_BAD = [np.int32, np.int64, np.bool_, np.complex64, np.float16]  # float16: tensors only


def _flows():
    dists = {
        "maf": flows.maf(3, num_layers=2, hidden_units=[8]),
        "real_nvp": flows.real_nvp([4], num_layers=2, hidden_units=[8]),
        "glow": flows.glow((4, 4, 1), levels=1, steps_per_level=1, filters=4),
        "cond_maf": flows.maf(2, num_layers=1, hidden_units=[8], conditional_size=2),
    }
    for name, dist in dists.items():
        shape = [16, *dist.event_shape]
        x = tf.random.stateless_normal(shape, seed=[1, 2])
        kwargs = {}
        if name.startswith("cond"):
            kwargs = {"bijector_kwargs": flows.conditional_kwargs(dist, tf.zeros([16, 2]))}
        dist.log_prob(x, **kwargs)  # initialise ActNorm
    return dists


def _data(data, event_shape, label):
    """(array, expected problem or None, rows that are non-finite)."""
    kind = data.draw(
        st.sampled_from(["valid", "valid", "nonfinite", "shape", "dtype"]), label=label
    )
    batch = data.draw(st.integers(0, 4), label=f"{label} batch")
    shape = [batch, *event_shape]
    x = np.asarray(
        data.draw(
            st.lists(
                st.floats(-3, 3, width=32), min_size=math.prod(shape), max_size=math.prod(shape)
            ),
            label=f"{label} values",
        ),
        np.float32,
    ).reshape(shape)
    if kind == "nonfinite" and batch:
        row = data.draw(st.integers(0, batch - 1), label=f"{label} row")
        x.reshape(batch, -1)[row, 0] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return x, "finite", row
    if kind == "shape":
        rank = data.draw(st.integers(0, 5), label=f"{label} rank")
        bad = data.draw(st.lists(st.integers(0, 5), min_size=rank, max_size=rank))
        if tuple(bad[-len(event_shape) :]) == tuple(event_shape) and len(bad) >= len(event_shape):
            bad[-1] += 1
        return np.zeros(bad, np.float32), "shape", None
    if kind == "dtype":
        dtype = data.draw(st.sampled_from(DTYPES_BAD), label=f"{label} dtype")
        as_tensor = data.draw(st.booleans())
        if as_tensor:
            return tf.constant(x.astype(dtype)), "dtype", None
        # A NumPy array of another float precision is cast (`check_data`); a tensor is refused.
        return x.astype(dtype), (None if dtype is np.float16 else "dtype"), None
    return x, None, None


@pytest.fixture(scope="module")
def fuzz_flows():
    return _flows()


def test_log_prob_and_sample_on_random_input(fuzz_flows, hypothesis_profile):
    counts = collections.Counter()
    models = {n: DensityModel(d) for n, d in fuzz_flows.items()}
    config = _settings(hypothesis_profile)

    @config
    @given(st.data())
    def run(data):
        name = data.draw(st.sampled_from(sorted(fuzz_flows)), label="flow")
        dist, model = fuzz_flows[name], models[name]
        event = list(dist.event_shape)
        x, problem, row = _data(data, event, "x")
        variables = dist.variables
        counts["cases"] += 1
        c, c_problem, c_kind = None, None, None
        if name.startswith("cond"):
            c_kind = data.draw(st.sampled_from(["ok", "ok", "none", "size", "nan", "dtype"]))
            n = x.shape[0] if x.ndim else 0
            c = {
                "ok": np.zeros([n, 2], np.float32),
                "none": None,
                "size": np.zeros([n, 3], np.float32),
                "nan": np.full([n, 2], np.nan, np.float32),
                "dtype": np.zeros([n, 2], np.int32),
            }[c_kind]
            c_problem = {"ok": None, "none": "condition", "size": "shape", "nan": "finite"}.get(
                c_kind, "dtype"
            )
            if c_kind == "nan" and n == 0:
                c_problem = None
        words = {
            None: [],
            "finite": ["finite", "nan"],
            "shape": ["shape", "rank", "dimension"],
            "dtype": ["dtype"],
            "condition": ["condition"],
        }
        keywords = [
            *words[problem],
            *(words[c_problem] if c is not None or c_kind == "none" else []),
        ]
        problem = problem or c_problem
        # The Keras model: every problem is an error; valid data gives finite values of shape [B].
        outcome, result = _call(lambda: model.log_prob(x, c), keywords, variables)
        counts[f"model {outcome}"] += 1
        if problem is None:
            assert outcome == "ok", result
            assert result.shape == x.shape[: x.ndim - len(event)] and np.isfinite(result).all()
        else:
            assert outcome == "error", (problem, result)
        # The raw distribution (TFP's API): non-finite rows stay theirs (unconditional flows;
        # `c is None` is also the "none" case of a conditional one, which `log_prob` refuses).
        if problem == "finite" and not name.startswith("cond"):
            before = _snapshot(variables)
            lp = dist.log_prob(x).numpy()
            _unchanged(variables, before)
            assert not np.isfinite(lp[row]) and np.isfinite(np.delete(lp, row)).all()
            counts["raw nonfinite rows"] += 1
        # sample
        n = data.draw(st.sampled_from([0, 1, 3, -1, 2.5, "2", None]), label="n")
        if c is None and problem is None:
            outcome, samples = _call(
                lambda: model.sample(n, seed=1), ["n", "shape", "sample"], variables
            )
            counts[f"sample {outcome}"] += 1
            if n in (0, 1, 3):
                assert outcome == "ok", samples
                assert samples.shape == (n, *event) and np.isfinite(samples).all()

    run()
    print(f"log_prob/sample: {dict(counts)}")
    n = config.max_examples
    assert counts["cases"] >= n
    assert counts["model error"] > 0.1875 * n and counts["model ok"] > 0.1875 * n


def test_fit_on_random_data_trains_or_refuses_without_touching_weights(hypothesis_profile):
    counts = collections.Counter()
    model = DensityModel("maf", {"dim": 2, "num_layers": 1, "hidden_units": [4]})
    model.compile(optimizer="adam", run_eagerly=True)  # no tracing per new shape
    config = _settings(hypothesis_profile, 0.5)

    @config
    @given(st.data())
    def run(data):
        x, problem, _ = _data(data, [2], "x")
        counts["cases"] += 1
        if problem is None and x.shape[0] == 0:
            problem = "empty"
        words = {
            "finite": ["finite"],
            "shape": ["shape"],
            "dtype": ["dtype"],
            "empty": ["empty", "no data", "0 examples", "samples"],
        }
        if problem is None:
            model.fit(x, batch_size=2, epochs=1, verbose=0)
            assert all(np.isfinite(v.numpy()).all() for v in model.trainable_variables)
            counts["ok"] += 1
            return
        outcome, result = _call(
            lambda: model.fit(x, batch_size=2, epochs=1, verbose=0),
            words[problem],
            [v.value for v in model.weights],
        )
        assert outcome == "error", (problem, result)
        counts["error"] += 1

    run()
    print(f"fit: {dict(counts)}")
    n = config.max_examples
    assert counts["cases"] >= n and counts["error"] > 0.25 * n and counts["ok"] > 0.125 * n


def _normal(z):
    return -0.5 * tf.reduce_sum(z**2, -1)


VI_TARGETS = {  # name -> (target, what must happen: "ok", "shape" error, or "non-finite" stop)
    "normal": (_normal, "ok"),
    "float64": (lambda z: tf.cast(_normal(z), tf.float64), "ok"),
    "per-dimension": (lambda z: -0.5 * z**2, "shape"),
    "scalar": (lambda z: tf.reduce_sum(_normal(z)), "shape"),
    "nan": (lambda z: _normal(z) + np.nan, "non-finite"),
    "-inf off the support": (
        lambda z: tf.where(z[..., 0] > 0.0, _normal(z), tf.constant(-np.inf)),
        "non-finite",
    ),
}
STEPS_BAD = [0, -1, 2.5, "2", True, float("nan")]


def test_variational_fit_trains_or_refuses_without_touching_weights(hypothesis_profile):
    """`VariationalModel` with good and bad targets and fit arguments, under `StopOnNonFinite`.

    A bad target's output shape is refused when the model is built; a bad `steps_per_epoch` by
    `fit`, before any step; a target that returns NaN or -inf stops training with
    `NonFiniteLossError` naming the target, and the weights are those of the last finite step
    (here: the initial ones when the first step already fails).
    """
    from tfp_flows.diagnostics import NonFiniteLossError, StopOnNonFinite

    counts = collections.Counter()
    config = _settings(hypothesis_profile, 0.625)

    @config
    @given(st.data())
    def run(data):
        name = data.draw(st.sampled_from(sorted(VI_TARGETS)), label="target")
        steps = data.draw(
            st.one_of(st.sampled_from([1, 2]), st.sampled_from([None, *STEPS_BAD])),
            label="steps_per_epoch",
        )
        num_samples = data.draw(st.sampled_from([1, 3, 16]), label="num_samples")
        target, expected = VI_TARGETS[name]
        if name == "-inf off the support":
            num_samples = 16  # fewer could all land in the support: P = 2^-num_samples a step
        counts["cases"] += 1
        build = lambda: VariationalModel(  # noqa: E731
            "iaf",
            {"dim": 2, "num_layers": 1, "hidden_units": [4]},
            target_log_prob_fn=target,
            num_samples=num_samples,
        )
        if expected == "shape":
            assert _call(build, ["shape"])[0] == "error"
            counts["target refused"] += 1
            return
        model = build()
        model.compile(optimizer="adam", run_eagerly=True)
        before = _snapshot(model.trainable_variables)
        fit = lambda: model.fit(  # noqa: E731
            steps_per_epoch=steps, epochs=2, verbose=0, callbacks=[StopOnNonFinite()]
        )
        if type(steps) is not int or steps not in (1, 2):  # True == 1 in Python
            assert _call(fit, ["steps_per_epoch"], model.weights)[0] == "error"  # all of them
            counts["steps refused"] += 1
        elif expected == "ok":
            fit()
            assert all(np.isfinite(v.numpy()).all() for v in model.weights)
            assert int(model.optimizer.iterations.numpy()) == 2 * steps
            counts["ok"] += 1
        else:
            with pytest.raises(NonFiniteLossError) as info:
                fit()
            assert info.value.finding.bijector == "<target>", str(info.value)
            assert info.value.step == 1, str(info.value)
            _unchanged(model.trainable_variables, before)
            counts["stopped"] += 1

    run()
    print(f"VariationalModel.fit: {dict(counts)}")
    # 162 cases are all there are (6 targets x 9 steps x 3 sizes): hypothesis stops there.
    every_case = len(VI_TARGETS) * (2 + 1 + len(STEPS_BAD)) * 3
    assert counts["cases"] >= min(config.max_examples, every_case)
    assert min(counts[k] for k in ("target refused", "steps refused", "ok", "stopped")) >= 3


# -- empty batches of images -------------------------------------------------------------------


def _image_flows():
    return {
        "glow": flows.glow((4, 4, 2), levels=2, steps_per_level=1, filters=4),
        "real_nvp": flows.real_nvp(
            (4, 4, 2), num_scales=2, steps_per_scale=1, filters=4, num_blocks=1
        ),
        "real_nvp_conditional": flows.real_nvp(
            (4, 4, 2), num_scales=1, steps_per_scale=1, filters=4, num_blocks=1, conditional_size=3
        ),
    }


@pytest.mark.parametrize("name", sorted(_image_flows()))
@pytest.mark.parametrize("mode", ["eager", "function", "function_any_batch", "jit_compile"])
def test_empty_batch_of_images(name, mode):
    """`log_prob` of `[0, H, W, C]`, `sample(0)` and `experimental_sample_and_log_prob(0)` of the
    image flows, whose conditioners are convolutions. TensorFlow's oneDNN `Conv2D` (on by default
    on x86) returned its input's shape for an empty batch, so these raised "Incompatible shapes"
    (regression; `TF_ENABLE_ONEDNN_OPTS=0` did not). A non-empty batch gives the same values as
    eagerly, through each of these paths."""
    dist = _image_flows()[name]
    event = list(dist.event_shape)
    x = tf.random.stateless_normal([3, *event], seed=[3, 4])

    def kwargs(n):
        if not name.endswith("conditional"):
            return {}
        return {"bijector_kwargs": flows.conditional_kwargs(dist, tf.ones([n, 3]))}

    expected = dist.log_prob(x, **kwargs(3)).numpy()  # also initialises ActNorm
    log_prob = lambda x: dist.log_prob(x, **kwargs(tf.shape(x)[0]))  # noqa: E731
    sample = lambda n: dist.sample(n, seed=[5, 6], **kwargs(n))  # noqa: E731
    both = lambda n: dist.experimental_sample_and_log_prob(n, seed=[5, 6], **kwargs(n))  # noqa: E731
    if mode == "function_any_batch":  # batch size unknown until run time
        log_prob = tf.function(log_prob, input_signature=[tf.TensorSpec([None, *event])])
        sample, both = tf.function(sample), tf.function(both)
    elif mode != "eager":
        log_prob, sample, both = (
            tf.function(f, jit_compile=mode == "jit_compile") for f in (log_prob, sample, both)
        )

    assert log_prob(tf.zeros([0, *event])).shape == [0]
    np.testing.assert_allclose(log_prob(x), expected, rtol=1e-4, atol=1e-4)
    assert sample(0).shape == [0, *event]
    samples, lp = both(0)
    assert samples.shape == [0, *event] and lp.shape == [0]
    samples, lp = both(2)
    assert samples.shape == [2, *event] and np.isfinite(lp).all()


def test_conv_conditioner_on_empty_batches():
    net = nn.ConvConditioner((4, 4, 2), 3, filters=8, num_blocks=1, conditional_size=2)
    for leading in ([0], [0, 5], [5, 0]):
        shift, log_scale = net(tf.zeros([*leading, 4, 4, 2]), tf.zeros([*leading, 2]))
        assert shift.shape == log_scale.shape == [*leading, 4, 4, 3]
    call = tf.function(
        lambda x, c: net(x, c),
        input_signature=[tf.TensorSpec([None, 4, 4, 2]), tf.TensorSpec([None, 2])],
    )
    shift, _ = call(tf.zeros([0, 4, 4, 2]), tf.zeros([0, 2]))
    assert shift.shape == [0, 4, 4, 3]


# -- the deterministic profile ---------------------------------------------------------------


def test_deterministic_cases_do_not_depend_on_imported_modules(tmp_path):
    """Hypothesis also draws constants from the source of the local modules imported so far;
    tests/conftest.py turns that off, or the cases would depend on which tests ran before in the
    worker (and on running one file or the suite). Importing a module full of constants must not
    change the cases."""
    import importlib.util
    import sys

    def cases():
        drawn = []

        @_settings(settings.get_profile("deterministic"))
        @given(st.data())
        def run(data):
            x, problem, row = _data(data, [3], "x")
            drawn.append((np.asarray(x).tolist(), problem, row))

        run()
        return repr(drawn)

    before = cases()
    path = tmp_path / "constants_module.py"
    path.write_text(
        "A = [0.1234, 1.5, -2.75, 2.9, 0.0625, -1.0e-3, 1, 2, 3, 4, 0.333, -0.5, 2.25]\n"
    )
    spec = importlib.util.spec_from_file_location("constants_module", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        after = cases()
    finally:
        del sys.modules[spec.name]
    assert after == before
