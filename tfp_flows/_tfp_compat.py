"""Every private TensorFlow / TensorFlow Probability name this package uses, in one place.

TFP's private modules can move between releases; if an import here breaks, this is the one file
to change. Each name says why the public API does not do.
"""

# `tfb.Invert(b)` returns an instance of this non-`CompositeTensor` base class whenever `b` is not
# a `CompositeTensor` (as a MAF holding a Keras network is not). Subclassing the public
# `tfb.Invert` instead would make the IAF a `CompositeTensor` with no tensor components, and
# `tf.Module` expands composites instead of walking them: a `tfb.Chain` or distribution holding
# the IAF would lose its variables.
import tensorflow_probability as tfp
from tensorflow.python.framework import ops
from tensorflow_probability.python.bijectors.invert import _Invert as Invert

# TFP's seed handling (`samplers.sanitize_seed`, `samplers.split_seed`): a base distribution that
# draws with stateless Philox ops accepts every seed form TFP's own distributions accept.
from tensorflow_probability.python.internal import samplers

__all__ = ["Invert", "bijector_cache_storages", "gradient_registry", "samplers"]


def gradient_registry() -> dict | None:
    """TF's registry of graph-mode custom gradients (name -> entry), which never forgets one;
    `tfp_flows.train.traces` removes the entries of finished step graphs (`None`: TF moved it)."""
    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


def bijector_cache_storages() -> list[dict]:
    """The storage dict of every TFP bijector cache (`tfb.Bijector`'s, and those of subclasses
    with their own, such as `tfb.FFJORD`): no public call drops a finished graph's entries."""
    storages, classes = {}, [tfp.bijectors.Bijector]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        storage = getattr(cls.__dict__.get("_cache"), "storage", None)
        if isinstance(storage, dict):
            storages[id(storage)] = storage
    return list(storages.values())
