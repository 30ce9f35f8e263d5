"""NeuTra: Hamiltonian Monte Carlo in the base space of a trained flow.

With `x = f(u)` the flow's bijector, HMC targets `log p~(f(u)) + log|det J_f(u)|`, which is
close to a standard normal when `q = f_# N(0, I)` fits the posterior (Hoffman et al. 2019,
https://arxiv.org/abs/1903.03704).

Where chains start: the state is one tensor shaped like the flow's samples. For a structured
surrogate from `flow_surrogate_posterior` (a distribution over a flow),
`tfp.mcmc.TransformedTransitionKernel` cannot take a bijector from one tensor to a structure, so
the chain runs over the flat unconstrained vector `x` of shape `[..., D]` and the target is
composed with the surrogate's unflattening bijector: start chains from
`neutra_initial_state(surrogate, num_chains, seed)` (`surrogate.distribution.sample(n)`), not
from `surrogate.sample(n)`, and map the states to the model's structure with
`neutra_states_to_model(surrogate, states)` (`surrogate.bijector.forward(states)`):

    kernel = vi.neutra_kernel(posterior.unnormalized_log_prob, q, step_size=0.3,
                              num_leapfrog_steps=4)
    states = tfp.mcmc.sample_chain(1000, vi.neutra_initial_state(q, 4, seed=(0, 1)),
                                   kernel=kernel, trace_fn=None, seed=(1, 2))
    draws = vi.neutra_states_to_model(q, states)  # the model's structure, [1000, 4, ...]

An initial state of the wrong structure (a dict, list or tuple) or shape raises a `ValueError`
saying this when the chain starts (`bootstrap_results`), also inside
`tfp.mcmc.SimpleStepSizeAdaptation` and other wrapping kernels.
"""

from __future__ import annotations

import collections.abc
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.vi.fit import call_target

tfb, tfd = tfp.bijectors, tfp.distributions

__all__ = ["neutra_initial_state", "neutra_kernel", "neutra_states_to_model"]


def _is_transformed(dist) -> bool:
    # TFP hands back a private `_TransformedDistribution` (not a `tfd.TransformedDistribution`)
    # when the flow cannot be a CompositeTensor, so test for the parts instead of the class.
    return isinstance(dist, tfd.Distribution) and isinstance(
        getattr(dist, "bijector", None), tfb.Bijector
    )


def _is_surrogate(flow) -> bool:
    """A structured surrogate: a distribution (the unflattening) over a flow over `[D]`."""
    return _is_transformed(flow) and _is_transformed(flow.distribution)


def _chain_space(flow) -> tfd.Distribution:
    """The distribution whose samples are valid NeuTra chain states for `flow`."""
    if isinstance(flow, tfb.Bijector) or not _is_transformed(flow):
        raise ValueError(
            "Pass the trained flow or surrogate (a TransformedDistribution) to draw chain states "
            f"from; got {type(flow).__name__}."
        )
    return flow.distribution if _is_surrogate(flow) else flow


def neutra_initial_state(flow: tfd.Distribution, num_chains, seed=None) -> tf.Tensor:
    """Valid starting states for `neutra_kernel(..., flow)`: one draw per chain from the flow.

    The chains of `neutra_kernel` hold the flow's *flat* samples: for a surrogate from
    `flow_surrogate_posterior`, the unconstrained vector `x` of shape `[num_chains, D]` (that is,
    `flow.distribution.sample(num_chains)`), not the model's structured values
    (`flow.sample(num_chains)`, a dict, list or namedtuple); for a plain flow, its samples.
    Starting from the trained flow's draws puts the chains near the posterior from the first step.

    Args:
      flow: the flow or surrogate given to `neutra_kernel`.
      num_chains: the number of chains (an int) or a sample shape.
      seed: a seed for the draws (an int, or a stateless `(int, int)` seed).

    Returns:
      A tensor of shape `[num_chains, *event_shape]` to pass as `current_state` to
      `tfp.mcmc.sample_chain`.
    """
    return _chain_space(flow).sample(num_chains, seed=seed)


def neutra_states_to_model(flow: tfd.Distribution, states):
    """Maps `neutra_kernel` chain states to the model's values: the inverse of the flattening.

    For a surrogate from `flow_surrogate_posterior` this is `flow.bijector.forward(states)`: the
    model's structure (dict, list or namedtuple), shapes and supports, with the leading
    dimensions of `states` (e.g. `[num_results, num_chains]`). For a plain flow the states are
    already the values and are returned as they are.
    """
    return flow.bijector.forward(states) if _is_surrogate(flow) else states


def _describe(value) -> str:
    if isinstance(value, collections.abc.Mapping):
        return f"a {type(value).__name__} with keys {sorted(map(str, value))}"
    if hasattr(value, "_fields"):
        return f"a {type(value).__name__} with fields {list(value._fields)}"
    return f"a {type(value).__name__} of {len(value)} parts"


class _NeuTraKernel(tfp.mcmc.TransformedTransitionKernel):
    """A `TransformedTransitionKernel` that checks the chains' initial state before using it.

    TFP's own message for a state of the wrong structure ("Attempt to convert a value ({...})")
    does not say what the state should be; this one names the expected shape and the fix.
    """

    def __init__(self, inner_kernel, bijector, state_event_shape=None, surrogate=False, name=None):
        super().__init__(inner_kernel, bijector, name=name)
        self._parameters.update(state_event_shape=state_event_shape, surrogate=surrogate)

    def bootstrap_results(self, init_state=None, transformed_init_state=None):
        if init_state is not None:
            self._check_state(init_state)
        return super().bootstrap_results(init_state, transformed_init_state)

    def _check_state(self, state) -> None:
        event_shape = self.parameters["state_event_shape"]
        if event_shape is None:  # a bijector or a multipart flow: nothing known to check
            return
        if self.parameters["surrogate"]:
            what = (
                "the surrogate's flat unconstrained vector x of shape [num_chains, D] with "
                f"D = {event_shape[0]}, not the model's structured values"
            )
            fix = (
                "Start them with `vi.neutra_initial_state(surrogate, num_chains, seed)` "
                "(= `surrogate.distribution.sample(num_chains)`, not `surrogate.sample(...)`) "
                "and map the chain states to the model with "
                "`vi.neutra_states_to_model(surrogate, states)`."
            )
        else:
            what = "one tensor of the flow's samples"
            fix = "Start them with `vi.neutra_initial_state(flow, num_chains, seed)`."
        if tf.nest.is_nested(state):
            raise ValueError(
                f"neutra_kernel: the initial state is {_describe(state)}, but the chains hold "
                f"{what}. {fix}"
            )
        shape = tf.TensorShape(getattr(state, "shape", np.shape(state)))
        rank = len(event_shape)
        if shape.rank is not None and (
            shape.rank < rank or not shape[shape.rank - rank :].is_compatible_with(event_shape)
        ):
            raise ValueError(
                f"neutra_kernel: the initial state has shape {shape.as_list()}, but the chains "
                f"hold {what}: its shape must end in {event_shape.as_list()}. {fix}"
            )


def _kernel_parts(target_log_prob_fn, flow):
    """`(bijector, target, state event shape or None, surrogate?)` for `neutra_kernel`."""
    if isinstance(flow, tfb.Bijector):
        return flow, target_log_prob_fn, None, False
    if _is_surrogate(flow):  # flat state
        unflatten = flow.bijector

        def target(x):
            z = unflatten.forward(x)
            ldj = unflatten.forward_log_det_jacobian(x, event_ndims=1)
            return call_target(target_log_prob_fn, z) + ldj

        return flow.distribution.bijector, target, flow.distribution.event_shape, True
    if _is_transformed(flow):
        return flow.bijector, target_log_prob_fn, flow.event_shape, False
    raise ValueError(
        f"`flow` must be a TransformedDistribution or a Bijector; got {type(flow).__name__}."
    )


def neutra_kernel(
    target_log_prob_fn: Callable,
    flow: tfd.Distribution | tfb.Bijector,
    *,
    step_size,
    num_leapfrog_steps: int,
    **hmc_kwargs,
) -> tfp.mcmc.TransformedTransitionKernel:
    """NeuTra: Hamiltonian Monte Carlo in the base space of a trained flow.

    HMC moves `u`; the chain's states are `x = f(u)` (the kernel maps through the flow's
    bijector `f`), and the flow's event rank is read off the target's output, so image flows
    (event rank 3) work. For a structured surrogate the states are its flat unconstrained
    vector: start chains with `neutra_initial_state` and map states with
    `neutra_states_to_model` (see the module docstring). Prefer `real_nvp` or `iaf` flows: every
    leapfrog step runs `f` forward, which for `maf` takes `D` sequential passes.

    Args:
      target_log_prob_fn: the unnormalised log posterior, called as in `tfp.vi`.
      flow: a trained flow or surrogate (a `TransformedDistribution`), or a bijector (then the
        chain states are in its output space and are not checked).
      step_size: HMC step size (in the base space, so about `1 / sqrt(D)`-ish values work).
      num_leapfrog_steps: leapfrog steps per HMC proposal.
      **hmc_kwargs: passed to `tfp.mcmc.HamiltonianMonteCarlo`.

    Returns:
      A `tfp.mcmc.TransformedTransitionKernel` (a subclass that checks the initial state) around
      `tfp.mcmc.HamiltonianMonteCarlo`.
    """
    bijector, target, event_shape, surrogate = _kernel_parts(target_log_prob_fn, flow)
    if not isinstance(event_shape, tf.TensorShape) or event_shape.rank is None:
        event_shape = None  # a multipart flow, or an unknown event rank: no state check
    hmc = tfp.mcmc.HamiltonianMonteCarlo(
        target, step_size=step_size, num_leapfrog_steps=num_leapfrog_steps, **hmc_kwargs
    )
    return _NeuTraKernel(hmc, bijector, state_event_shape=event_shape, surrogate=surrogate)
