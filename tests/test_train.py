"""The one training loop (`tfp_flows.train.minimize`) and the importance-weight summary."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_flows import checks, flows, losses, train, vi
from tfp_flows.train import NonFiniteLossError


def _quadratic():
    x = tf.Variable([3.0, -2.0])
    return x, (lambda: tf.reduce_sum(x**2))


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_minimize_converges_and_stops_at_num_steps(jit_compile):
    x, loss = _quadratic()
    result = train.minimize(loss, [x], num_steps=300, learning_rate=0.1, jit_compile=jit_compile)
    assert isinstance(result, train.TrainResult)
    assert result.steps == 300 and result.stopped_by == "num_steps" and result.skipped_steps == 0
    assert result.losses.shape == (300,) and result.losses[0] == pytest.approx(13.0)
    assert float(tf.reduce_sum(x**2)) < 1e-4


def test_a_flow_trains_through_its_tf_variables():
    tf.random.set_seed(0)
    q = flows.real_nvp(2, num_layers=2, hidden_units=(8,), normalization=None)
    target = lambda z: -0.5 * tf.reduce_sum(((z - 1.0) / 0.5) ** 2, -1)  # noqa: E731
    result = train.minimize(
        lambda: losses.reverse_kl(q, target, 64),
        q.trainable_variables,
        num_steps=300,
        learning_rate=1e-2,
        jit_compile=False,
    )
    assert result.losses[-30:].mean() < result.losses[:30].mean() - 1.0


def test_the_step_number_is_passed_to_a_loss_that_takes_it():
    x = tf.Variable(1.0)
    result = train.minimize(
        lambda step: 0.0 * x + tf.cast(step, tf.float32), [x], num_steps=4, jit_compile=False
    )
    np.testing.assert_array_equal(result.losses, [0.0, 1.0, 2.0, 3.0])


def test_the_cosine_schedule_ends_with_the_time_budget():
    x, loss = _quadratic()
    optimizer = keras.optimizers.Adam(1.0)
    lines = []
    result = train.minimize(
        loss,
        [x],
        time_budget_s=1.5,
        optimizer=optimizer,
        learning_rate=1e-2,
        jit_compile=False,
        report_every=0.5,
        print_fn=lines.append,
    )
    assert result.stopped_by == "time_budget" and result.steps > 10
    assert 1.5 <= result.elapsed_s < max(1.5, result.first_step_s) + 1.0
    # The budget, not a step count, drove the decay: the last rate is near 0, the first 1e-2.
    assert float(optimizer.learning_rate) < 1e-3
    assert "lr 1.00e-02" in lines[0] and lines[-1].startswith("minimize: time budget of 1.5 s")


def test_whichever_limit_comes_first_ends_the_schedule():
    x, loss = _quadratic()
    optimizer = keras.optimizers.Adam(1.0)
    result = train.minimize(
        loss,
        [x],
        num_steps=50,
        time_budget_s=600,
        optimizer=optimizer,
        learning_rate=0.1,
        jit_compile=False,
    )
    assert result.stopped_by == "num_steps"
    expected = 0.1 * 0.5 * (1 + math.cos(math.pi * 49 / 50))  # the last step's rate
    assert float(optimizer.learning_rate) == pytest.approx(expected, rel=1e-5)


def test_a_keras_schedule_is_left_alone():
    x, loss = _quadratic()
    rate = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    optimizer = keras.optimizers.SGD(rate)
    train.minimize(loss, [x], num_steps=20, optimizer=optimizer, jit_compile=False)
    assert int(optimizer.iterations) == 20
    assert float(optimizer.learning_rate) == pytest.approx(0.1 * 0.5**2)


def test_non_finite_steps_are_skipped_then_raise_naming_the_cause():
    x = tf.Variable([1.0, 2.0])

    def loss(step):  # NaN at steps 2 and 3 only
        bad = tf.logical_and(step >= 2, step < 4)
        return tf.reduce_sum(x**2) + tf.where(bad, np.nan, 0.0)

    result = train.minimize(loss, [x], num_steps=8, learning_rate=0.1, jit_compile=False)
    assert result.skipped_steps == 2 and result.steps == 8
    assert np.isnan(result.losses[2:4]).all() and np.isfinite(result.losses[4:]).all()

    before = x.numpy().copy()
    with pytest.raises(
        NonFiniteLossError, match=r"3 consecutive steps.*the loss and gradient were NaN"
    ) as info:
        train.minimize(lambda: tf.reduce_sum(x**2) * np.nan, [x], num_steps=10, jit_compile=False)
    assert info.value.finding == ["loss", "gradient"] and info.value.step == 3
    np.testing.assert_array_equal(before, x.numpy())  # no update was applied

    y = tf.Variable(0.0)  # sqrt'(0) = inf: a finite loss with an infinite gradient
    with pytest.raises(NonFiniteLossError, match="the gradient was NaN") as info:
        train.minimize(lambda: tf.sqrt(y), [y], num_steps=10, max_skipped_steps=2)
    assert info.value.finding == ["gradient"] and float(y.numpy()) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "needs an end"),
        (dict(num_steps=0), "num_steps"),
        (dict(num_steps=1, time_budget_s=0), "time_budget_s"),
        (dict(num_steps=1, schedule="linear"), "schedule"),
        (dict(num_steps=1, report_every=0), "report_every"),
        (dict(num_steps=1, max_skipped_steps=0), "max_skipped_steps"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    x, loss = _quadratic()
    with pytest.raises(ValueError, match=match):
        train.minimize(loss, [x], **kwargs)
    with pytest.raises(ValueError, match="empty"):
        train.minimize(loss, [], num_steps=1)


def test_importance_summary_known_answers():
    summary = train.importance_summary(tf.fill([100], -2.0))  # q = p / e^2: equal weights
    assert float(summary["elbo"]) == pytest.approx(-2.0)
    assert float(summary["log_z"]) == pytest.approx(-2.0)
    assert float(summary["ess"]) == pytest.approx(100.0)
    assert float(summary["ess_fraction"]) == pytest.approx(1.0)
    one_heavy = train.importance_summary(tf.constant([0.0, -100.0, -100.0, -100.0]))
    assert float(one_heavy["ess"]) == pytest.approx(1.0)
    assert float(one_heavy["log_z"]) == pytest.approx(math.log(0.25), abs=1e-6)


def test_moved_names_stay_importable():
    assert losses.importance_diagnostics is train.importance_diagnostics
    assert losses.sample_and_log_weights is train.sample_and_log_weights
    assert vi.importance_diagnostics is train.importance_diagnostics
    assert losses.distill is vi.distill
    assert losses.check_data is checks.check_data  # tfp_flows.keras imports it from losses
    assert set(losses.__all__) == {"forward_kl", "reverse_kl"}
    x, loss = _quadratic()
    trace = losses.minimize(loss, [x], steps=5, jit_compile=False)
    assert isinstance(trace, np.ndarray) and trace.shape == (5,)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_several_steps_per_call_do_what_one_step_per_call_does(jit_compile, monkeypatch):
    # A loss whose value depends on the step number and the current weights; the cosine rate
    # changes every step, so any mix-up of steps, rates or weights within a call shows.
    def run(steps_per_call):
        x = tf.Variable([3.0, -2.0])
        loss = lambda step: tf.reduce_sum((x - 0.01 * tf.cast(step, tf.float32)) ** 2)  # noqa: E731
        result = train.minimize(
            loss,
            [x],
            num_steps=150,
            learning_rate=0.05,
            jit_compile=jit_compile,
            steps_per_call=steps_per_call,
        )
        return result, x.numpy()

    one, x_one = run(1)
    counts, sizer = [], train.loop.steps_for_call
    monkeypatch.setattr(
        train.loop, "steps_for_call", lambda *a: counts.append(sizer(*a)) or counts[-1]
    )
    many, x_many = run(None)
    assert max(counts) > 1 and sum(counts) == 150  # 1, 1, then calls of several steps
    assert one.steps == many.steps == 150
    np.testing.assert_allclose(many.losses, one.losses, rtol=1e-6)
    np.testing.assert_allclose(x_many, x_one, rtol=1e-6)
    assert float(many.losses[-1]) < 0.2 * float(many.losses[0])


def test_steps_for_call_fills_the_target_and_respects_the_limits():
    from tfp_flows.train.steps import MAX_STEPS_PER_CALL, steps_for_call

    assert steps_for_call(None, None, 10.0) == 1  # no step time measured yet
    assert steps_for_call(0.01, None, None) == 5  # 50 ms of 10 ms steps
    assert steps_for_call(1e-6, None, None) == MAX_STEPS_PER_CALL
    assert steps_for_call(1e-3, 7, None) == 7  # the steps left
    assert steps_for_call(1e-3, None, 0.004) == 4  # the seconds left
    assert steps_for_call(1e-3, None, -1.0) == 1  # always at least one
