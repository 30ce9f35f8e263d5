"""Keras 3 networks for flows: MADE and coupling conditioners."""

from tfp_flows.nn.conditioners import ConvConditioner, MLPConditioner
from tfp_flows.nn.made import MADE

__all__ = ["ConvConditioner", "MADE", "MLPConditioner"]
