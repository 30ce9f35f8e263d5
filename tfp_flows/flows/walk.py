"""The one walker over a flow's bijectors, and the Keras 3 objects behind a flow.

Example:

>>> from tfp_flows import flows
>>> dist = flows.real_nvp(2, num_layers=2, hidden_units=(4,), base="diag_normal")
>>> [type(b).__name__ for b in flows.flow_bijectors(dist)][:2]
['_Chain', 'AffineCoupling']
>>> layers, variables = flows.keras_objects(dist)
>>> [layer.name for layer in layers], [v.name for v in variables][-2:]
(['mlp_0', 'mlp_1'], ['loc', 'raw_scale'])
"""

from __future__ import annotations

import keras
import tensorflow_probability as tfp

from tfp_flows import bijectors as fb

tfb, tfd = tfp.bijectors, tfp.distributions

__all__ = ["flow_bijectors", "keras_objects"]


def flow_bijectors(dist_or_bijector) -> list[tfb.Bijector]:
    """Every bijector in a flow: the chain itself, then everything nested in it, in order."""
    bijector = getattr(dist_or_bijector, "bijector", dist_or_bijector)
    return [bijector, *(m for m in bijector.submodules if isinstance(m, tfb.Bijector))]


def _keras_owners(dist_or_bijector):
    """What holds the flow's Keras objects: its package bijectors, then its base distribution."""
    for bijector in flow_bijectors(dist_or_bijector):
        if isinstance(bijector, tfb.BatchNormalization):  # its tf-keras layer is built lazily
            raise ValueError(
                f"The flow holds tfb.BatchNormalization ({bijector.name!r}), whose statistics and "
                "variables live in a tf-keras layer that a Keras 3 model can neither track nor "
                "save. Use ActNorm (normalization='actnorm') or train with a GradientTape loop."
            )
        if isinstance(bijector, fb.FlowBijector):
            yield (*bijector.keras_layers, *bijector.keras_variables)
    base = getattr(dist_or_bijector, "distribution", None)  # a trainable base (flows.bases)
    yield tuple(getattr(base, "keras_variables", ()))


def keras_objects(dist_or_bijector) -> tuple[list, list]:
    """The Keras 3 layers and variables behind a flow, each once, in a deterministic order.

    The layers and variables of its bijectors, then the variables of a trainable base
    (`tfp_flows.flows.bases`). Raises `ValueError` if the flow holds a trainable `tf.Variable`
    that is not backed by one of them (Keras could neither train nor save it).
    """
    layers, variables, seen = [], [], set()
    for objects in _keras_owners(dist_or_bijector):
        for obj in objects:
            if id(obj) not in seen:
                seen.add(id(obj))
                (layers if isinstance(obj, keras.layers.Layer) else variables).append(obj)
    backed = {id(v.value) for v in variables}
    backed |= {id(w.value) for layer in layers for w in layer.weights}
    for v in getattr(dist_or_bijector, "trainable_variables", ()):
        if id(v) not in backed:
            raise ValueError(
                f"The flow's variable {v.name!r} is not a Keras 3 variable, so a Keras model can "
                "neither train nor save it (e.g. tfb.BatchNormalization holds tf-keras layers). "
                "Use tfp_flows.bijectors.ActNorm instead (a trainable base: flows.bases), or "
                "train with a GradientTape loop."
            )
    return layers, variables
