"""One registry of bijector constructors, for the shared property suite in test_properties.py.

Each entry maps a name to `make(dtype) -> (bijector, x)`: a bijector with non-trivial parameters
(perturbed away from its identity initialisation) and a batch `x` of at least 6 events. An entry
may return a third element, a dict of extra keyword arguments for `check_bijector` (e.g.
`{"require_variables": False}` for a bijector without parameters).
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import bijectors as fb
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


REGISTRY = {
    "actnorm_image": actnorm_image,
    "actnorm_vector": actnorm_vector,
    "conv1x1_lu": conv1x1_lu,
    "conv1x1_plain": conv1x1_plain,
    "conv1x1_vector": conv1x1_vector,
    "factor_out": factor_out,
    "squeeze": squeeze,
}
