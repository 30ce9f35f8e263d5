"""Affine coupling (NICE, Real NVP, Glow): half the input parametrises an affine map of the rest."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.bijectors._base import FlowBijector, soft_clamp

__all__ = ["AffineCoupling"]

_MASKS = ("half", "checkerboard", "channel")
_SCALES = ("exp", "sigmoid", "additive")


class _SplitMask:
    """Keeps one contiguous slice of the last axis and transforms the other (`half`, `channel`).

    `reverse=False` keeps `x[..., :split]`; `reverse=True` keeps `x[..., split:]`.
    """

    def __init__(self, event_ndims: int, split: int | None, reverse: bool, name: str):
        self.event_ndims, self.split_size = event_ndims, split
        self.reverse, self.name = reverse, name

    def check(self, shape: tf.TensorShape) -> None:
        size = shape[-1]
        if size is None:
            raise ValueError(f"{self.name}: the last axis must have a static size; got {shape}.")
        if size < 2:
            raise ValueError(f"{self.name}: the last axis needs size >= 2 to split; got {shape}.")
        if self.split_size is not None and not 0 < self.split_size < size:
            raise ValueError(
                f"{self.name}: `split` must be in [1, {size - 1}] for a last axis of size "
                f"{size}; got {self.split_size}."
            )

    def split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        k = x.shape[-1] // 2 if self.split_size is None else self.split_size
        first, second = x[..., :k], x[..., k:]
        return (second, first) if self.reverse else (first, second)

    def merge(self, kept: tf.Tensor, transformed: tf.Tensor) -> tf.Tensor:
        parts = [transformed, kept] if self.reverse else [kept, transformed]
        return tf.concat(parts, axis=-1)

    def restrict(self, values: tf.Tensor) -> tf.Tensor:
        return values

    def sum_event(self, values: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(values, axis=list(range(-self.event_ndims, 0)))


class _CheckerboardMask(_SplitMask):
    """Keeps the pixels with `(i + j + reverse)` even, in all channels; transforms the others.

    `kept = x * m` and `transformed = x * (1 - m)` are both full images, so `merge` is a sum.
    """

    def __init__(self, reverse: bool, name: str):
        super().__init__(3, None, reverse, name)

    def check(self, shape: tf.TensorShape) -> None:
        height, width = shape[-3], shape[-2]
        if height is None or width is None:
            raise ValueError(f"{self.name}: H and W must be static; got shape {shape}.")
        if height % 2 or width % 2:
            raise ValueError(
                f"{self.name}: the checkerboard mask needs even H and W; got shape {shape}."
            )

    def _mask(self, x: tf.Tensor) -> tf.Tensor:
        i, j = np.indices(x.shape[-3:-1])
        kept = (i + j + int(self.reverse)) % 2 == 0
        return tf.constant(kept[..., None], dtype=x.dtype)

    def split(self, x):
        mask = self._mask(x)
        return x * mask, x * (1 - mask)

    def merge(self, kept, transformed):
        return kept + transformed

    def restrict(self, values):
        return values * (1 - self._mask(values))


class AffineCoupling(FlowBijector):
    r"""Affine coupling layer: the kept part `x_a` sets a shift and scale for the other part `x_b`.

    With `(t, h) = conditioner(x_a)` (plus `conditional=c` when given) and `s` the forward
    log-scale derived from `h` (see `scale`), on the transformed part `x_b`:

        forward (latent to data):   y_a = x_a,  y_b = x_b * exp(s) + t
        inverse (data to latent):   x_a = y_a,  x_b = (y_b - t) * exp(-s)
        log|det J_forward| = sum(s),   log|det J_inverse| = -sum(s)

    summed over the transformed part of the event (one value per batch member).

    Masks (which part is kept):

    * `"half"`: vector events `[D]`. Keeps `x[..., :split]` and transforms `x[..., split:]`;
      `reverse=True` keeps `x[..., split:]` and transforms `x[..., :split]`.
    * `"channel"`: image events `[H, W, C]`, split on the channel axis the same way
      (`split` defaults to `C // 2`, so an odd `C` is fine; `C < 2` is a `ValueError`).
    * `"checkerboard"`: image events `[H, W, C]` with even `H` and `W`. The pixels where
      `(i + j + reverse)` is even are kept, in all channels. The conditioner gets `x * m` (the
      full image, transformed pixels zeroed) and returns full-shape `t, h`; they are used only
      where `m == 0`.

    Scales (how `s` is derived from the conditioner's `h`):

    * `"exp"` (Real NVP): `s = soft_clamp(h, log_scale_clamp) = c * tanh(h / c)`, which is
      `h` near 0 and bounded by `c`; `log_scale_clamp=None` gives `s = h`.
    * `"sigmoid"` (Glow): the scale applied in the data-to-latent direction (`inverse`, which
      `log_prob` runs) is `sigmoid(h + 2)`, i.e. `s = -log_sigmoid(h + 2)` and
      `log|det J_inverse| = sum(log_sigmoid(h + 2))`. The offset 2 makes a zero-initialised
      layer start near (not at) the identity, with scale `sigmoid(2) ~ 0.88`.
    * `"additive"` (NICE): `s = 0`, shift only; volume preserving with `is_constant_jacobian`.
      The conditioner may return `None` as its log-scale.

    Args:
      conditioner: a callable `conditioner(x_a) -> (shift, log_scale)` (called as
        `conditioner(x_a, conditional=c)` when the bijector gets `conditional=c`), both of the
        transformed part's shape `[..., D - split]` (`half`), `[..., H, W, C - split]`
        (`channel`) or `[..., H, W, C]` (`checkerboard`), any leading dims. Keras layers
        (e.g. `tfp_flows.nn.MLPConditioner`, `ConvConditioner`) must be built already (their
        variables must exist) and hold variables of the bijector's dtype; their variables are
        then the bijector's `trainable_variables`. Under a mixed Keras policy they may compute
        in bfloat16/float16: their outputs are cast to the bijector's dtype.
      mask: `"half"`, `"checkerboard"` or `"channel"`.
      reverse: which part is kept (see the masks above).
      split: for `"half"` and `"channel"`, the size of the first slice of the last axis;
        default half of it, rounded down.
      scale: `"exp"`, `"sigmoid"` or `"additive"`.
      log_scale_clamp: bound of the soft clamp of `"exp"`; `None` disables it.
      validate_args: check inputs for NaN and inf at run time.
      dtype: float dtype; by default a Keras conditioner's variable dtype, else any.
      name: name of the bijector.

    Call: `forward(x, conditional=c)`, `inverse(y, conditional=c)` and the log-dets take an
    optional conditional input, passed through to the conditioner.

    References:
      Dinh, Krueger & Bengio (2014), NICE: Non-linear Independent Components Estimation,
      https://arxiv.org/abs/1410.8516

      Dinh, Sohl-Dickstein & Bengio (2016), Density estimation using Real NVP,
      https://arxiv.org/abs/1605.08803

      Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions,
      https://arxiv.org/abs/1807.03039

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.bijectors import AffineCoupling
    >>> from tfp_flows.nn import MLPConditioner
    >>> bij = AffineCoupling(MLPConditioner(2, 2, hidden_units=(16,)), mask="half")
    >>> x = tf.random.stateless_normal([5, 4], seed=[0, 1])
    >>> bool(tf.reduce_all(bij.forward(x) == x))  # zero-initialised: the identity
    True
    >>> bij.forward_log_det_jacobian(x, event_ndims=1).shape
    TensorShape([5])
    """

    def __init__(
        self,
        conditioner: Callable,
        *,
        mask: str = "half",
        reverse: bool = False,
        split: int | None = None,
        scale: str = "exp",
        log_scale_clamp: float | None = 3.0,
        validate_args: bool = False,
        dtype=None,
        name: str = "affine_coupling",
    ):
        parameters = dict(locals())
        if mask not in _MASKS:
            raise ValueError(f"`mask` must be one of {_MASKS}; got {mask!r}.")
        if scale not in _SCALES:
            raise ValueError(f"`scale` must be one of {_SCALES}; got {scale!r}.")
        if not callable(conditioner):
            raise ValueError(f"`conditioner` must be callable; got {conditioner!r}.")
        if split is not None:
            if mask == "checkerboard":
                raise ValueError("`split` applies to the 'half' and 'channel' masks only.")
            split = check.integer(split, "split")
        log_scale_clamp = check.clamp_bound(log_scale_clamp)
        keras_layers = []
        if isinstance(conditioner, keras.layers.Layer):
            if not conditioner.built or not conditioner.weights:
                raise ValueError(
                    f"`conditioner` {conditioner.name!r} is an unbuilt Keras layer, so its "
                    "variables do not exist yet. Build it first (call it once on a batch of "
                    "the kept part, or call `conditioner.build(shape)`), or use the "
                    "conditioners of `tfp_flows.nn`, which are built at construction."
                )
            # A mixed policy (bfloat16 compute, float32 variables) computes the coupling in float32.
            layer_dtype = tf.as_dtype(conditioner.dtype_policy.variable_dtype)
            if dtype is None:
                dtype = layer_dtype
            elif tf.as_dtype(dtype) != layer_dtype:
                raise ValueError(
                    f"`dtype` {tf.as_dtype(dtype).name} differs from the conditioner's variable "
                    f"dtype {layer_dtype.name}; build the conditioner with `dtype=`."
                )
            keras_layers.append(conditioner)
        with tf.name_scope(name) as name:
            super().__init__(
                forward_min_event_ndims=1 if mask == "half" else 3,
                is_constant_jacobian=scale == "additive",
                validate_args=validate_args,
                dtype=dtype,
                parameters=parameters,
                name=name,
                keras_layers=keras_layers,
            )
        self._conditioner = conditioner
        # tf.Module does not look inside Keras layers; list their variables so that
        # `trainable_variables` (and checkpoints, tapes, tfp.vi) see them.
        self._layer_variables = [w.value for layer in keras_layers for w in layer.weights]
        if mask == "checkerboard":
            self._mask = _CheckerboardMask(bool(reverse), self.name)
        else:
            self._mask = _SplitMask(self.forward_min_event_ndims, split, bool(reverse), self.name)
        self._mask_kind, self._scale = mask, scale
        self._log_scale_clamp = log_scale_clamp

    @property
    def conditioner(self) -> Callable:
        return self._conditioner

    @property
    def mask(self) -> str:
        return self._mask_kind

    @property
    def scale(self) -> str:
        return self._scale

    def _check_event_shape(self, shape, what):
        super()._check_event_shape(shape, what)  # rank >= 1 ('half') or 3 (images)
        if shape.rank is not None:
            self._mask.check(shape)

    def _shift_and_log_scale(self, kept, transformed, conditional):
        """The conditioner's output as `(t, s)`, `s` the forward log-scale, masked and checked."""
        kwargs = {} if conditional is None else {"conditional": conditional}
        shift, h = self._conditioner(kept, **kwargs)
        shift, h = (v if v is None else tf.cast(v, kept.dtype) for v in (shift, h))  # bf16 nets
        if self._scale == "additive" and h is None:
            h = tf.zeros_like(shift)
        for what, value in (("shift", shift), ("log_scale", h)):
            if value is None:
                raise ValueError(
                    f"{self.name}: the conditioner returned no {what}; only scale='additive' "
                    "allows a None log_scale."
                )
            if not value.shape.is_compatible_with(transformed.shape):
                raise ValueError(
                    f"{self.name}: the conditioner's {what} must have the transformed part's "
                    f"shape: expected {transformed.shape}, got {value.shape}."
                )
        if self._scale == "exp":
            s = soft_clamp(h, self._log_scale_clamp)
        elif self._scale == "sigmoid":
            s = tf.math.softplus(-(h + 2))  # -log_sigmoid(h + 2), computed stably
        else:
            s = tf.zeros_like(h)
        return self._mask.restrict(shift), self._mask.restrict(s)

    def _forward_and_log_det(self, x, conditional=None):
        kept, transformed = self._mask.split(x)
        t, s = self._shift_and_log_scale(kept, transformed, conditional)
        y = self._mask.merge(kept, transformed * tf.exp(s) + t)
        return y, self._mask.sum_event(s)

    def _inverse_and_log_det(self, y, conditional=None):
        kept, transformed = self._mask.split(y)
        t, s = self._shift_and_log_scale(kept, transformed, conditional)
        x = self._mask.merge(kept, (transformed - t) * tf.exp(-s))
        return x, -self._mask.sum_event(s)
