"""Factories for whole flows: Real NVP, Glow, MAF and IAF.

Each factory returns a `tfd.TransformedDistribution` over a standard-normal base whose bijector is
a `tfb.Chain` of `tfp_flows.bijectors`, so every piece is inspectable and every variable is
reachable through `dist.trainable_variables`. Arguments are keyword-only with defaults. Every
factory takes `conditional_size` for conditional density estimation `p(x | c)`; pass the
condition with `condition(dist, c)` (a distribution with `c` bound) or
`dist.log_prob(x, bijector_kwargs=conditional_kwargs(dist, c))`.

Multi-scale image flows are one chain over one `[H, W, C]` event: each level squeezes, runs its
steps, factors out half of the channels with `FactorOut` (the other half goes on to the next
level) and un-squeezes, so the latent has the image's shape.

Example:

>>> import tensorflow as tf
>>> from tfp_flows import flows
>>> dist = flows.maf(2, num_layers=2, hidden_units=(8,))
>>> dist.log_prob(tf.zeros([5, 2])).shape
TensorShape([5])
>>> img = flows.glow((8, 8, 1), levels=2, steps_per_level=1, filters=8)
>>> img.sample(2, seed=0).shape
TensorShape([2, 8, 8, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows import bijectors as fb
from tfp_flows import nn
from tfp_flows._tfp_compat import samplers

tfb, tfd = tfp.bijectors, tfp.distributions

__all__ = [
    "FACTORIES",
    "condition",
    "conditional_kwargs",
    "flow_bijectors",
    "keras_objects",
    "glow",
    "iaf",
    "maf",
    "real_nvp",
    "register_factory",
]

FACTORIES: dict[str, Callable[..., tfd.TransformedDistribution]] = {}


def register_factory(name: str):
    """Registers a flow factory under `name`, so Keras models can rebuild it from their config."""

    def wrap(fn):
        FACTORIES[name] = fn
        return fn

    return wrap


class _PhiloxNormal(tfd.Normal):
    """`tfd.Normal` whose noise is drawn with the Philox algorithm named explicitly.

    The same numbers as `tfd.Normal` in eager mode and in `tf.function` (Philox is what TF picks
    on CPU); under `jit_compile=True` on CPU, XLA's default algorithm for an unnamed one is
    several times slower (about 20 ms against 3 ms for 512 x 16 draws on 2 cores).
    """

    def _sample_n(self, n, seed=None):
        static_n = tf.get_static_value(n)  # the product of the sample shape and the event shape
        if static_n is not None and static_n < 0:
            raise ValueError("`sample_shape` must not hold negative sizes.")
        loc, scale = tf.convert_to_tensor(self.loc), tf.convert_to_tensor(self.scale)
        shape = tf.concat([[n], self._batch_shape_tensor(loc=loc, scale=scale)], axis=0)
        seed = samplers.sanitize_seed(seed)
        noise = tf.random.stateless_normal(shape, seed, dtype=self.dtype, alg="philox")
        return noise * scale + loc


def _standard_normal(event_shape: Sequence[int], dtype) -> tfd.Distribution:
    return tfd.Sample(
        _PhiloxNormal(tf.constant(0.0, dtype), tf.constant(1.0, dtype)),
        sample_shape=list(event_shape),
    )


def _event_shape(value, what: str, rank: int | None = None) -> tuple[int, ...]:
    return check.shape(value, what, rank=rank)


def _positive_int(value, what: str) -> int:
    return check.integer(value, what)


def _check_image_levels(shape: tuple[int, int, int], levels: int, what: str, arg: str) -> None:
    """H and W must halve `levels` times (squeezes, or a last checkerboard mask) and stay whole."""
    height, width, _ = shape
    factor = 2**levels
    if height % factor or width % factor:
        raise ValueError(
            f"{what}: `{arg}`={levels} needs H and W divisible by 2**{levels} = {factor}; the "
            f"image shape {shape} is not. Use fewer levels or pad the images."
        )


def _network_dtype(dtype):
    """The dtype (policy) of the conditioner networks of a flow computing in `dtype`.

    Under a mixed global Keras policy (e.g. `keras.mixed_precision.set_global_policy(
    "mixed_bfloat16")`) whose variable dtype is the flow's, the networks take that policy: they
    compute in bfloat16 (or float16) with float32 variables, and the bijectors cast their outputs
    back, so log-determinants and log-probabilities stay in the flow's dtype.
    """
    policy = keras.config.dtype_policy()
    mixed = policy.compute_dtype != policy.variable_dtype
    if mixed and tf.as_dtype(policy.variable_dtype) == tf.as_dtype(dtype):
        return policy
    return dtype


def _normalization_layer(kind: str | None, channels: int, event_ndims: int, dtype, name: str):
    if kind == "actnorm":
        return [fb.ActNorm(channels, event_ndims=event_ndims, dtype=dtype, name=f"{name}_actnorm")]
    if kind == "batchnorm":
        return [tfb.BatchNormalization(name=f"{name}_batchnorm")]
    return []


# -- vector flows ----------------------------------------------------------------------------


def _vector_coupling_flow(dim, num_layers, hidden_units, normalization, scale, clamp, cond, dtype):
    layers = []
    split = dim // 2
    for i in range(num_layers):
        reverse = i % 2 == 1
        kept = dim - split if reverse else split
        conditioner = nn.MLPConditioner(
            kept,
            dim - kept,
            hidden_units=hidden_units,
            conditional_size=cond,
            dtype=_network_dtype(dtype),
            name=f"mlp_{i}",
        )
        layers.append(
            fb.AffineCoupling(
                conditioner,
                mask="half",
                split=split,
                reverse=reverse,
                scale=scale,
                log_scale_clamp=clamp,
                name=f"coupling_{i}",
            )
        )
        if i < num_layers - 1:
            layers += _normalization_layer(normalization, dim, 1, dtype, f"norm_{i}")
    return layers


@register_factory("real_nvp")
def real_nvp(
    event_shape,
    *,
    num_layers: int = 8,
    hidden_units: Sequence[int] = (64, 64),
    num_scales: int = 2,
    steps_per_scale: int = 3,
    filters: int = 64,
    num_blocks: int = 2,
    normalization: str | None = "actnorm",
    scale: str = "exp",
    log_scale_clamp: float | None = 3.0,
    logit_alpha: float | None = None,
    pixel_spline_bins: int | None = None,
    conditional_size: int | None = None,
    dtype=tf.float32,
    name: str = "real_nvp",
) -> tfd.TransformedDistribution:
    """Real NVP (Dinh et al. 2017, https://arxiv.org/abs/1605.08803).

    For vectors (`event_shape=[D]`): `num_layers` half-mask affine couplings that alternate which
    half they keep, with ActNorm (`normalization="actnorm"`), `tfb.BatchNormalization`
    (`"batchnorm"`) or nothing (`None`) between them.

    For images (`event_shape=[H, W, C]`): the paper's multi-scale architecture. Per scale:
    `steps_per_scale` checkerboard couplings, squeeze, `steps_per_scale` channel couplings, factor
    out half the channels; the last scale has `steps_per_scale + 1` checkerboard couplings. Each
    coupling's conditioner is a `ConvConditioner(filters, num_blocks)`. `logit_alpha` adds the
    paper's logit pre-transform for data in `[0, 1]` (see `tfp_flows.images`);
    `pixel_spline_bins` adds, after it, a learned monotone spline per dimension
    (`tfp_flows.images.PixelwiseSpline`), for non-Gaussian marginals.

    Args:
      event_shape: `D` or `[D]` (`D >= 2`) for vectors, `[H, W, C]` for images (`H` and `W`
        divisible by `2**num_scales`).
      num_layers: vectors: number of couplings (default 8).
      hidden_units: vectors: hidden layer sizes of each coupling's MLP (default `(64, 64)`).
      num_scales: images: number of scales (default 2); all but the last squeeze.
      steps_per_scale: images: couplings per mask kind and scale (default 3).
      filters: images: channels of each conditioner's hidden convolutions (default 64).
      num_blocks: images: residual blocks of each conditioner (default 2).
      normalization: `"actnorm"` (default), `"batchnorm"` or `None`, between the couplings.
      scale: the coupling's scale, `"exp"` (default, soft-clamped), `"sigmoid"` (Glow's) or
        `"additive"` (none: volume-preserving, NICE).
      log_scale_clamp: bound `b` of the soft clamp `b * tanh(s / b)` on the `"exp"` log-scale
        (default 3), or `None` for none.
      logit_alpha: `alpha` in `[0, 0.5)` of a logit pre-transform at the data end, for data in
        `[0, 1]`; `None` (default) for none.
      pixel_spline_bins: bins of a learned spline per dimension at the data end; `None`
        (default) for none.
      conditional_size: size `C` of a condition vector `c` of shape `[..., C]` that every
        coupling's network takes, for `p(x | c)` (see `condition`); `None` (default) for an
        unconditional flow.
      dtype: floating-point dtype of the base distribution, the variables and the computation
        (default `tf.float32`).
      name: name of the distribution.
    """
    shape = _event_shape(event_shape, "event_shape")
    dtype = check.floating_dtype(dtype)
    hidden_units = check.positive_ints(hidden_units, "hidden_units")
    log_scale_clamp = check.clamp_bound(log_scale_clamp)
    conditional_size = check.integer(conditional_size, "conditional_size", allow_none=True)
    if normalization not in (None, "actnorm", "batchnorm"):
        raise ValueError(
            f"`normalization` must be None, 'actnorm' or 'batchnorm'; got {normalization!r}."
        )
    if len(shape) == 1:
        if shape[0] < 2:
            raise ValueError(f"Real NVP needs at least 2 dimensions to split; got {shape}.")
        layers = _vector_coupling_flow(
            shape[0],
            _positive_int(num_layers, "num_layers"),
            tuple(hidden_units),
            normalization,
            scale,
            log_scale_clamp,
            conditional_size,
            dtype,
        )
    elif len(shape) == 3:
        num_scales = _positive_int(num_scales, "num_scales")
        # Each scale but the last squeezes; the last one's checkerboard needs even H and W.
        _check_image_levels(shape, num_scales, "real_nvp", "num_scales")
        layers = [
            _real_nvp_scale(
                shape,
                0,
                num_scales,
                _positive_int(steps_per_scale, "steps_per_scale"),
                filters,
                num_blocks,
                normalization,
                scale,
                log_scale_clamp,
                conditional_size,
                dtype,
            )
        ]
    else:
        raise ValueError(f"`event_shape` must be [D] or [H, W, C]; got {shape}.")
    return _assemble(shape, layers, logit_alpha, dtype, name, pixel_spline_bins)


def _coupling(shape, mask, reverse, filters, num_blocks, scale, clamp, cond, dtype, name):
    height, width, channels = shape
    if mask == "checkerboard":
        in_shape, out_channels = shape, channels
    else:
        kept = channels // 2 if not reverse else channels - channels // 2
        in_shape, out_channels = (height, width, kept), channels - kept
    conditioner = nn.ConvConditioner(
        in_shape,
        out_channels,
        filters=filters,
        num_blocks=num_blocks,
        conditional_size=cond,
        dtype=_network_dtype(dtype),
        name=f"{name}_net",
    )
    return fb.AffineCoupling(
        conditioner, mask=mask, reverse=reverse, scale=scale, log_scale_clamp=clamp, name=name
    )


def _real_nvp_scale(
    shape, level, num_scales, steps, filters, num_blocks, norm, scale, clamp, cond, dtype
):
    h, w, c = shape
    args = (filters, num_blocks, scale, clamp, cond, dtype)
    last = level == num_scales - 1
    layers = []
    for i in range(steps + 1 if last else steps):
        layers.append(_coupling(shape, "checkerboard", i % 2 == 1, *args, name=f"s{level}_cb{i}"))
        layers += _normalization_layer(norm, c, 3, dtype, f"s{level}_cb{i}")
    if last:
        return tfb.Chain(layers, name=f"scale_{level}")
    squeezed = (h // 2, w // 2, 4 * c)
    layers.append(tfb.Invert(fb.Squeeze(), name=f"s{level}_squeeze"))
    for i in range(steps):
        layers.append(_coupling(squeezed, "channel", i % 2 == 1, *args, name=f"s{level}_ch{i}"))
        layers += _normalization_layer(norm, 4 * c, 3, dtype, f"s{level}_ch{i}")
    inner = _real_nvp_scale(
        (h // 2, w // 2, 2 * c),
        level + 1,
        num_scales,
        steps,
        filters,
        num_blocks,
        norm,
        scale,
        clamp,
        cond,
        dtype,
    )
    layers.append(fb.FactorOut(inner, split=2 * c, name=f"s{level}_factor_out"))
    layers.append(fb.Squeeze(name=f"s{level}_unsqueeze"))
    return tfb.Chain(layers, name=f"scale_{level}")


@register_factory("glow")
def glow(
    image_shape,
    *,
    levels: int = 3,
    steps_per_level: int = 8,
    filters: int = 128,
    num_blocks: int = 1,
    coupling: str = "affine",
    lu: bool = True,
    log_scale_clamp: float | None = 3.0,
    logit_alpha: float | None = None,
    pixel_spline_bins: int | None = None,
    conditional_size: int | None = None,
    seed: int = 0,
    dtype=tf.float32,
    name: str = "glow",
) -> tfd.TransformedDistribution:
    """Glow (Kingma & Dhariwal 2018, https://arxiv.org/abs/1807.03039) on `[H, W, C]` images.

    Each of `levels` levels squeezes, runs `steps_per_level` steps of (ActNorm, invertible 1x1
    convolution, channel coupling), then factors out half of the channels (not after the last
    level). `coupling="affine"` uses Glow's sigmoid scale; `"additive"` the volume-preserving
    NICE coupling; `"exp"` a soft-clamped exponential scale. `filters` sets the conditioner
    width. The exit of the flow is the identity at initialisation: no latent rescaling.
    `logit_alpha` and `pixel_spline_bins` add data-end transforms, as in `real_nvp`.

    Args:
      image_shape: `[H, W, C]`, with `H` and `W` divisible by `2**levels`.
      levels: number of levels (default 3).
      steps_per_level: flow steps per level (default 8).
      filters: channels of each coupling conditioner's hidden convolutions (default 128).
      num_blocks: residual blocks of each coupling conditioner (default 1).
      coupling: `"affine"` (default, sigmoid scale), `"additive"` or `"exp"`.
      lu: LU-parameterised 1x1 convolutions (default `True`: an `O(C)` log-det and a triangular
        solve for the inverse); `False` trains the full `C x C` matrix.
      log_scale_clamp: bound of the soft clamp on the `"exp"` log-scale (default 3), or `None`.
      logit_alpha: `alpha` of a logit pre-transform at the data end; `None` (default) for none.
      pixel_spline_bins: bins of a learned spline per pixel at the data end; `None` (default)
        for none.
      conditional_size: size `C` of a condition vector `c` of shape `[..., C]` that every
        coupling's network takes (see `condition`); `None` (default) for an unconditional flow.
      seed: integer seed of the 1x1 convolutions' random-rotation initialisation (default 0;
        step `i` of level `k` uses `seed + 1000 * k + i`).
      dtype: floating-point dtype of the base distribution, the variables and the computation
        (default `tf.float32`).
      name: name of the distribution.
    """
    shape = _event_shape(image_shape, "image_shape", rank=3)
    dtype = check.floating_dtype(dtype)
    log_scale_clamp = check.clamp_bound(log_scale_clamp)
    filters = check.integer(filters, "filters")
    levels = _positive_int(levels, "levels")
    steps_per_level = _positive_int(steps_per_level, "steps_per_level")
    _check_image_levels(shape, levels, "glow", "levels")
    scales = {"affine": "sigmoid", "additive": "additive", "exp": "exp"}
    if coupling not in scales:
        raise ValueError(f"`coupling` must be one of {sorted(scales)}; got {coupling!r}.")
    cfg = dict(
        filters=filters,
        num_blocks=num_blocks,
        scale=scales[coupling],
        clamp=log_scale_clamp,
        cond=conditional_size,
        dtype=dtype,
    )

    def level(k: int, level_shape) -> tfb.Bijector:
        h, w, c = level_shape
        squeezed = (h // 2, w // 2, 4 * c)
        layers = [tfb.Invert(fb.Squeeze(), name=f"l{k}_squeeze")]
        for i in range(steps_per_level):
            layers += [
                fb.ActNorm(4 * c, dtype=dtype, name=f"l{k}_step{i}_actnorm"),
                fb.Invertible1x1Conv(
                    4 * c, lu=lu, seed=seed + 1000 * k + i, dtype=dtype, name=f"l{k}_step{i}_conv"
                ),
                _coupling(
                    squeezed,
                    "channel",
                    i % 2 == 1,
                    cfg["filters"],
                    cfg["num_blocks"],
                    cfg["scale"],
                    cfg["clamp"],
                    cfg["cond"],
                    dtype,
                    name=f"l{k}_step{i}_cpl",
                ),
            ]
        if k < levels - 1:
            inner = level(k + 1, (h // 2, w // 2, 2 * c))
            layers.append(fb.FactorOut(inner, split=2 * c, name=f"l{k}_factor_out"))
        layers.append(fb.Squeeze(name=f"l{k}_unsqueeze"))
        return tfb.Chain(layers, name=f"level_{k}")

    return _assemble(shape, [level(0, shape)], logit_alpha, dtype, name, pixel_spline_bins)


# -- autoregressive flows --------------------------------------------------------------------


def _made_stack(dim, num_layers, hidden_units, activation, transformer, cond, dtype, inverse):
    hidden_units = check.positive_ints(hidden_units, "hidden_units")
    cond = check.integer(cond, "conditional_size", allow_none=True)
    layers = []
    cls = fb.InverseAutoregressiveFlow if inverse else fb.MaskedAutoregressiveFlow
    for i in range(num_layers):
        made = nn.MADE(
            dim,
            hidden_units=tuple(hidden_units),
            num_params=transformer.num_params,
            activation=activation,
            conditional_size=cond,
            dtype=_network_dtype(dtype),
            name=f"made_{i}",
        )
        name = f"{'iaf' if inverse else 'maf'}_{i}"
        layers.append(cls(made, transformer=transformer, name=name))
        if i < num_layers - 1:
            layers.append(tfb.Permute(list(range(dim))[::-1], name=f"reverse_{i}"))
    if inverse:
        fb.warn_once_together(layers)
    return layers


@register_factory("maf")
def maf(
    dim: int,
    *,
    num_layers: int = 5,
    hidden_units: Sequence[int] = (64, 64),
    activation: str = "relu",
    transformer: str = "affine",
    num_bins: int = 8,
    spline_bound: float = 5.0,
    log_scale_clamp: float | None = 3.0,
    conditional_size: int | None = None,
    dtype=tf.float32,
    name: str = "maf",
) -> tfd.TransformedDistribution:
    """Masked autoregressive flow (Papamakarios et al. 2017, https://arxiv.org/abs/1705.07057).

    `num_layers` MADE-based MAF layers with the order reversed between them. Density evaluation
    (`log_prob`, training by maximum likelihood) takes one pass per layer; sampling takes `dim`
    sequential passes per layer. For fast sampling use `iaf`.

    `transformer="affine"` (default) gives each dimension a shift and a soft-clamped log-scale
    (`log_scale_clamp`); `transformer="spline"` a monotone rational-quadratic spline with
    `num_bins` bins on `[-spline_bound, spline_bound]`, the identity outside (a neural spline
    flow, Durkan et al. 2019, https://arxiv.org/abs/1906.04032): far fewer layers for
    multimodal or sharply bounded densities; keep the data roughly inside the bound.

    Args:
      dim: event size `D`; the flow is over vectors of shape `[D]`.
      num_layers: number of MAF layers (default 5).
      hidden_units: hidden layer sizes of each layer's MADE (default `(64, 64)`).
      activation: the MADE's hidden activation (default `"relu"`), any name or callable
        `keras.activations.get` accepts.
      transformer: `"affine"` (default) or `"spline"`.
      num_bins: spline bins per dimension (default 8; `transformer="spline"` only).
      spline_bound: the spline acts on `[-spline_bound, spline_bound]` (default 5).
      log_scale_clamp: bound of the soft clamp on the affine log-scale (default 3), or `None`.
      conditional_size: size `C` of a condition vector `c` of shape `[..., C]` that every MADE
        takes (see `condition`); `None` (default) for an unconditional flow.
      dtype: floating-point dtype of the base distribution, the variables and the computation
        (default `tf.float32`).
      name: name of the distribution.
    """
    d = check.integer(dim, "dim")
    dtype = check.floating_dtype(dtype)
    layers = _made_stack(
        d,
        _positive_int(num_layers, "num_layers"),
        hidden_units,
        activation,
        fb.transformers.get(
            transformer, log_scale_clamp=log_scale_clamp, num_bins=num_bins, bound=spline_bound
        ),
        conditional_size,
        dtype,
        inverse=False,
    )
    return _assemble((d,), layers, None, dtype, name)


@register_factory("iaf")
def iaf(
    dim: int,
    *,
    num_layers: int = 5,
    hidden_units: Sequence[int] = (64, 64),
    activation: str = "relu",
    transformer: str = "affine",
    num_bins: int = 8,
    spline_bound: float = 5.0,
    log_scale_clamp: float | None = 3.0,
    conditional_size: int | None = None,
    dtype=tf.float32,
    name: str = "iaf",
) -> tfd.TransformedDistribution:
    """Inverse autoregressive flow (Kingma et al. 2016, https://arxiv.org/abs/1606.04934).

    The mirror image of `maf`: sampling and `experimental_sample_and_log_prob` take one pass per
    layer (the right choice for variational inference, `reverse_kl`); `log_prob` of new points
    takes `dim` sequential passes per layer. `transformer`, `num_bins` and `spline_bound` as for
    `maf`.

    Args:
      dim: event size `D`; the flow is over vectors of shape `[D]`.
      num_layers: number of IAF layers (default 5).
      hidden_units: hidden layer sizes of each layer's MADE (default `(64, 64)`).
      activation: the MADE's hidden activation (default `"relu"`).
      transformer: `"affine"` (default) or `"spline"`.
      num_bins: spline bins per dimension (default 8; `transformer="spline"` only).
      spline_bound: the spline acts on `[-spline_bound, spline_bound]` (default 5).
      log_scale_clamp: bound of the soft clamp on the affine log-scale (default 3), or `None`.
      conditional_size: size `C` of a condition vector `c` of shape `[..., C]` that every MADE
        takes (see `condition`); `None` (default) for an unconditional flow.
      dtype: floating-point dtype of the base distribution, the variables and the computation
        (default `tf.float32`).
      name: name of the distribution.
    """
    d = check.integer(dim, "dim")
    dtype = check.floating_dtype(dtype)
    layers = _made_stack(
        d,
        _positive_int(num_layers, "num_layers"),
        hidden_units,
        activation,
        fb.transformers.get(
            transformer, log_scale_clamp=log_scale_clamp, num_bins=num_bins, bound=spline_bound
        ),
        conditional_size,
        dtype,
        inverse=True,
    )
    return _assemble((d,), layers, None, dtype, name)


def _assemble(shape, layers, logit_alpha, dtype, name, spline_bins=None):
    from tfp_flows.images import LogitTransform, PixelwiseSpline

    if spline_bins is not None:
        bins = _positive_int(spline_bins, "pixel_spline_bins")
        layers = [PixelwiseSpline(shape, num_bins=bins, dtype=dtype), *layers]
    if logit_alpha is not None:
        layers = [LogitTransform(logit_alpha, dtype=dtype, name="logit"), *layers]
    return tfd.TransformedDistribution(
        _standard_normal(shape, dtype), tfb.Chain(layers, name=f"{name}_chain"), name=name
    )


# -- conditional flows -----------------------------------------------------------------------


def flow_bijectors(dist_or_bijector) -> list[tfb.Bijector]:
    """Every bijector in a flow (the chain itself and everything nested in it)."""
    bijector = getattr(dist_or_bijector, "bijector", dist_or_bijector)
    return [bijector, *(m for m in bijector.submodules if isinstance(m, tfb.Bijector))]


def _takes_condition(bijector) -> bool:
    return getattr(bijector, "conditional_size", None) is not None


def _route(bijector, kwargs) -> dict | None:
    """The nested kwargs that deliver `kwargs` to every conditional bijector under `bijector`."""
    if _takes_condition(bijector):
        return dict(kwargs)
    if isinstance(bijector, tfb.Composition):  # tfb.Chain (or its non-composite `_Chain`)
        routed = {b.name: _route(b, kwargs) for b in bijector.bijectors}
        routed = {k: v for k, v in routed.items() if v is not None}
        return routed or None
    inner = getattr(bijector, "bijector", None)  # tfb.Invert, FactorOut
    return _route(inner, kwargs) if isinstance(inner, tfb.Bijector) else None


def conditional_kwargs(dist_or_bijector, conditional) -> dict:
    """`bijector_kwargs` that pass `conditional` to every conditional layer of a flow.

    `tfb.Chain` routes keyword arguments by sub-bijector name; this builds that nested dict.
    Raises `ValueError` if the flow has no conditional layer, so a condition is never ignored.
    """
    bijector = getattr(dist_or_bijector, "bijector", dist_or_bijector)
    routed = _route(bijector, {"conditional": conditional})
    if routed is None:
        raise ValueError(
            "This flow has no conditional layers (build it with `conditional_size=...`); "
            "refusing to ignore the condition."
        )
    return routed


class _Conditioned(fb.FlowBijector):
    """A bijector with its keyword arguments bound (used by `condition`).

    A `FlowBijector`, so the log-det computed with each transform is cached: the inner chain's
    layers cache theirs too, and `experimental_sample_and_log_prob` runs each network once.
    Inputs whose batch shape does not broadcast with the condition's are refused, with both
    shapes named: statically where they are known, else by a run-time assertion.
    """

    def __init__(
        self, bijector: tfb.Bijector, kwargs: dict, conditional, name: str = "conditioned"
    ):
        parameters = dict(locals())
        super().__init__(
            forward_min_event_ndims=bijector.forward_min_event_ndims,
            inverse_min_event_ndims=bijector.inverse_min_event_ndims,
            is_constant_jacobian=bijector.is_constant_jacobian,
            dtype=bijector.dtype,
            parameters=parameters,
            name=name,
        )
        self.bijector = bijector
        self._kwargs = kwargs
        self._conditional = conditional

    # TFP's cache hashes a bijector by its parameters, recursively: for a whole flow and a nested
    # dict of tensors, on every lookup. A bound flow is only ever equal to itself.
    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def _check_batch_shape(self, x, what):
        """`x`, checked: its batch shape must broadcast with the condition's."""
        c = self._conditional
        ndims = self.forward_min_event_ndims if what == "forward" else self.inverse_min_event_ndims
        if x.shape.rank is not None:
            x_batch, c_batch = x.shape[: x.shape.rank - ndims], c.shape[:-1]
            try:
                tf.broadcast_static_shape(x_batch, c_batch)
            except ValueError:
                raise ValueError(
                    f"{self.name}: the batch shape {x_batch} of the {what} input does not "
                    f"broadcast with the batch shape {c_batch} of the condition."
                ) from None
            if x_batch.is_fully_defined() and c_batch.is_fully_defined():
                return x
        x_batch, c_batch = tf.shape(x)[: tf.rank(x) - ndims], tf.shape(c)[:-1]
        message = [
            f"{self.name}: the batch shape",
            x_batch,
            f"of the {what} input does not broadcast with the batch shape",
            c_batch,
            "of the condition.",
        ]
        ok = _broadcastable(x_batch, c_batch)
        with tf.control_dependencies([tf.debugging.Assert(ok, message)]):
            return tf.identity(x)

    def _forward_and_log_det(self, x):
        x = self._check_batch_shape(x, "forward")
        y = self.bijector.forward(x, **self._kwargs)
        ndims = self.forward_min_event_ndims
        return y, self.bijector.forward_log_det_jacobian(x, event_ndims=ndims, **self._kwargs)

    def _inverse_and_log_det(self, y):
        y = self._check_batch_shape(y, "inverse")
        x = self.bijector.inverse(y, **self._kwargs)
        ndims = self.inverse_min_event_ndims
        return x, self.bijector.inverse_log_det_jacobian(y, event_ndims=ndims, **self._kwargs)

    def _forward_event_shape(self, input_shape):
        return self.bijector.forward_event_shape(input_shape)

    def _inverse_event_shape(self, output_shape):
        return self.bijector.inverse_event_shape(output_shape)

    def _forward_event_shape_tensor(self, input_shape):
        return self.bijector.forward_event_shape_tensor(input_shape)

    def _inverse_event_shape_tensor(self, output_shape):
        return self.bijector.inverse_event_shape_tensor(output_shape)


def _broadcastable(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Whether the shapes `a` and `b` (1-D int32 tensors) broadcast, aligned on the right."""
    size = tf.maximum(tf.size(a), tf.size(b))
    a = tf.concat([tf.ones([size - tf.size(a)], tf.int32), a], 0)
    b = tf.concat([tf.ones([size - tf.size(b)], tf.int32), b], 0)
    return tf.reduce_all((a == b) | (a == 1) | (b == 1))


def condition(dist: tfd.TransformedDistribution, conditional) -> tfd.TransformedDistribution:
    """The flow `p(x | c)` with `c = conditional` bound: use its `log_prob` and `sample` as usual.

    `conditional` has shape `[*batch, conditional_size]`; the result has batch shape `batch`, so
    `sample(n)` draws `[n, *batch, *event]` (one draw per condition) and `log_prob(x)` takes
    `x` of shape `[..., *batch, *event]`.

    Raises `ValueError` if the flow has no conditional layers.
    """
    kwargs = conditional_kwargs(dist, conditional)
    conditional = tf.convert_to_tensor(conditional, dtype=dist.dtype)
    batch = conditional.shape[:-1]
    if not batch.is_fully_defined():
        batch = tf.shape(conditional)[:-1]
    base = dist.distribution
    if not (isinstance(batch, tf.TensorShape) and batch.rank == 0):
        base = tfd.BatchBroadcast(base, with_shape=batch)
    return tfd.TransformedDistribution(
        base, _Conditioned(dist.bijector, kwargs, conditional), name=f"{dist.name}_given_c"
    )


def keras_objects(dist_or_bijector) -> tuple[list, list]:
    """The Keras 3 layers and variables behind a flow, each once, in a deterministic order.

    Raises `ValueError` if the flow holds a trainable `tf.Variable` that is not backed by one of
    them (Keras could neither train nor save it).
    """
    layers, variables, seen = [], [], set()
    for bijector in flow_bijectors(dist_or_bijector):
        if isinstance(bijector, tfb.BatchNormalization):  # its tf-keras layer is built lazily
            raise ValueError(
                f"The flow holds tfb.BatchNormalization ({bijector.name!r}), whose statistics and "
                "variables live in a tf-keras layer that a Keras 3 model can neither track nor "
                "save. Use ActNorm (normalization='actnorm') or train with a GradientTape loop."
            )
        if not isinstance(bijector, fb.FlowBijector):
            continue
        for obj in (*bijector.keras_layers, *bijector.keras_variables):
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
                "Use tfp_flows.bijectors.ActNorm instead, or train with a GradientTape loop."
            )
    return layers, variables
