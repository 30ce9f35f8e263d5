"""Small frozen specs that carry a factory's choices to the builders, checked once.

Example:

>>> from tfp_flows.flows.specs import NetworkSpec, TransformSpec
>>> NetworkSpec(hidden_units=[8]).hidden_units
(8,)
>>> type(TransformSpec("affine", scale="sigmoid").make()).__name__
'SigmoidAffine'
>>> TransformSpec("spline", num_bins=4).num_params  # 4 widths, 4 heights, 3 slopes
11
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows import bijectors as fb
from tfp_flows.bijectors import transformers

__all__ = ["SCALES", "CouplingSpec", "NetworkSpec", "TransformSpec", "event_shape_from"]

SCALES = {"exp": "affine", "sigmoid": "sigmoid", "additive": "additive"}  # scale -> transformer
_NORMALIZATIONS = (None, "actnorm", "batchnorm")


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """The conditioner networks of a flow (MLPs, convolutional nets or MADEs).

    Args:
      hidden_units: hidden layer sizes of each MLP or MADE.
      filters: channels of each convolutional conditioner's hidden convolutions.
      num_blocks: residual blocks of each convolutional conditioner.
      activation: the MADEs' hidden activation.
      conditional_size: size of the condition vector every network takes, or `None`.
      dtype: the flow's floating-point dtype.
    """

    hidden_units: tuple[int, ...] = (64, 64)
    filters: int = 64
    num_blocks: int = 2
    activation: str = "relu"
    conditional_size: int | None = None
    dtype: tf.DType = tf.float32

    def __post_init__(self):
        units = check.positive_ints(self.hidden_units, "hidden_units")
        object.__setattr__(self, "hidden_units", units)
        object.__setattr__(self, "filters", check.integer(self.filters, "filters"))
        size = check.integer(self.conditional_size, "conditional_size", allow_none=True)
        object.__setattr__(self, "conditional_size", size)
        object.__setattr__(self, "dtype", check.floating_dtype(self.dtype))

    @property
    def layer_dtype(self):
        """The dtype (policy) of the networks of a flow computing in `dtype`.

        Under a mixed global Keras policy (e.g. `"mixed_bfloat16"`) whose variable dtype is the
        flow's, the networks take that policy: they compute in bfloat16 (or float16) with
        float32 variables, and the bijectors cast their outputs back, so log-determinants and
        log-probabilities stay in the flow's dtype.
        """
        policy = keras.config.dtype_policy()
        mixed = policy.compute_dtype != policy.variable_dtype
        if mixed and tf.as_dtype(policy.variable_dtype) == self.dtype:
            return policy
        return self.dtype


@dataclasses.dataclass(frozen=True)
class TransformSpec:
    """The elementwise map of a flow's coupling or autoregressive layers.

    Args:
      transformer: `"affine"` (its kind set by `scale`), `"additive"` (NICE, the same as
        `scale="additive"`), `"spline"`, or any name or object `transformers.get` takes.
      scale: for `"affine"`: `"exp"` (soft-clamped by `log_scale_clamp`), `"sigmoid"`
        (Glow's) or `"additive"` (none: volume-preserving).
      log_scale_clamp: bound of the soft clamp on the `"exp"` log-scale, or `None`.
      num_bins: bins of the `"spline"`.
      spline_bound: the `"spline"` acts on `[-spline_bound, spline_bound]`, the identity outside.
    """

    transformer: object = "affine"
    scale: str = "exp"
    log_scale_clamp: float | None = 3.0
    num_bins: int = 8
    spline_bound: float = 5.0

    def __post_init__(self):
        if self.transformer == "additive":
            object.__setattr__(self, "transformer", "affine")
            object.__setattr__(self, "scale", "additive")
        if self.transformer == "affine" and self.scale not in SCALES:
            raise ValueError(f"`scale` must be one of {sorted(SCALES)}; got {self.scale!r}.")
        object.__setattr__(self, "log_scale_clamp", check.clamp_bound(self.log_scale_clamp))
        if self.transformer == "spline":
            object.__setattr__(self, "num_bins", check.integer(self.num_bins, "num_bins"))
            bound = check.clamp_bound(self.spline_bound, "spline_bound")
            object.__setattr__(self, "spline_bound", bound)
        self.make()  # refuses unknown transformers now, naming the argument

    def make(self) -> transformers.Transformer:
        """The transformer object."""
        name = SCALES[self.scale] if self.transformer == "affine" else self.transformer
        return transformers.get(
            name,
            log_scale_clamp=self.log_scale_clamp,
            num_bins=self.num_bins,
            bound=self.spline_bound,
        )

    @property
    def num_params(self) -> int | None:
        """`num_params` of the conditioners: `None` (a `(shift, log_scale)` pair) for affine."""
        return None if self.transformer == "affine" else self.make().num_params

    def coupling(self, conditioner, *, mask: str, reverse: bool, split=None, name: str):
        """A coupling layer with this map: an `AffineCoupling` for `"affine"`, else `Coupling`."""
        kwargs = dict(mask=mask, reverse=reverse, split=split, name=name)
        if self.transformer == "affine":
            clamp = self.log_scale_clamp
            return fb.AffineCoupling(conditioner, scale=self.scale, log_scale_clamp=clamp, **kwargs)
        return fb.Coupling(conditioner, self.make(), **kwargs)


@dataclasses.dataclass(frozen=True)
class CouplingSpec:
    """What every coupling layer of a flow shares: its map, its networks, what follows it.

    Args:
      transform: the elementwise map.
      network: the conditioner networks.
      normalization: `"actnorm"`, `"batchnorm"` or `None`, after each coupling.
    """

    transform: TransformSpec
    network: NetworkSpec
    normalization: str | None = "actnorm"

    def __post_init__(self):
        if self.normalization not in _NORMALIZATIONS:
            raise ValueError(
                "`normalization` must be None, 'actnorm' or 'batchnorm'; got "
                f"{self.normalization!r}."
            )


def event_shape_from(
    event_shape=None, *, rank: int | Sequence[int] | None = None, **aliases
) -> tuple[int, ...]:
    """The event shape given as `event_shape` or as one of its keyword `aliases` (e.g. `dim`).

    Errors name the argument the caller used. `rank` (an int or several) is the allowed rank.
    """
    given = {"event_shape": event_shape, **aliases}
    names = " or ".join(f"`{name}`" for name in given)
    given = {name: value for name, value in given.items() if value is not None}
    if len(given) != 1:
        got = ", ".join(f"{name}={value!r}" for name, value in given.items()) or "neither"
        raise ValueError(f"Pass the event shape once, as {names}; got {got}.")
    ((name, value),) = given.items()
    shape = check.shape(value, name)
    ranks = (rank,) if isinstance(rank, int) else rank
    if ranks is not None and len(shape) not in ranks:
        wanted = " or ".join({1: "[D]", 3: "[H, W, C]"}.get(r, f"rank {r}") for r in ranks)
        raise ValueError(f"`{name}` must be {wanted}; got {value!r}.")
    return shape
