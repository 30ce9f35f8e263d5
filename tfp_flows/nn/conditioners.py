"""Coupling conditioners: Keras 3 networks that map the kept part to a transformer's params.

With `num_params=P` they return raw params `[..., D_out, P]` (MLP) or `[..., H, W, C_out, P]`
(conv) for any transformer (`Coupling(net, transformer)`); with `num_params=None` (the default)
the pair `(shift, log_scale)` of the affine coupling, as `AffineCoupling` takes it.

Both networks are built in `__init__` (their variables exist right after construction), have a
zero-initialised last layer (so a new coupling layer is the identity), accept any number of
leading batch dimensions, and can take a conditional vector input.
"""

from tfp_flows.nn.conv import ConvConditioner
from tfp_flows.nn.mlp import MLPConditioner

__all__ = ["ConvConditioner", "MLPConditioner"]
