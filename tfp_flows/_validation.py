"""Argument checks shared by the constructors: each error names the argument and the value."""

from __future__ import annotations

import inspect
import math
import numbers

import tensorflow as tf

__all__ = [
    "clamp_bound",
    "floating_dtype",
    "integer",
    "positive_ints",
    "derived_signature",
    "shape",
    "signature_named",
]


def integer(value, name: str, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """`value` as an int `>= minimum`; integral floats pass, bools, strings and NaN do not."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(value, numbers.Real) and not isinstance(value, bool | numbers.Integral):
        ok = math.isfinite(value) and float(value).is_integer()
    if not ok or int(value) < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        kind = ValueError if isinstance(value, numbers.Real) else TypeError
        raise kind(f"`{name}` must be {what}{' or None' if allow_none else ''}; got {value!r}.")
    return int(value)


def positive_ints(values, name: str) -> tuple[int, ...]:
    """A sequence of positive integers (e.g. `hidden_units`); a bare int or string is refused."""
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise TypeError(f"`{name}` must be a sequence of positive integers; got {values!r}.")
    return tuple(integer(v, name) for v in values)


def shape(value, name: str, *, rank: int | None = None) -> tuple[int, ...]:
    """An event shape: an int (a vector) or a non-empty sequence of positive ints."""
    values = (
        (value,) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    )
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise TypeError(
            f"`{name}` must be a shape (a sequence of positive integers); got {value!r}."
        )
    values = tuple(values)
    if not values or (rank is not None and len(values) != rank):
        expected = f"rank {rank}" if rank else "at least one dimension"
        raise ValueError(f"`{name}` must be a shape with {expected}; got {value!r}.")
    return tuple(integer(v, name) for v in values)


def clamp_bound(value, name: str = "log_scale_clamp") -> float | None:
    """A finite positive float, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a positive number or None; got {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be positive and finite, or None; got {value!r}.")
    return float(value)


def floating_dtype(value, name: str = "dtype") -> tf.DType:
    """`value` as a floating-point `tf.DType` (e.g. `tf.float32` or `"float64"`)."""
    try:
        dtype = tf.as_dtype(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a floating-point dtype (e.g. tf.float32); got {value!r}."
        ) from None
    if not dtype.is_floating:
        raise ValueError(
            f"`{name}` must be a floating-point dtype (e.g. tf.float32); got {dtype.name}."
        )
    return dtype


def signature_named(fn, name: str) -> inspect.Signature:
    """`fn`'s signature with the default of its `name` argument replaced (for a function that
    takes another's arguments, e.g. IAF's constructor and factory those of the MAF's)."""
    parameters = inspect.signature(fn).parameters.values()
    return inspect.signature(fn).replace(
        parameters=[p.replace(default=name) if p.name == "name" else p for p in parameters]
    )


def derived_signature(
    base, own, *, drop=(), name: str | None = None, defaults: dict | None = None
) -> inspect.Signature:
    """The signature of `own`, a function that takes `base`'s keyword arguments through
    `**options`: `own`'s positional parameters, its keyword-only ones (their defaults win),
    `base`'s other keyword-only ones less `drop` (with the defaults in `defaults` where given),
    and, for a `base` that takes a `name`, `name` defaulting to `name`. So `help`, `inspect`
    and `bind` show and check every argument, each defined once."""
    theirs = (inspect.signature(base) if name is None else signature_named(base, name)).parameters
    ours = inspect.signature(own).parameters.values()
    leading = [p for p in ours if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    own_first = [p for p in ours if p.kind is p.KEYWORD_ONLY and p.name != "name"]
    taken = {p.name for p in ours} | set(drop)
    shared = [
        p.replace(default=(defaults or {}).get(p.name, p.default))
        for p in theirs.values()
        if p.kind is p.KEYWORD_ONLY and p.name not in taken
    ]
    parameters = [*leading, *own_first, *shared, *([theirs["name"]] if name is not None else [])]
    return inspect.signature(base).replace(parameters=parameters)
