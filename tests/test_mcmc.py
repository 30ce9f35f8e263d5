"""NeuTra HMC (`tfp_flows.vi.neutra_kernel`): HMC through a trained flow."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import flows, vi

tfb, tfd = tfp.bijectors, tfp.distributions

MEAN = np.array([1.0, -2.0], np.float32)
COV = np.array([[1.0, 1.8], [1.8, 4.0]], np.float32)  # correlation 0.9


def _run_chains(kernel, init, num_results=150, num_burnin_steps=30):
    @tf.function(autograph=False)
    def run():
        return tfp.mcmc.sample_chain(
            num_results,
            init,
            kernel=kernel,
            num_burnin_steps=num_burnin_steps,
            trace_fn=lambda _, r: r.inner_results.is_accepted,
            seed=(4, 2),
        )

    return run()


def test_neutra_on_correlated_gaussian_recovers_mean_and_covariance():
    target = tfd.MultivariateNormalTriL(MEAN, tf.linalg.cholesky(COV))
    flow = flows.real_nvp(2, num_layers=4, hidden_units=(16,), normalization=None)
    vi.fit(
        flow,
        target.log_prob,
        num_steps=300,
        learning_rate=2e-2,
        sample_size=64,
        stick_the_landing=True,
        jit_compile=False,
        report_every=None,
    )
    kernel = vi.neutra_kernel(target.log_prob, flow, step_size=0.6, num_leapfrog_steps=4)
    assert isinstance(kernel, tfp.mcmc.TransformedTransitionKernel)
    assert isinstance(kernel.inner_kernel, tfp.mcmc.HamiltonianMonteCarlo)
    states, accepted = _run_chains(kernel, flow.sample(4, seed=(0, 7)))
    x = tf.reshape(states, [-1, 2]).numpy()  # 150 draws x 4 chains
    acceptance = float(tf.reduce_mean(tf.cast(accepted, tf.float32)))
    assert 0.6 < acceptance <= 1.0
    sd = np.sqrt(np.diag(COV))
    assert np.all(np.abs(x.mean(0) - MEAN) < 0.25 * sd), x.mean(0)
    np.testing.assert_allclose(np.cov(x.T), COV, rtol=0.25, atol=0.15)


def test_kernel_log_prob_includes_flow_jacobian_for_image_event_rank():
    # An image flow has event rank 3: the kernel must sum the log-det over [H, W, C] only.
    flow = flows.real_nvp(
        (4, 4, 1), num_scales=2, steps_per_scale=1, filters=4, num_blocks=1, normalization=None
    )
    target = tfd.Sample(tfd.Normal(0.5, 2.0), [4, 4, 1]).log_prob
    kernel = vi.neutra_kernel(target, flow, step_size=0.1, num_leapfrog_steps=2)
    x = flow.sample(3, seed=(1, 1))
    results = kernel.bootstrap_results(x)
    u = flow.bijector.inverse(tf.identity(x))
    expected = target(x) + flow.bijector.forward_log_det_jacobian(u, event_ndims=3)
    assert results.inner_results.accepted_results.target_log_prob.shape == [3]
    np.testing.assert_allclose(
        results.inner_results.accepted_results.target_log_prob, expected, rtol=1e-4, atol=1e-3
    )
    next_x, _ = kernel.one_step(x, results, seed=(2, 2))
    assert next_x.shape == x.shape


def test_neutra_with_structured_surrogate_runs_on_flat_state():
    root = tfd.JointDistributionCoroutine.Root

    def model():
        loc = yield root(tfd.Normal(0.0, 1.0, name="loc"))
        scale = yield root(tfd.LogNormal(0.0, 0.5, name="scale"))
        yield tfd.Sample(tfd.Normal(loc, scale), 5, name="y")

    posterior = tfd.JointDistributionCoroutine(model).experimental_pin(y=[0.1, 0.5, -0.3, 0.8, 0.2])
    q = vi.flow_surrogate_posterior(posterior, num_layers=2, hidden_units=(8,))
    kernel = vi.neutra_kernel(
        posterior.unnormalized_log_prob, q, step_size=0.3, num_leapfrog_steps=3
    )
    states, accepted = _run_chains(kernel, q.distribution.sample(2, seed=(0, 1)), 20, 0)
    assert states.shape == [20, 2, 2]
    z = q.bijector.forward(states)
    assert z.scale.shape == [20, 2] and bool(tf.reduce_all(z.scale > 0))
    assert bool(tf.reduce_any(accepted))  # untrained flow: a moving chain is all we ask


def _normal_gamma_surrogate():
    # The README's model: samples of the surrogate are dicts, and tau > 0.
    model = tfd.JointDistributionNamed(
        dict(
            mu=tfd.Normal(0.0, 10.0),
            tau=tfd.Gamma(2.0, 2.0),
            y=lambda mu, tau: tfd.Sample(tfd.Normal(mu, tau**-0.5), 5),
        )
    )
    posterior = model.experimental_pin(y=[0.1, 0.5, -0.3, 0.8, 0.2])
    q = vi.flow_surrogate_posterior(posterior, num_layers=2, hidden_units=(8,))
    kernel = vi.neutra_kernel(
        posterior.unnormalized_log_prob, q, step_size=0.3, num_leapfrog_steps=3
    )
    return q, kernel


def test_documented_initial_state_and_mapping_to_the_model():
    q, kernel = _normal_gamma_surrogate()
    init = vi.neutra_initial_state(q, 3, seed=(0, 1))
    assert init.shape == [3, 2]  # flat unconstrained vector, D = 2 (mu, log tau)
    np.testing.assert_array_equal(init, q.distribution.sample(3, seed=(0, 1)))
    states, accepted = _run_chains(kernel, init, 10, 0)
    assert states.shape == [10, 3, 2]
    draws = vi.neutra_states_to_model(q, states)
    assert sorted(draws) == ["mu", "tau"]
    assert draws["mu"].shape == [10, 3] and draws["tau"].shape == [10, 3]
    assert bool(tf.reduce_all(draws["tau"] > 0))
    np.testing.assert_allclose(draws["tau"], q.bijector.forward(states)["tau"])
    assert bool(tf.reduce_any(accepted))
    # A plain flow's chain states are its samples, already the values.
    flow = flows.real_nvp(2, num_layers=2, hidden_units=(8,), normalization=None)
    assert vi.neutra_initial_state(flow, 4, seed=(0, 2)).shape == [4, 2]
    assert vi.neutra_states_to_model(flow, states) is states
    with pytest.raises(ValueError, match="TransformedDistribution"):
        vi.neutra_initial_state(flow.bijector, 4)


def test_structured_initial_state_gets_an_error_naming_the_fix():
    q, kernel = _normal_gamma_surrogate()
    wrong = q.sample(4, seed=(0, 1))  # the model's dict: the natural mistake
    fix = r"neutra_initial_state\(surrogate, num_chains, seed\)"
    with pytest.raises(ValueError, match=r"is a dict with keys \['mu', 'tau'\].*" + fix):
        tfp.mcmc.sample_chain(5, current_state=wrong, kernel=kernel, trace_fn=None, seed=(1, 2))
    # Also through a wrapping kernel, and for a tensor of the wrong event shape.
    adaptive = tfp.mcmc.SimpleStepSizeAdaptation(kernel, num_adaptation_steps=2)
    with pytest.raises(ValueError, match=fix):
        adaptive.bootstrap_results(wrong)
    with pytest.raises(ValueError, match=r"shape \[4\].*must end in \[2\]"):
        kernel.bootstrap_results(wrong["mu"])
    with pytest.raises(ValueError, match=r"is a list of 2 parts"):
        kernel.copy(name="copied").bootstrap_results([wrong["mu"], wrong["tau"]])


def test_plain_flow_initial_state_of_wrong_shape_raises():
    flow = flows.real_nvp(
        (4, 4, 1), num_scales=2, steps_per_scale=1, filters=4, num_blocks=1, normalization=None
    )
    target = tfd.Sample(tfd.Normal(0.5, 2.0), [4, 4, 1]).log_prob
    kernel = vi.neutra_kernel(target, flow, step_size=0.1, num_leapfrog_steps=2)
    with pytest.raises(ValueError, match=r"shape \[3, 16\].*must end in \[4, 4, 1\]"):
        kernel.bootstrap_results(tf.zeros([3, 16]))
    # A bijector carries no event shape: its states are not checked.
    unchecked = vi.neutra_kernel(target, flow.bijector, step_size=0.1, num_leapfrog_steps=2)
    x = vi.neutra_initial_state(flow, 2, seed=(1, 1))
    assert unchecked.bootstrap_results(x).transformed_state.shape == [2, 4, 4, 1]
