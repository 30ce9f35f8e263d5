"""Losses: values, stick-the-landing gradients, importance diagnostics, XLA, bad input."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import checks, flows, losses, train
from tfp_flows.testing import perturb_variables

tfd = tfp.distributions


def _flow(dtype=tf.float64, seed=3):
    """A small perturbed Real NVP (no ActNorm: reverse KL has no data to initialise it)."""
    dist = flows.real_nvp(2, num_layers=3, hidden_units=(8,), normalization=None, dtype=dtype)
    perturb_variables(dist.bijector, 0.2, seed=seed)
    return dist


def _copy_weights(src, dst):
    for a, b in zip(src.trainable_variables, dst.trainable_variables, strict=True):
        b.assign(a)


def _target(dtype=tf.float64):
    return tfd.MultivariateNormalDiag(
        tf.constant([0.5, -0.3], dtype), tf.constant([0.8, 1.3], dtype)
    )


def test_forward_kl_is_the_negative_mean_log_prob():
    dist = _flow()
    x = np.random.default_rng(0).normal(size=(16, 2))
    np.testing.assert_allclose(
        losses.forward_kl(dist, x), -np.mean(dist.log_prob(x).numpy()), rtol=1e-12
    )


def test_reverse_kl_value_matches_its_samples():
    dist, target = _flow(), _target()
    loss = losses.reverse_kl(dist, target.log_prob, 64, seed=[1, 2])
    z, log_q = dist.experimental_sample_and_log_prob(64, seed=[1, 2])
    np.testing.assert_allclose(loss, np.mean(log_q - target.log_prob(z)), rtol=1e-10)
    np.testing.assert_allclose(log_q, dist.log_prob(tf.identity(z)), rtol=1e-8)


def _gradients(dist, loss_fn):
    with tf.GradientTape() as tape:
        loss = loss_fn()
    return loss, tape.gradient(loss, dist.trainable_variables)


def test_stick_the_landing_keeps_the_value_and_gives_the_path_gradient():
    dist, target = _flow(), _target()
    frozen = _flow(seed=99)  # same architecture, other variables: a copy of q not on the tape
    _copy_weights(dist, frozen)
    seed = [4, 5]
    loss, standard = _gradients(
        dist, lambda: losses.reverse_kl(dist, target.log_prob, 32, seed=seed)
    )
    stl_loss, stl = _gradients(
        dist,
        lambda: losses.reverse_kl(dist, target.log_prob, 32, seed=seed, stick_the_landing=True),
    )
    np.testing.assert_allclose(stl_loss, loss, rtol=1e-12)

    # Path-only gradient: z depends on the variables, log q is evaluated with frozen ones.
    def path_loss():
        z = dist.sample(32, seed=seed)
        return tf.reduce_mean(frozen.log_prob(z) - target.log_prob(z))

    _, path = _gradients(dist, path_loss)
    for g_stl, g_path in zip(stl, path, strict=True):
        np.testing.assert_allclose(g_stl, g_path, rtol=1e-7, atol=1e-10)
    # ... and it differs from the standard gradient (which has the score term).
    assert max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(stl, standard)) > 1e-4


def test_stick_the_landing_gradient_is_zero_at_the_optimum():
    dist = _flow()
    twin = _flow(seed=99)
    _copy_weights(dist, twin)  # p = q, normalised, and not on the tape
    _, standard = _gradients(dist, lambda: losses.reverse_kl(dist, twin.log_prob, 16, seed=[7, 8]))
    loss, stl = _gradients(
        dist,
        lambda: losses.reverse_kl(dist, twin.log_prob, 16, seed=[7, 8], stick_the_landing=True),
    )
    assert abs(float(loss)) < 1e-10
    assert max(float(tf.reduce_max(tf.abs(g))) for g in stl) < 1e-9
    assert max(float(tf.reduce_max(tf.abs(g))) for g in standard) > 1e-3


def test_importance_diagnostics_known_answers():
    q = tfd.Normal(tf.constant(0.0, tf.float64), 1.0)
    log_3 = np.log(3.0)
    exact = train.importance_diagnostics(q, lambda z: q.log_prob(z) + log_3, 500, seed=[1, 1])
    np.testing.assert_allclose(exact["log_z"], log_3, rtol=1e-12)
    np.testing.assert_allclose(exact["elbo"], log_3, rtol=1e-12)
    np.testing.assert_allclose(exact["ess"], 500.0, rtol=1e-9)
    p = tfd.Normal(tf.constant(1.0, tf.float64), 0.7)
    mismatched = train.importance_diagnostics(q, p.log_prob, 20_000, seed=[1, 2])
    assert float(mismatched["ess_fraction"]) < 0.9
    assert float(mismatched["elbo"]) < -0.1  # ELBO < log Z = 0
    assert abs(float(mismatched["log_z"])) < 0.05  # IS estimate of log Z = 0


def test_losses_under_xla():
    dist, target = _flow(), _target()
    x = tf.constant(np.random.default_rng(1).normal(size=(32, 2)))

    def step():
        with tf.GradientTape() as tape:
            fkl = losses.forward_kl(dist, x)
            rkl = losses.reverse_kl(dist, target.log_prob, 32, seed=[3, 3])
            stl = losses.reverse_kl(dist, target.log_prob, 32, seed=[3, 3], stick_the_landing=True)
        grads = tape.gradient([fkl, rkl, stl], dist.trainable_variables)
        diagnostics = train.importance_diagnostics(dist, target.log_prob, 32, seed=[3, 3])
        return fkl, rkl, stl, diagnostics, grads

    fkl, rkl, stl, diagnostics, grads = tf.function(step, jit_compile=True)()
    # Stateless samples may differ between XLA and eager; data terms may not.
    np.testing.assert_allclose(fkl, losses.forward_kl(dist, x), rtol=1e-10)
    np.testing.assert_allclose(stl, rkl, rtol=1e-10)  # same samples, same value
    np.testing.assert_allclose(diagnostics["elbo"], -rkl, rtol=1e-10)
    assert 1.0 <= float(diagnostics["ess"]) <= 32.0
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, error, match",
    [
        (np.zeros((4, 3)), ValueError, "shape"),
        (np.zeros(2), None, None),  # a single event is fine
        (np.zeros((4, 2), np.int32), TypeError, "dequantis"),
        (tf.zeros((4, 2), tf.float32), TypeError, "float32"),
        (np.array([[0.0, np.nan]]), ValueError, "non-finite"),
        (np.array([[np.inf, 0.0]]), ValueError, "non-finite"),
    ],
)
def test_check_data(data, error, match):
    dist = _flow()
    if error is None:
        assert checks.check_data(dist, data).dtype == tf.float64
    else:
        with pytest.raises(error, match=match):
            losses.forward_kl(dist, data)


def test_target_of_the_wrong_shape_is_named():
    dist = _flow()
    with pytest.raises(ValueError, match="target_log_prob_fn returned shape"):
        losses.reverse_kl(dist, lambda z: -0.5 * z**2, 8, seed=[1, 1])  # not summed over event
    with pytest.raises(ValueError, match="target_log_prob_fn returned shape"):
        losses.reverse_kl(dist, lambda z: tf.reduce_sum(z), 8, seed=[1, 1])


def test_minimize_and_validation_run_before_any_update():
    dist = _flow()
    before = [v.numpy().copy() for v in dist.trainable_variables]
    for bad in (np.zeros((8, 3)), np.zeros((8, 2), np.uint8), np.full((8, 2), np.nan)):
        with pytest.raises((ValueError, TypeError)):
            train.minimize(
                lambda b=bad: losses.forward_kl(dist, b), dist.trainable_variables, num_steps=3
            )
    with pytest.raises(ValueError, match="target_log_prob_fn"):
        train.minimize(
            lambda: losses.reverse_kl(dist, lambda z: z, 8), dist.trainable_variables, num_steps=3
        )
    # In-graph data (non-XLA): the run-time check fires before the optimizer step.
    nan_data = tf.Variable(np.full((8, 2), np.nan))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        train.minimize(
            lambda: losses.forward_kl(dist, nan_data.read_value(), validate=True),
            dist.trainable_variables,
            num_steps=2,
            jit_compile=False,
        )
    for a, v in zip(before, dist.trainable_variables, strict=True):
        np.testing.assert_array_equal(a, v.numpy())
    with pytest.raises(ValueError, match="empty"):
        train.minimize(lambda: tf.constant(0.0), [], num_steps=1)
