"""One registry of bijector constructors, for the shared property suite in test_properties.py.

Each entry maps a name to `make(dtype) -> (bijector, x)` or `make(dtype) -> (bijector, x, kwargs)`:
a bijector with non-trivial parameters (perturbed away from its identity initialisation), a batch
`x` of at least 6 events and, optionally, keyword arguments for every bijector call (e.g. a
conditional input, which must broadcast against any sample shape).
"""

import tensorflow as tf

from tfp_flows import bijectors as fb
from tfp_flows import nn
from tfp_flows.testing import perturb_variables


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
    return bij, _normal([6, 4], dtype), {"conditional": _normal([3], dtype, seed=5)}


def iaf(dtype):
    bij = fb.InverseAutoregressiveFlow(
        nn.MADE(4, (8, 8), input_order="right-to-left", dtype=dtype.name)
    )
    perturb_variables(bij, 0.3)
    return bij, _normal([6, 4], dtype)


REGISTRY = {
    "actnorm_image": actnorm_image,
    "actnorm_vector": actnorm_vector,
    "iaf": iaf,
    "maf": maf,
    "maf_conditional": maf_conditional,
    "maf_random_order": maf_random_order,
}
