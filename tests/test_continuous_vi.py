"""A continuous flow composes: a flow_surrogate_posterior fitted by vi.fit (reverse KL through
the solver), and the bijector of a NeuTra kernel."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import vi
from tfp_flows.continuous import continuous_flow

tfd = tfp.distributions


def _target():
    # A correlated Gaussian posterior over a 2-vector with a positive scale: {"loc", "scale"}.
    return tfd.JointDistributionNamed(
        {
            "loc": tfd.MultivariateNormalTriL(
                [1.0, -1.0], tf.linalg.cholesky([[1.0, 0.8], [0.8, 1.0]])
            ),
            "scale": tfd.LogNormal(0.0, 0.5),
        }
    )


def _surrogate(model):
    return vi.flow_surrogate_posterior(
        model,
        flow=lambda dim: continuous_flow([dim], hidden_units=(16,), num_steps=4, num_frequencies=1),
    )


def test_reverse_kl_through_the_solver_fits_a_surrogate():
    model = _target()
    q = _surrogate(model)
    before = q.log_prob(model.sample(256, seed=(1, 2)))
    result = vi.fit(
        q, model.log_prob, time_budget_s=None, num_steps=150, learning_rate=1e-2,
        sample_size=32, jit_compile=False, report_every=None,
    )  # fmt: skip
    draws = model.sample(512, seed=(3, 4))
    after = q.log_prob(draws)
    assert np.mean(after) > np.mean(before) + 0.2  # forward-KL check on true posterior draws
    samples = q.sample(2000, seed=(5, 6))
    corr = np.corrcoef(samples["loc"].numpy().T)[0, 1]
    assert corr > 0.4, corr  # the couplings were learned through the ODE
    assert np.all(np.isfinite(result.losses))


def test_a_continuous_flow_is_a_neutra_bijector():
    model = _target()
    q = _surrogate(model)
    kernel = vi.neutra_kernel(model.log_prob, q, step_size=0.3, num_leapfrog_steps=2)
    states = tfp.mcmc.sample_chain(
        5,
        vi.neutra_initial_state(q, 2, seed=(0, 1)),
        kernel=kernel,
        trace_fn=None,
        seed=(1, 2),
    )
    draws = vi.neutra_states_to_model(q, states)
    assert draws["loc"].shape == [5, 2, 2] and np.all(draws["scale"].numpy() > 0)
    assert np.all(np.isfinite(states.numpy()))
