import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest
from hypothesis import HealthCheck, settings

# -- hypothesis ---------------------------------------------------------------------------------
# "deterministic" (loaded by default): the same cases on every run and every machine, so a green
# run stays green and a failure reproduces. "explore" (the `slow`-marked copies that the
# `hypothesis_profile` fixture makes, `pytest -m slow`): new random cases each run, 5x as many.
# Tests scale their own `max_examples` by the profile's (e.g. `5 * profile.max_examples`).
_COMMON = dict(
    deadline=None,  # TensorFlow calls (tracing, XLA compiles) vary too much in time
    suppress_health_check=[HealthCheck.too_slow],  # timing-based, so not deterministic
)
settings.register_profile(
    "deterministic", derandomize=True, database=None, max_examples=80, **_COMMON
)
settings.register_profile(
    "explore", derandomize=False, max_examples=400, print_blob=True, **_COMMON
)


def _no_constants_from_imported_modules():
    """Hypothesis (>= 6.131) also draws constants it finds in the source of every local module
    imported so far (here: tfp_flows, examples/, benchmarks/). Which those are depends on the
    tests that ran before in the xdist worker, and on running one file or the whole suite, so a
    derandomized test would try different cases from run to run. Its pool of local constants is
    pinned to empty, in both profiles (its built-in pool of boundary values stays); that the
    cases no longer depend on imports is tested in test_fuzz.py, so a release that renames this
    private hook fails that test rather than silently bringing the dependence back."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:  # pragma: no cover (releases before local constants)
        return
    if hasattr(providers, "_get_local_constants"):
        none = Constants()
        providers._get_local_constants = lambda: none


_no_constants_from_imported_modules()


def pytest_configure(config):
    # `--hypothesis-profile NAME` wins; otherwise every hypothesis test is deterministic.
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile("deterministic")


@pytest.fixture(params=["deterministic", pytest.param("explore", marks=pytest.mark.slow)])
def hypothesis_profile(request):
    """The settings a property test runs under: once deterministic (the default run), once
    exploring (`-m slow`)."""
    return settings.get_profile(request.param)


@pytest.fixture(autouse=True)
def _seed():
    # Python's, NumPy's, TF's and Keras' seeds: a test draws the same numbers whichever tests
    # ran before it in its xdist worker (two tests once depended on that order).
    keras.utils.set_random_seed(0)
