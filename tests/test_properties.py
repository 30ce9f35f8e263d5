"""The shared property suite, run on every entry of the registry in float32 and float64."""

import pytest
import tensorflow as tf

from registry import REGISTRY
from tfp_flows.testing import check_bijector


# The suite runs every direction on new points on purpose, slow paths included (an IAF's inverse).
@pytest.mark.filterwarnings("ignore::tfp_flows.bijectors.PerformanceWarning")
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_bijector_properties(name, dtype):
    bijector, x, *options = REGISTRY[name](dtype)
    options = {"strict_log_det_shape": True, **(options[0] if options else {})}
    report = check_bijector(bijector, x, **options)
    num_variables = len(bijector.trainable_variables)
    assert report["num_variables_checked"] == num_variables
    assert num_variables > 0 or not options.get("require_variables", True)


def test_suite_catches_a_wrong_log_det():
    """The suite must be able to fail: a bijector whose log-det is off by a constant."""
    import tensorflow_probability as tfp

    class WrongScale(tfp.bijectors.Scale):
        def _forward_log_det_jacobian(self, x):
            return super()._forward_log_det_jacobian(x) + 0.01

    bij = WrongScale(tf.Variable([2.0, 3.0], dtype=tf.float64))
    x = tf.random.stateless_normal([6, 2], seed=[0, 0], dtype=tf.float64)
    with pytest.raises(AssertionError, match="autodiff"):
        check_bijector(bij, x, event_ndims=1)


def test_suite_catches_a_wrong_inverse_hidden_by_the_cache():
    import tensorflow_probability as tfp

    class WrongInverse(tfp.bijectors.Scale):
        def _inverse(self, y):
            return super()._inverse(y) * 1.001

    bij = WrongInverse(tf.Variable([2.0, 3.0], dtype=tf.float64))
    x = tf.random.stateless_normal([6, 2], seed=[0, 0], dtype=tf.float64)
    with pytest.raises(AssertionError, match="inverse"):
        check_bijector(bij, x, event_ndims=1)
