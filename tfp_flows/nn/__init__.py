"""Keras 3 networks for flows: MADE and coupling conditioners."""

from tfp_flows.nn.conditioners import ConvConditioner, MLPConditioner

__all__ = ["ConvConditioner", "MLPConditioner"]
