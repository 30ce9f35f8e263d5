"""The public property suite must be able to fail: bijectors broken on purpose."""

import pytest
import tensorflow as tf

from tfp_flows.bijectors import FlowBijector
from tfp_flows.testing import check_bijector


class _ShiftAndScale(FlowBijector):
    """`y = x * exp(log_scale) + shift`, `log|det J| = sum(log_scale)`, with optional bugs."""

    def __init__(self, bug=None):
        super().__init__(forward_min_event_ndims=1, dtype=tf.float64, name=f"bug_{bug}")
        self._bug = bug
        self.log_scale = self._add_variable("log_scale", tf.constant([0.3, -0.2], tf.float64))
        self.shift = self._add_variable("shift", tf.constant([0.5, 1.0], tf.float64))
        if bug == "ignored":
            self.unused = self._add_variable("unused", tf.constant(1.0, tf.float64))

    def _log_det(self, x):
        log_scale = tf.stop_gradient(self.log_scale) if self._bug == "stop" else self.log_scale
        return tf.reduce_sum(log_scale) * tf.ones_like(x[..., 0])

    def _forward_and_log_det(self, x):
        return x * tf.exp(self.log_scale) + self.shift, self._log_det(x)

    def _inverse_and_log_det(self, y):
        return (y - self.shift) * tf.exp(-self.log_scale), -self._log_det(y)


def _x():
    return tf.random.stateless_normal([6, 2], seed=[0, 3], dtype=tf.float64)


def test_a_correct_bijector_passes_and_every_variable_is_checked():
    report = check_bijector(_ShiftAndScale(), _x())
    assert report["num_variables_checked"] == 2


def test_a_log_det_whose_gradient_misses_a_variable_fails():
    """The log-det's value is right, but training would never see its dependence on log_scale."""
    with pytest.raises(
        AssertionError, match=r"gradient of fldj for variable log_scale.* vs autodiff"
    ):
        check_bijector(_ShiftAndScale("stop"), _x())


def test_a_variable_the_computation_ignores_fails():
    with pytest.raises(AssertionError, match=r"no gradient reaches variable unused"):
        check_bijector(_ShiftAndScale("ignored"), _x())
