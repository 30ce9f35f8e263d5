"""Every private TensorFlow Probability name this package uses, imported in one place.

TFP's private modules can move between releases; if an import here breaks, this is the one file
to change. Each name says why the public API does not do.
"""

# `tfb.Invert(b)` returns an instance of this non-`CompositeTensor` base class whenever `b` is not
# a `CompositeTensor` (as a MAF holding a Keras network is not). Subclassing the public
# `tfb.Invert` instead would make the IAF a `CompositeTensor` with no tensor components, and
# `tf.Module` expands composites instead of walking them: a `tfb.Chain` or distribution holding
# the IAF would lose its variables.
from tensorflow_probability.python.bijectors.invert import _Invert as Invert

# TFP's seed handling (`samplers.sanitize_seed`, `samplers.split_seed`): a base distribution that
# draws with stateless Philox ops accepts every seed form TFP's own distributions accept.
from tensorflow_probability.python.internal import samplers

__all__ = ["Invert", "samplers"]
