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

import numpy as np
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
    assert counts["cases"] == 400 and counts["error"] > 150 and counts["ok"] > 20


_ALIASES = {  # other words a message may use for the argument
    "flow": ["factory", "flow"],
    "image_shape": ["image_shape", "shape"],
    "event_shape": ["event_shape", "shape", "dimensions"],
}
