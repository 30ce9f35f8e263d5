"""ContinuousFlow: log-densities against brute force, Hutchinson's estimator, solvers, XLA."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import bijectors as fb
from tfp_flows import flows
from tfp_flows.continuous import ContinuousFlow, FixedStep, VelocityMLP, continuous_flow
from tfp_flows.testing import autodiff_log_det_jacobian, check_bijector, perturb_variables

tfb, tfd = tfp.bijectors, tfp.distributions


def _field(dim, seed=0, conditional_size=None, dtype="float64"):
    """A small field away from zero (a zero field is the identity and proves nothing)."""
    v = VelocityMLP(
        dim, hidden_units=(8,), num_frequencies=1, conditional_size=conditional_size, dtype=dtype
    )
    perturb_variables(ContinuousFlow(v), 0.3, seed=seed)
    return v


def _x(n, dim, seed=1, dtype=tf.float64):
    return tf.random.stateless_normal([n, dim], [seed, 7], dtype=dtype)


def _brute_force(v, x, num_steps=16, **kwargs):
    """log N(F^-1(x)) + log|det dF^-1/dx|: `F^-1` by RK4 on `-v(x, 1 - t)` alone (no trace),
    its Jacobian by autodiff through the solver's steps."""
    solver = FixedStep("rk4", num_steps)

    def inverse(y):
        def ode(t, state):
            return -v(state, 1.0 - t, **kwargs)

        return solver.solve(ode, 0.0, y, [1.0]).states[-1]

    base = tfd.MultivariateNormalDiag(tf.zeros([x.shape[-1]], x.dtype))
    return base.log_prob(inverse(x)) + autodiff_log_det_jacobian(inverse, x, 1)


@pytest.mark.parametrize("dim", [2, 5])
def test_log_prob_is_the_change_of_variables(dim):
    v = _field(dim, seed=dim)
    rk4 = continuous_flow([dim], velocity=v, num_steps=16, dtype=tf.float64)
    dopri = continuous_flow(
        [dim], velocity=v, solver="dopri", rtol=1e-9, atol=1e-9, dtype="float64"
    )
    x = _x(3, dim)
    log_prob, brute = rk4.log_prob(x), _brute_force(v, x)  # eager: tracing costs more here
    assert np.abs(brute - dist_log_prob_at_zero_field(dim, x)).max() > 0.05  # a non-trivial map
    np.testing.assert_allclose(log_prob, brute, atol=1e-6)
    # The adaptive solver, to its tolerance, agrees with the fixed-step map's brute force.
    np.testing.assert_allclose(dopri.log_prob(x), brute, atol=1e-5)


def test_fourier_features_keep_the_log_prob_exact():
    v = VelocityMLP(2, hidden_units=(8,), num_frequencies=1, fourier_features=3, dtype="float64")
    perturb_variables(ContinuousFlow(v), 0.3, seed=4)
    x = _x(3, 2)
    # Sharper in x than a plain MLP: RK4 needs more steps for the same agreement.
    log_prob = continuous_flow([2], velocity=v, num_steps=64, dtype=tf.float64).log_prob(x)
    np.testing.assert_allclose(log_prob, _brute_force(v, x, num_steps=64), atol=1e-6)
    with pytest.raises(ValueError, match="fourier_scale"):
        VelocityMLP(2, fourier_features=3, fourier_scale=0.0)


def dist_log_prob_at_zero_field(dim, x):
    return tfd.MultivariateNormalDiag(tf.zeros([dim], x.dtype)).log_prob(x)


def test_hutchinson_is_unbiased_within_its_standard_error():
    v = _field(4, seed=3)
    x = _x(2, 4)
    exact = continuous_flow([4], velocity=v, num_steps=8, dtype=tf.float64).log_prob(x)
    dist = continuous_flow(
        [4], velocity=v, num_steps=8, trace="hutchinson", hutchinson_samples=2, dtype=tf.float64
    )

    # One solve of 128 copies of each point: every row has its own probes.
    draws = tf.reshape(dist.log_prob(tf.tile(x, [128, 1])), [128, 2]).numpy()
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(se > 1e-4), "the estimate should vary between solves"
    assert np.all(np.abs(draws.mean(0) - exact.numpy()) < 4 * se)
    fixed = continuous_flow(
        [4], velocity=v, num_steps=8, trace="hutchinson", seed=5, dtype=tf.float64
    )
    first = fixed.log_prob(tf.identity(x))
    np.testing.assert_array_equal(first, fixed.log_prob(tf.identity(x)))  # a seed: repeatable
    assert np.abs(first - exact).max() > 1e-6  # and still an estimate


def test_trace_auto_switches_to_hutchinson_above_the_threshold():
    v = _field(3, seed=4)
    x = _x(2, 3)
    exact = ContinuousFlow(v, num_steps=4, exact_trace_max_dims=3)
    auto = ContinuousFlow(v, num_steps=4, exact_trace_max_dims=2, seed=1)
    a = exact.forward_log_det_jacobian(x, event_ndims=1)
    b = auto.forward_log_det_jacobian(x, event_ndims=1)
    assert np.abs(a - b).max() > 1e-6  # an estimate, not the exact trace


def test_property_suite_fixed_step():
    """The shared suite (round trips, autodiff log-dets, sample shapes, tf.function and
    gradients), with tolerances of the solver's error (RK4, 4 steps), not of float64's. XLA is
    tested below (compiling the suite's graphs would double this test's time)."""
    v = _field(3, seed=2)
    bijector = ContinuousFlow(v, num_steps=4)
    report = check_bijector(bijector, _x(6, 3), rtol=1e-3, atol=1e-3, modes=("eager", "function"))
    assert report["num_variables_checked"] == len(v.trainable_variables) == 4


def test_sample_and_log_prob_in_one_solve():
    v = _field(2, seed=5, dtype="float32")
    calls = []

    def counted(x, t):
        calls.append(1)
        return v(x, t)

    dist = continuous_flow([2], velocity=counted, solver="euler", num_steps=3, trace="exact")
    samples, log_prob = dist.experimental_sample_and_log_prob(5, seed=(1, 2))
    assert len(calls) == 3  # one solve of 3 Euler steps, its trace included
    z = dist.distribution.sample(5, seed=(1, 2))  # the same base draws
    fldj = dist.bijector.forward_log_det_jacobian(z, event_ndims=1)
    np.testing.assert_allclose(samples, dist.bijector.forward(tf.identity(z)), atol=1e-6)
    np.testing.assert_allclose(log_prob, dist.distribution.log_prob(z) - fldj, atol=1e-5)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
def test_fixed_step_solvers_agree_under_tf_function_and_xla(solver):
    v = _field(2, seed=6, dtype="float32")
    dist = continuous_flow([2], velocity=v, solver=solver, num_steps=4)
    x = _x(5, 2, dtype=tf.float32)
    eager = dist.log_prob(x)
    np.testing.assert_allclose(tf.function(dist.log_prob)(x), eager, atol=1e-5)
    np.testing.assert_allclose(tf.function(dist.log_prob, jit_compile=True)(x), eager, atol=1e-4)
    sample = tf.function(lambda: dist.sample(3, seed=(3, 4)), jit_compile=True)()
    np.testing.assert_allclose(sample, dist.sample(3, seed=(3, 4)), atol=1e-4)


def test_conditional_log_prob_and_condition_routing():
    v = _field(2, seed=7, conditional_size=2)
    dist = continuous_flow([2], velocity=v, num_steps=16, dtype=tf.float64)
    x, c = _x(3, 2), tf.constant([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]], tf.float64)
    conditioned = flows.condition(dist, c)
    log_prob, brute = tf.function(
        lambda x: (conditioned.log_prob(x), _brute_force(v, x, conditional=c))
    )(x)
    np.testing.assert_allclose(log_prob, brute, atol=1e-6)
    other = flows.condition(dist, tf.reverse(c, [0])).log_prob(x)
    assert np.abs(other - log_prob).max() > 1e-3  # the condition is used
    with pytest.raises(ValueError, match="conditional"):
        dist.log_prob(x)


def test_chain_after_a_logit_pre_transform():
    v = _field(2, seed=8)
    flow = ContinuousFlow(v, num_steps=16)
    chain = tfb.Chain([tfb.Invert(fb.LogitTransform(0.05, dtype=tf.float64)), flow])
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros([2], tf.float64)), chain)
    y = tf.random.stateless_uniform([3, 2], [2, 3], 0.1, 0.9, dtype=tf.float64)
    brute = dist.distribution.log_prob(chain.inverse(y)) + autodiff_log_det_jacobian(
        chain.inverse, y, 1
    )
    np.testing.assert_allclose(dist.log_prob(y), brute, atol=1e-6)
    layers, _ = flows.keras_objects(dist)
    assert layers == [v]  # the package's walker finds the field (Keras tracks and saves it)


def test_trajectory_ends_at_forward_and_checks_times():
    v = _field(2, seed=9)
    flow = ContinuousFlow(v, num_steps=8)
    z = _x(4, 2)
    path = flow.trajectory(z, [0.0, 0.5, 1.0])
    assert path.shape == [3, 4, 2]
    np.testing.assert_allclose(path[0], z)
    np.testing.assert_allclose(path[-1], flow.forward(z), atol=1e-10)
    for times in ([0.0, 1.5], [0.5, 0.2], [-0.1, 1.0]):
        with pytest.raises(ValueError, match="times"):
            flow.trajectory(z, times)


def test_bad_arguments_are_named():
    v = _field(2)
    with pytest.raises(ValueError, match="solver"):
        ContinuousFlow(v, solver="rk45")
    with pytest.raises(ValueError, match="trace"):
        ContinuousFlow(v, trace="approx")
    with pytest.raises(ValueError, match="shape"):
        ContinuousFlow(v).forward(tf.zeros([3, 4], tf.float64))
    with pytest.raises(ValueError, match="callable"):
        ContinuousFlow("not a field")
