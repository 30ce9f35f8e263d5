"""Factories for whole flows: Real NVP, Glow, MAF and IAF, over a fixed or trainable base.

Each factory returns a `tfd.TransformedDistribution` whose bijector is a `tfb.Chain` of
`tfp_flows.bijectors`, so every piece is inspectable and every variable is reachable through
`dist.trainable_variables`. The first argument of every factory is `event_shape`; the others are
keyword-only with defaults. Every factory takes

* `base=`: `"normal"` (default, `N(0, I)`), `"diag_normal"`, `"mixture"`, `"student_t"` (all
  trainable) or a `tfd.Distribution` (`tfp_flows.flows.bases`);
* `conditional_size=` for conditional density estimation `p(x | c)`; pass the condition with
  `condition(dist, c)` (a distribution with `c` bound) or
  `dist.log_prob(x, bijector_kwargs=conditional_kwargs(dist, c))`;
* `transformer=`, the elementwise map of its layers: `"affine"`, `"spline"` (and for the
  coupling flows `"additive"`).

Modules: `coupling_flows` (`real_nvp`, `glow`), `autoregressive` (`maf`, `iaf`), `bases`,
`conditional`, and the builders they share: `specs` (what the factories pass on), `couplings`
(coupling layers, the vector coupling stack), `multiscale` (the multi-scale image layout),
`assembly` (base and data-end transforms), `walk` (`flow_bijectors`, `keras_objects`), `registry`
(`FACTORIES`, `register_factory`, so Keras models rebuild a flow from its name and kwargs).

Example:

>>> import tensorflow as tf
>>> from tfp_flows import flows
>>> dist = flows.maf(2, num_layers=2, hidden_units=(8,))
>>> dist.log_prob(tf.zeros([5, 2])).shape
TensorShape([5])
>>> img = flows.glow((8, 8, 1), levels=2, steps_per_level=1, filters=8)
>>> img.sample(2, seed=0).shape
TensorShape([2, 8, 8, 1])
>>> heavy = flows.real_nvp(2, num_layers=2, hidden_units=(8,), transformer="spline",
...                        base="student_t")
>>> [v.name for v in flows.keras_objects(heavy)[1]][-3:]  # the base's, after the layers'
['raw_df', 'loc', 'raw_scale']
"""

from tfp_flows.flows import bases
from tfp_flows.flows.autoregressive import iaf, maf
from tfp_flows.flows.conditional import _route as _route
from tfp_flows.flows.conditional import condition, conditional_kwargs
from tfp_flows.flows.coupling_flows import glow, real_nvp
from tfp_flows.flows.registry import FACTORIES, register_factory
from tfp_flows.flows.walk import flow_bijectors, keras_objects

__all__ = [
    "FACTORIES",
    "bases",
    "condition",
    "conditional_kwargs",
    "flow_bijectors",
    "glow",
    "iaf",
    "keras_objects",
    "maf",
    "real_nvp",
    "register_factory",
]
