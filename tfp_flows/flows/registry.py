"""The registry of flow factories, by name, so Keras models can rebuild a flow from a config."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["FACTORIES", "register_factory"]

FACTORIES: dict[str, Callable[..., tfd.TransformedDistribution]] = {}


def register_factory(name: str) -> Callable:
    """Registers a flow factory under `name`, so Keras models can rebuild it from their config.

    >>> from tfp_flows.flows import FACTORIES, register_factory
    >>> @register_factory("my_maf")
    ... def my_maf(event_shape=None, **kwargs):
    ...     from tfp_flows.flows import maf
    ...     return maf(event_shape, num_layers=1, **kwargs)
    >>> FACTORIES["my_maf"] is my_maf
    True
    >>> del FACTORIES["my_maf"]
    """

    def wrap(fn):
        FACTORIES[name] = fn
        return fn

    return wrap
