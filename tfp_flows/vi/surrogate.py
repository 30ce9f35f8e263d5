"""`flow_surrogate_posterior`: a normalizing flow with the event structure of a model.

A flow `q(x)` on `R^D` (`D` = total size of the model's unconstrained latents) is pushed
through `x -> constrain(restructure(reshape(split(x))))`, so its samples have the model's
structure (dict, list or namedtuple), shapes and supports:

    log q(z) = log q_flow(x) - log|det J_unflatten(x)|,   x = unflatten^{-1}(z).

It drops into `tfp.vi.fit_surrogate_posterior` like
`tfp.experimental.vi.build_affine_surrogate_posterior`, and into `tfp_flows.vi.fit`.
"""

from __future__ import annotations

import collections.abc
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import flows

tfb, tfd = tfp.bijectors, tfp.distributions
_Pinned = tfp.experimental.distributions.JointDistributionPinned  # not a tfd.Distribution

__all__ = ["flow_surrogate_posterior"]


def _is_shape(value) -> bool:
    if isinstance(value, tf.TensorShape):
        return True
    if isinstance(value, int | np.integer):
        return True
    return (
        isinstance(value, list | tuple)
        and not hasattr(value, "_fields")
        and all(isinstance(d, int | np.integer) for d in value)
    )


def _to_shapes(structure):
    """Converts a structure whose leaves are shapes (`[]`, `[3]`, `(2, 2)`) to TensorShapes."""
    if _is_shape(structure):
        return tf.TensorShape([structure] if isinstance(structure, int | np.integer) else structure)
    if isinstance(structure, collections.abc.Mapping):
        return type(structure)((k, _to_shapes(v)) for k, v in structure.items())
    if hasattr(structure, "_fields"):  # namedtuple
        return type(structure)(*(_to_shapes(v) for v in structure))
    if isinstance(structure, list | tuple):
        return type(structure)(_to_shapes(v) for v in structure)
    raise ValueError(f"`event_shape` leaves must be shapes like [] or [3]; got {structure!r}.")


def _constraining_bijector(bijector, event_shape):
    if bijector is None:
        return tfb.JointMap(tf.nest.map_structure(lambda _: tfb.Identity(), event_shape))
    if isinstance(bijector, tfb.Bijector):
        return bijector
    parts = tf.nest.map_structure(lambda b: tfb.Identity() if b is None else b, bijector)
    try:
        tf.nest.assert_same_structure(event_shape, parts, check_types=False)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"`constraining_bijector` must have the structure of `event_shape`: {e}"
        ) from None
    return tfb.JointMap(parts)


def _unflatten_bijector(constrain, unconstrained_shapes) -> tuple[tfb.Bijector, int]:
    """Bijector from a flat `[..., D]` vector to the (constrained) structure, and `D`."""
    flat_shapes = tf.nest.flatten(unconstrained_shapes)
    if any(not s.is_fully_defined() for s in flat_shapes):
        raise ValueError(f"The latent variables need static shapes; got {unconstrained_shapes}.")
    sizes = [int(s.num_elements()) for s in flat_shapes]
    if not tf.nest.is_nested(unconstrained_shapes):
        return tfb.Chain([constrain, tfb.Reshape(unconstrained_shapes, [sizes[0]])]), sizes[0]
    tokens = list(range(len(sizes)))
    unflatten = tfb.Chain(
        [
            constrain,
            tfb.Restructure(tf.nest.pack_sequence_as(unconstrained_shapes, tokens), tokens),
            tfb.JointMap([tfb.Reshape(s, [k]) for s, k in zip(flat_shapes, sizes)]),
            tfb.Split(sizes) if len(sizes) > 1 else tfb.Restructure([0], 0),
        ],
        name="unflatten",
    )
    return unflatten, sum(sizes)


def _single_dtype(dtype_structure):
    dtypes = {tf.as_dtype(d) for d in tf.nest.flatten(dtype_structure)}
    if len(dtypes) != 1:
        raise ValueError(f"All latent variables must share one float dtype; got {dtypes}.")
    (dtype,) = dtypes
    if not dtype.is_floating:
        raise ValueError(f"Latent variables must be continuous (float); got dtype {dtype.name}.")
    return dtype


def _make_flow(flow, dim: int, dtype, flow_kwargs) -> tfd.Distribution:
    if callable(flow):
        dist = flow(dim)
    elif flow in ("real_nvp", "maf", "iaf"):
        if flow == "real_nvp" and dim < 2:
            raise ValueError(
                "flow='real_nvp' needs at least 2 unconstrained dimensions to split; the model "
                f"has {dim}. Use flow='iaf' or pass a callable."
            )
        dist = flows.FACTORIES[flow](dim, dtype=dtype, **flow_kwargs)
    else:
        raise ValueError(f"`flow` must be 'real_nvp', 'iaf', 'maf' or a callable; got {flow!r}.")
    if not dist.event_shape.is_compatible_with([dim]):
        raise ValueError(f"The flow must have event shape [{dim}]; got {dist.event_shape}.")
    if dist.dtype != dtype:
        raise ValueError(f"The flow has dtype {dist.dtype.name}; the model has {dtype.name}.")
    return dist


def _check_model(model, observed) -> None:
    """Raises `TypeError` unless `model` is a distribution (a joint one if `observed` pins it)."""
    if not isinstance(model, tfd.Distribution | _Pinned):
        hint = " For a log-density, pass `event_shape=` instead." if callable(model) else ""
        raise TypeError(
            "`model` must be a tfd.JointDistribution (pinned, or with `observed`) or another "
            f"tfd.Distribution over the latent variables; got a {type(model).__name__}.{hint}"
        )
    if observed and not hasattr(model, "experimental_pin"):
        raise TypeError(
            "`observed` pins variables of a tfd.JointDistribution; got a "
            f"{type(model).__name__}, which has nothing to pin."
        )


def _with_affine(dist, dim: int, dtype) -> tfd.Distribution:
    """`dist` followed by a trainable `x -> loc + scale * x` (elementwise, `scale > 0`).

    One chain: `.distribution.bijector` stays the whole map from the base, as NeuTra needs.
    """
    loc = tf.Variable(tf.zeros([dim], dtype), name="loc")
    scale = tfp.util.TransformedVariable(tf.ones([dim], dtype), tfb.Softplus(), name="scale")
    affine = [tfb.Shift(loc), tfb.Scale(scale)]
    if isinstance(getattr(dist, "bijector", None), tfb.Bijector):  # also TFP's private class
        return tfd.TransformedDistribution(dist.distribution, tfb.Chain([*affine, dist.bijector]))
    return tfd.TransformedDistribution(dist, tfb.Chain(affine))


def _model_space(model, observed, constraining_bijector, dtype):
    """`(event shapes, constraining bijector, dtype)` of a model's latent variables."""
    _check_model(model, observed)
    if constraining_bijector is not None or dtype is not None:
        raise ValueError("`constraining_bijector` and `dtype` go with `event_shape`, not `model`.")
    if observed:
        model = model.experimental_pin(**observed)
    constrain = model.experimental_default_event_space_bijector()
    if constrain is None:
        raise ValueError(f"{model} has no default event-space bijector (discrete latents?).")
    return model.event_shape, constrain, _single_dtype(model.dtype)


def _declared_space(event_shape, constraining_bijector, dtype, observed):
    """`(event shapes, constraining bijector, dtype)` declared for a plain log-density."""
    if observed:
        raise ValueError("`observed` needs a `model` to pin.")
    shapes = _to_shapes(event_shape)
    constrain = _constraining_bijector(constraining_bijector, shapes)
    return shapes, constrain, tf.as_dtype(dtype or tf.float32)


def flow_surrogate_posterior(
    model: tfd.Distribution | None = None,
    *,
    event_shape=None,
    constraining_bijector=None,
    observed: dict | None = None,
    flow: str | Callable[[int], tfd.Distribution] = "real_nvp",
    affine: bool = True,
    dtype=None,
    name: str = "flow_surrogate_posterior",
    **flow_kwargs,
) -> tfd.TransformedDistribution:
    """A normalizing-flow surrogate posterior with the event structure of a model.

    Args:
      model: a `tfd.JointDistribution*` whose events are the latent variables, e.g.
        `full_model.experimental_pin(y=data)`; or an unpinned model with `observed`; or any
        continuous `tfd.Distribution` (its event is the one latent variable). For a
        log-density function, pass `event_shape` instead.
      event_shape: instead of `model`: a structure of shapes (`{"a": [], "b": [3]}`, a list, or
        one shape), for a plain `target_log_prob_fn`.
      constraining_bijector: with `event_shape`: one (multipart) bijector, or a structure of
        per-variable bijectors (`None` leaves are the identity) mapping `R^d` to each support.
      observed: values to pin in `model` (a dict of name to value), if `model` is not pinned.
      flow: `"real_nvp"` (the default, the one to use for VI), `"iaf"`, `"maf"`, or a callable
        `dim -> distribution` with event shape `[dim]`. Real NVP samples and evaluates
        densities in one pass each, so `fit`'s stick-the-landing gradient (an extra `log_prob`
        of the samples) stays cheap. An IAF's `log_prob` of any other points takes `D`
        sequential passes per layer: use it for `D = 1`, which Real NVP cannot split. A MAF
        samples in `D` passes: avoid it for VI.
      affine: follow the flow with a trainable elementwise `loc + scale * x`, so the surrogate
        can find the posterior's location and scales directly while the couplings fit its shape
        (`benchmarks/vi_defaults.md`: a small gain on the logistic regression at 120 s).
      dtype: with `event_shape`: the float dtype (default float32).
      name: the distribution's name.
      **flow_kwargs: passed to the flow factory (`num_layers`, `hidden_units`, ...). For
        `real_nvp`, `normalization` defaults to `None` here: ActNorm's data-dependent
        initialisation has no data to use in VI.

    Returns:
      A `tfd.TransformedDistribution` whose `.distribution` is the flow over `[D]` and whose
      `.bijector` maps that flat unconstrained vector to the model's structure.
    """
    if (model is None) == (event_shape is None):
        raise ValueError("Pass exactly one of `model` and `event_shape`.")
    if model is not None:
        shapes, constrain, dtype = _model_space(model, observed, constraining_bijector, dtype)
    else:
        shapes, constrain, dtype = _declared_space(
            event_shape, constraining_bijector, dtype, observed
        )
    if flow == "real_nvp":  # ActNorm initialises from data, which VI does not have
        flow_kwargs.setdefault("normalization", None)
    unflatten, dim = _unflatten_bijector(constrain, constrain.inverse_event_shape(shapes))
    base = _make_flow(flow, dim, dtype, flow_kwargs)
    if affine:
        base = _with_affine(base, dim, dtype)
    return tfd.TransformedDistribution(base, unflatten, name=name)
