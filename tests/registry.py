"""One registry of bijector constructors, for the shared property suite in test_properties.py.

Each entry maps a name to `make(dtype) -> (bijector, x)` or `make(dtype) -> (bijector, x, kwargs)`:
a bijector with non-trivial parameters (perturbed away from its identity initialisation), a batch
`x` of at least 6 events, and optionally a dict of extra `check_bijector` keyword arguments
(e.g. `{"bijector_kwargs": {"conditional": c}}`, where `c` must broadcast against any sample shape).

Every transformer (affine, sigmoid, additive, spline, and a user-defined one) runs in every layer
kind (`Coupling` with the half, checkerboard and channel masks, MAF, IAF).
"""

import functools
import math

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import bijectors as fb
from tfp_flows import nn
from tfp_flows.bijectors import transformers
from tfp_flows.testing import perturb_variables

tfb = tfp.bijectors

_SOFTPLUS_ONE = math.log(math.e - 1.0)


class SoftplusAffine(transformers.Transformer):
    """A user-defined transformer: `y = x softplus(h + c) + t`, scale 1 at zero params."""

    num_params = 2

    def _shift_and_scale(self, params):
        return params[..., 0], tf.nn.softplus(params[..., 1] + _SOFTPLUS_ONE)

    def forward_and_log_det(self, x, params):
        shift, scale = self._shift_and_scale(params)
        return x * scale + shift, tf.math.log(scale)

    def inverse_and_log_det(self, y, params):
        shift, scale = self._shift_and_scale(params)
        return (y - shift) / scale, -tf.math.log(scale)

    def get_config(self):
        return {"name": "softplus_affine"}


def _transformer(name):
    if name == "user":
        return SoftplusAffine()
    # Bound 2: about a twentieth of the points of a unit normal fall in the identity tails.
    return transformers.get(name, num_bins=3, bound=2.0)


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


# -- AffineCoupling (the affine case of Coupling, `(shift, log_scale)` conditioners) ---------------


def _affine_coupling(conditioner, dtype, **kwargs):
    bij = fb.AffineCoupling(conditioner, **kwargs)
    perturb_variables(bij, 0.2)
    return bij


def affine_coupling_half_exp(dtype):
    net = nn.MLPConditioner(2, 3, hidden_units=(16,), dtype=dtype)
    return _affine_coupling(net, dtype, mask="half", scale="exp"), _normal([6, 5], dtype)


def affine_coupling_half_reverse_sigmoid(dtype):
    net = nn.MLPConditioner(3, 2, hidden_units=(16,), dtype=dtype)
    bij = _affine_coupling(net, dtype, mask="half", reverse=True, split=2, scale="sigmoid")
    return bij, _normal([6, 5], dtype)


def affine_coupling_checkerboard_additive(dtype):
    net = nn.ConvConditioner((2, 2, 2), 2, filters=4, num_blocks=1, dtype=dtype)
    bij = _affine_coupling(net, dtype, mask="checkerboard", reverse=True, scale="additive")
    return bij, _normal([6, 2, 2, 2], dtype)


def affine_coupling_half_conditional(dtype):
    net = nn.MLPConditioner(2, 2, hidden_units=(16,), conditional_size=3, dtype=dtype)
    bij = _affine_coupling(net, dtype, mask="half", scale="exp")
    condition = _normal([3], dtype, seed=5)  # one condition, broadcast over every sample shape
    return bij, _normal([6, 4], dtype), {"bijector_kwargs": {"conditional": condition}}


# -- Coupling: every transformer with every mask, conditioners returning raw params ------------


def coupling(transformer_name, mask, dtype, conditional=False):
    transformer = _transformer(transformer_name)
    p, c = transformer.num_params, 2 if conditional else None
    options = dict(num_params=p, conditional_size=c, dtype=dtype)
    if mask == "half":  # D = 5, the first 2 kept
        net, shape = nn.MLPConditioner(2, 3, hidden_units=(8,), **options), [6, 5]
    elif mask == "channel":  # [2, 2, 3] reversed: the last 2 channels kept
        net = nn.ConvConditioner((2, 2, 2), 1, filters=4, num_blocks=0, **options)
        shape = [6, 2, 2, 3]
    else:
        net = nn.ConvConditioner((2, 2, 2), 2, filters=4, num_blocks=0, **options)
        shape = [6, 2, 2, 2]
    bij = fb.Coupling(net, transformer, mask=mask, reverse=mask == "channel", dtype=dtype)
    perturb_variables(bij, 0.3)
    x = _normal(shape, dtype, scale=1.2)
    if not conditional:
        return bij, x
    return bij, x, {"bijector_kwargs": {"conditional": _normal([2], dtype, seed=5)}}


# -- MAF and IAF: every transformer --------------------------------------------------------------


def autoregressive(transformer_name, inverse, dtype, conditional=False):
    transformer = _transformer(transformer_name)
    c = 2 if conditional else None
    made = nn.MADE(
        3,
        (8,),
        transformer.num_params,
        input_order="right-to-left" if inverse else "left-to-right",
        conditional_size=c,
        dtype=dtype.name,
    )
    cls = fb.InverseAutoregressiveFlow if inverse else fb.MaskedAutoregressiveFlow
    bij = cls(made, transformer=transformer)
    perturb_variables(bij, 0.3)
    x = _normal([6, 3], dtype, scale=1.2)
    if not conditional:
        return bij, x
    return bij, x, {"bijector_kwargs": {"conditional": _normal([2], dtype, seed=6)}}


def maf_random_order(dtype):
    made = nn.MADE(5, (8,), input_order="random", hidden_degrees="random", seed=1, dtype=dtype.name)
    bij = fb.MaskedAutoregressiveFlow(made, log_scale_clamp=None)
    perturb_variables(bij, 0.3)
    return bij, _normal([6, 5], dtype)


# -- the rest --------------------------------------------------------------------------------------


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


def logit(dtype):
    # `x` in (0, 1): the data domain (the inverse's), where the forward is defined too.
    x = tf.random.stateless_uniform([6, 3], seed=[3, 7], minval=0.05, maxval=0.95, dtype=dtype)
    return fb.LogitTransform(0.05, dtype=dtype), x, {"event_ndims": 1, "require_variables": False}


def pixelwise_spline(dtype):
    bij = fb.PixelwiseSpline([2, 2, 1], num_bins=3, bound=2.0, dtype=dtype)
    perturb_variables(bij, 0.4)
    return bij, _normal([6, 2, 2, 1], dtype, scale=1.2)


REGISTRY = {
    "actnorm_image": actnorm_image,
    "actnorm_vector": actnorm_vector,
    "affine_coupling_checkerboard_additive": affine_coupling_checkerboard_additive,
    "affine_coupling_half_conditional": affine_coupling_half_conditional,
    "affine_coupling_half_exp": affine_coupling_half_exp,
    "affine_coupling_half_reverse_sigmoid": affine_coupling_half_reverse_sigmoid,
    "conv1x1_lu": conv1x1_lu,
    "conv1x1_plain": conv1x1_plain,
    "conv1x1_vector": conv1x1_vector,
    "factor_out": factor_out,
    "logit": logit,
    "maf_random_order": maf_random_order,
    "pixelwise_spline": pixelwise_spline,
    "squeeze": squeeze,
}
# Every transformer in every layer kind; the user-defined one in a coupling, a MAF and an IAF.
_KINDS = ("half", "checkerboard", "channel", "maf", "iaf")
_CASES = [(t, kind) for t in ("affine", "sigmoid", "additive", "spline") for kind in _KINDS]
_CASES += [("user", "half"), ("user", "maf"), ("user", "iaf")]
_CONDITIONAL = {("spline", "half"), ("sigmoid", "checkerboard"), ("spline", "maf"), ("user", "iaf")}
for _t, _kind in _CASES:
    _cond = (_t, _kind) in _CONDITIONAL
    _name = f"{'coupling_' * (_kind not in ('maf', 'iaf'))}{_kind}_{_t}"
    if _kind in ("maf", "iaf"):
        _make = functools.partial(autoregressive, _t, _kind == "iaf", conditional=_cond)
    else:
        _make = functools.partial(coupling, _t, _kind, conditional=_cond)
    REGISTRY[_name + "_conditional" * _cond] = _make
