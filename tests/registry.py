"""One registry of bijector constructors, for the shared property suite in test_properties.py.

Each entry maps a name to `make(dtype) -> (bijector, x)` or `make(dtype) -> (bijector, x, kwargs)`:
a bijector with non-trivial parameters (perturbed away from its identity initialisation), a batch
`x` of at least 6 events, and optionally a dict of extra `check_bijector` keyword arguments
(e.g. `{"bijector_kwargs": {"conditional": c}}`, where `c` must broadcast against any sample shape).
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import bijectors as fb
from tfp_flows import nn
from tfp_flows.testing import perturb_variables

tfb = tfp.bijectors


def _normal(shape, dtype, seed=0, scale=1.0, loc=0.0):
    return tf.random.stateless_normal(shape, seed=[seed, 7], dtype=dtype) * scale + loc


def actnorm_image(dtype):
    bij = fb.ActNorm(3, event_ndims=3, dtype=dtype)
    bij.inverse(_normal([16, 4, 4, 3], dtype, seed=1, scale=3.0, loc=1.5))  # data-dependent init
    perturb_variables(bij, 0.2)
    return bij, _normal([6, 4, 4, 3], dtype)


def actnorm_vector(dtype):
    bij = fb.ActNorm(5, event_ndims=1, dtype=dtype)
    bij.inverse(_normal([32, 5], dtype, seed=2, scale=0.3, loc=-2.0))
    perturb_variables(bij, 0.2)
    return bij, _normal([6, 5], dtype)


def _coupling(conditioner, dtype, **kwargs):
    bij = fb.AffineCoupling(conditioner, **kwargs)
    perturb_variables(bij, 0.2)
    return bij


def coupling_half_exp(dtype):
    net = nn.MLPConditioner(2, 3, hidden_units=(16,), dtype=dtype)
    return _coupling(net, dtype, mask="half", scale="exp"), _normal([6, 5], dtype)


def coupling_half_reverse_sigmoid(dtype):
    net = nn.MLPConditioner(3, 2, hidden_units=(16,), dtype=dtype)
    bij = _coupling(net, dtype, mask="half", reverse=True, split=2, scale="sigmoid")
    return bij, _normal([6, 5], dtype)


def coupling_half_additive(dtype):
    net = nn.MLPConditioner(2, 2, hidden_units=(16,), dtype=dtype)
    return _coupling(net, dtype, mask="half", scale="additive"), _normal([6, 4], dtype)


def coupling_checkerboard_exp(dtype):
    net = nn.ConvConditioner((4, 4, 2), 2, filters=8, num_blocks=1, dtype=dtype)
    bij = _coupling(net, dtype, mask="checkerboard", reverse=True, scale="exp")
    return bij, _normal([6, 4, 4, 2], dtype)


def coupling_channel_sigmoid(dtype):
    net = nn.ConvConditioner((2, 4, 1), 2, filters=8, num_blocks=1, dtype=dtype)
    bij = _coupling(net, dtype, mask="channel", scale="sigmoid")
    return bij, _normal([6, 2, 4, 3], dtype)


def coupling_half_conditional(dtype):
    net = nn.MLPConditioner(2, 2, hidden_units=(16,), conditional_size=3, dtype=dtype)
    bij = _coupling(net, dtype, mask="half", scale="exp")
    condition = _normal([3], dtype, seed=5)  # one condition, broadcast over every sample shape
    return bij, _normal([6, 4], dtype), {"bijector_kwargs": {"conditional": condition}}


def conv1x1_lu(dtype):
    bij = fb.Invertible1x1Conv(3, seed=2, dtype=dtype)  # a 3-cycle permutation
    perturb_variables(bij, 0.3)
    return bij, _normal([6, 4, 4, 3], dtype)


def conv1x1_plain(dtype):
    bij = fb.Invertible1x1Conv(3, lu=False, seed=2, dtype=dtype)
    perturb_variables(bij, 0.3)
    return bij, _normal([6, 4, 4, 3], dtype)


def conv1x1_vector(dtype):
    bij = fb.Invertible1x1Conv(5, event_ndims=1, seed=3, dtype=dtype)
    perturb_variables(bij, 0.3)
    return bij, _normal([6, 5], dtype)


def squeeze(dtype):
    # Channels divisible by 4, so `x` is also a valid input of the inverse (depth-to-space).
    return fb.Squeeze(), _normal([6, 4, 4, 4], dtype), {"require_variables": False}


def factor_out(dtype):
    # The inner flow squeezes [4, 4, 2] -> [2, 2, 8], runs its steps and un-squeezes back.
    inner = tfb.Chain(
        [
            tfb.Invert(fb.Squeeze()),
            fb.Invertible1x1Conv(8, seed=4, dtype=dtype),
            fb.ActNorm(8, dtype=dtype),
            fb.Squeeze(),
        ]
    )
    bij = fb.FactorOut(inner, split=2)
    bij.inverse(_normal([16, 4, 4, 4], dtype, seed=5, scale=2.0, loc=0.5))  # ActNorm init
    perturb_variables(bij, 0.2)
    return bij, _normal([6, 4, 4, 4], dtype)


def maf(dtype):
    bij = fb.MaskedAutoregressiveFlow(nn.MADE(4, (8, 8), dtype=dtype.name))
    perturb_variables(bij, 0.3)
    return bij, _normal([6, 4], dtype)


def maf_random_order(dtype):
    made = nn.MADE(5, (8,), input_order="random", hidden_degrees="random", seed=1, dtype=dtype.name)
    bij = fb.MaskedAutoregressiveFlow(made, log_scale_clamp=None)
    perturb_variables(bij, 0.3)
    return bij, _normal([6, 5], dtype)


def maf_conditional(dtype):
    made = nn.MADE(4, (8,), conditional_size=3, dtype=dtype.name)
    bij = fb.MaskedAutoregressiveFlow(made)
    perturb_variables(bij, 0.3)
    condition = _normal([3], dtype, seed=5)
    return bij, _normal([6, 4], dtype), {"bijector_kwargs": {"conditional": condition}}


def iaf(dtype):
    bij = fb.InverseAutoregressiveFlow(
        nn.MADE(4, (8, 8), input_order="right-to-left", dtype=dtype.name)
    )
    perturb_variables(bij, 0.3)
    return bij, _normal([6, 4], dtype)


def maf_spline(dtype):
    # Bound 2: about a twentieth of the points of a unit normal fall in the identity tails.
    spline = fb.transformers.RationalQuadratic(num_bins=4, bound=2.0)
    made = nn.MADE(4, (8, 8), num_params=spline.num_params, dtype=dtype.name)
    bij = fb.MaskedAutoregressiveFlow(made, transformer=spline)
    perturb_variables(bij, 0.3)
    return bij, _normal([6, 4], dtype, scale=1.2)


def iaf_spline_conditional(dtype):
    spline = fb.transformers.RationalQuadratic(num_bins=3, bound=2.5)
    made = nn.MADE(3, (8,), num_params=spline.num_params, conditional_size=2, dtype=dtype.name)
    bij = fb.InverseAutoregressiveFlow(made, transformer=spline)
    perturb_variables(bij, 0.3)
    condition = _normal([2], dtype, seed=6)
    return bij, _normal([6, 3], dtype), {"bijector_kwargs": {"conditional": condition}}


REGISTRY = {
    "actnorm_image": actnorm_image,
    "actnorm_vector": actnorm_vector,
    "conv1x1_lu": conv1x1_lu,
    "conv1x1_plain": conv1x1_plain,
    "conv1x1_vector": conv1x1_vector,
    "coupling_channel_sigmoid": coupling_channel_sigmoid,
    "coupling_checkerboard_exp": coupling_checkerboard_exp,
    "coupling_half_additive": coupling_half_additive,
    "coupling_half_conditional": coupling_half_conditional,
    "coupling_half_exp": coupling_half_exp,
    "coupling_half_reverse_sigmoid": coupling_half_reverse_sigmoid,
    "factor_out": factor_out,
    "iaf": iaf,
    "iaf_spline_conditional": iaf_spline_conditional,
    "maf": maf,
    "maf_conditional": maf_conditional,
    "maf_random_order": maf_random_order,
    "maf_spline": maf_spline,
    "squeeze": squeeze,
}
