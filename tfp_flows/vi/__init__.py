"""Flows in `tfp.vi` and `tfp.mcmc`: flow surrogate posteriors, a budgeted fit and NeuTra HMC.

* `flow_surrogate_posterior(model)`: a normalizing flow over the model's unconstrained space of
  total size `D`, split into its latent variables, reshaped and constrained with the model's
  default event-space bijector. Samples have the model's event structure (dict, list or
  namedtuple), so it drops into `tfp.vi.fit_surrogate_posterior`.
* `fit(surrogate, target_log_prob_fn)`: reverse KL (`tfp_flows.losses.reverse_kl`) on the
  package's one training loop (`tfp_flows.train.minimize`), with measured defaults: a two-minute
  budget that a cosine learning-rate decay spans, 256 samples a step, stick-the-landing.
* `distill(teacher, student)`: a fast-sampling student flow trained on a teacher's `log_prob`.
* `importance_diagnostics(q, target_log_prob_fn, n)`: ELBO, importance-sampled log Z, ESS.
* `neutra_kernel(target_log_prob_fn, flow, ...)`: Hamiltonian Monte Carlo in the flow's base
  space (Hoffman et al. 2019, https://arxiv.org/abs/1903.03704). Start its chains with
  `neutra_initial_state(flow, num_chains, seed)` and map the states to the model's values with
  `neutra_states_to_model(flow, states)`.

The target is called as in `tfp.vi`: `fn(*z)` for a list or tuple, `fn(**z)` for a dict and
`fn(z)` for a tensor or namedtuple (pinned models' `unnormalized_log_prob` takes all three).

Example:

>>> import tensorflow as tf
>>> import tensorflow_probability as tfp
>>> from tfp_flows import vi
>>> tfd = tfp.distributions
>>> model = tfd.JointDistributionNamed(
...     dict(mu=tfd.Normal(0.0, 1.0), scale=tfd.LogNormal(0.0, 1.0),
...          y=lambda mu, scale: tfd.Normal(mu, scale)))
>>> posterior = model.experimental_pin(y=0.5)
>>> q = vi.flow_surrogate_posterior(posterior, num_layers=2, hidden_units=(8,))
>>> z = q.sample(3, seed=(0, 1))
>>> sorted(z), z["scale"].shape, bool(tf.reduce_all(z["scale"] > 0))
(['mu', 'scale'], TensorShape([3]), True)
>>> result = vi.fit(q, posterior.unnormalized_log_prob, num_steps=5, report_every=None,
...                 jit_compile=False)
>>> result.losses.shape
(5,)
"""

from tfp_flows.train import importance_diagnostics
from tfp_flows.vi.fit import FitResult, call_target, distill, fit
from tfp_flows.vi.neutra import neutra_initial_state, neutra_kernel, neutra_states_to_model
from tfp_flows.vi.surrogate import flow_surrogate_posterior

__all__ = [
    "FitResult",
    "call_target",
    "distill",
    "fit",
    "flow_surrogate_posterior",
    "importance_diagnostics",
    "neutra_initial_state",
    "neutra_kernel",
    "neutra_states_to_model",
]
