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

Each test counts its cases and prints the count (`pytest -s`); the counts are asserted.
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
SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TOTALS = collections.Counter()


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


def test_constructors_accept_valid_and_name_bad_arguments():
    counts = collections.Counter()

    @settings(max_examples=400, **SETTINGS)
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
    assert counts["cases"] >= 400 and counts["error"] > 150 and counts["ok"] > 20


_ALIASES = {  # other words a message may use for the argument
    "flow": ["factory", "flow"],
    "image_shape": ["image_shape", "shape"],
    "event_shape": ["event_shape", "shape", "dimensions"],
}


# -- log_prob, sample, fit ---------------------------------------------------------------------

DTYPES_BAD = [np.int32, np.int64, np.bool_, np.complex64, np.float16]


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
        return (tf.constant(x.astype(dtype)) if as_tensor else x.astype(dtype)), "dtype", None
    return x, None, None


@pytest.fixture(scope="module")
def fuzz_flows():
    return _flows()


def test_log_prob_and_sample_on_random_input(fuzz_flows):
    counts = collections.Counter()
    models = {n: DensityModel(d) for n, d in fuzz_flows.items()}

    @settings(max_examples=80, **SETTINGS)
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
        # The raw distribution (TFP's API): non-finite rows stay theirs.
        if problem == "finite" and c is None:
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
    assert counts["cases"] >= 80 and counts["model error"] > 15 and counts["model ok"] > 15


def test_fit_on_random_data_trains_or_refuses_without_touching_weights():
    counts = collections.Counter()
    model = DensityModel("maf", {"dim": 2, "num_layers": 1, "hidden_units": [4]})
    model.compile(optimizer="adam", run_eagerly=True)  # no tracing per new shape

    @settings(max_examples=40, **SETTINGS)
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
    assert counts["cases"] >= 40 and counts["error"] > 10 and counts["ok"] > 5


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


def test_variational_fit_trains_or_refuses_without_touching_weights():
    """`VariationalModel` with good and bad targets and fit arguments, under `StopOnNonFinite`.

    A bad target's output shape is refused when the model is built; a bad `steps_per_epoch` by
    `fit`, before any step; a target that returns NaN or -inf stops training with
    `NonFiniteLossError` naming the target, and the weights are those of the last finite step
    (here: the initial ones when the first step already fails).
    """
    from tfp_flows.diagnostics import NonFiniteLossError, StopOnNonFinite

    counts = collections.Counter()

    @settings(max_examples=50, **SETTINGS)
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
    assert counts["cases"] >= 50
    assert min(counts[k] for k in ("target refused", "steps refused", "ok", "stopped")) >= 3
