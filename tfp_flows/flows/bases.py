"""Base distributions of the flows: the fixed standard normal, and trainable ones.

Every factory takes `base=`, one of

| `base=`         | density of `z` (over the flow's event)             | trainable              |
|-----------------|----------------------------------------------------|------------------------|
| `"normal"`      | `N(0, I)` (the default)                            | nothing                |
| `"diag_normal"` | `N(loc, diag(scale^2))`                            | `loc`, `scale`         |
| `"mixture"`     | `sum_k w_k N(loc_k, diag(scale_k^2))`, `K` terms   | `w`, `loc_k`, `scale_k`|
| `"student_t"`   | `prod_i StudentT(z_i; df_i, loc_i, scale_i)`       | `df`, `loc`, `scale`   |

or a dict `{"name": ..., **options}` (e.g. `{"name": "mixture", "num_components": 4}`, options
as in `diag_normal`, `mixture` and `student_t`), or any `tfd.Distribution` with the flow's event
shape and dtype and no batch shape. A heavy-tailed base (`"student_t"`) lets a flow of
Lipschitz layers fit heavy-tailed data (Jaini et al. 2020, https://arxiv.org/abs/1907.04481); a
mixture helps with well-separated modes (Izmailov et al. 2020,
https://arxiv.org/abs/1912.13025).

A trainable base is a `TrainableBase`: a TFP distribution (`.distribution`, the one it stands
for) built from Keras 3 variables (`.keras_variables`, which `keras_objects` collects, so
`tfp_flows.keras.DensityModel` trains and saves them). Positive parameters are a `softplus` of an
unconstrained variable (`df = 1 + exp(raw_df)`), through `tfp.util.DeferredTensor`, so the backing
`tf.Variable`s are in the flow's `trainable_variables`. Untrained, each is `N(0, I)` or close to
it. Sampling is TFP's: with a stateless seed (`seed=(1, 2)`) it is deterministic.

Example:

>>> import tensorflow as tf
>>> from tfp_flows.flows import bases
>>> base = bases.get("student_t", [2])
>>> base.log_prob(tf.zeros([3, 2])).shape
TensorShape([3])
>>> [v.name for v in base.keras_variables]
['raw_df', 'loc', 'raw_scale']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import _validation as check
from tfp_flows._tfp_compat import samplers

tfb, tfd = tfp.bijectors, tfp.distributions

__all__ = [
    "NAMES",
    "TrainableBase",
    "diag_normal",
    "get",
    "mixture",
    "standard_normal",
    "student_t",
]


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


def standard_normal(event_shape: Sequence[int], dtype=tf.float32) -> tfd.Distribution:
    """The fixed base `N(0, I)` over `event_shape` (`base="normal"`)."""
    return tfd.Sample(
        _PhiloxNormal(tf.constant(0.0, dtype), tf.constant(1.0, dtype)),
        sample_shape=list(event_shape),
    )


class TrainableBase(tfd.Distribution):
    """A base distribution whose parameters are Keras 3 variables.

    It delegates `log_prob` and `sample` to `distribution`, a TFP distribution built from the
    variables' `tf.Variable`s (directly, or through `tfp.util.DeferredTensor` for constrained
    ones); `keras_variables` are the Keras 3 variables themselves, for Keras models to track.

    Args:
      distribution: the TFP distribution, with no batch shape.
      keras_variables: the Keras 3 variables behind its parameters.
      name: name of the distribution.
    """

    def __init__(self, distribution: tfd.Distribution, keras_variables, *, name: str = "base"):
        parameters = dict(locals())
        self._distribution = distribution
        self._keras_variables = tuple(keras_variables)
        super().__init__(
            dtype=distribution.dtype,
            reparameterization_type=distribution.reparameterization_type,
            validate_args=False,
            allow_nan_stats=True,
            parameters=parameters,
            name=name,
        )

    @property
    def distribution(self) -> tfd.Distribution:
        """The TFP distribution this base stands for."""
        return self._distribution

    @property
    def keras_variables(self) -> tuple:
        """The Keras 3 variables behind the parameters."""
        return self._keras_variables

    def _event_shape(self):
        return self._distribution.event_shape

    def _event_shape_tensor(self):
        return self._distribution.event_shape_tensor()

    def _batch_shape(self):
        return tf.TensorShape([])

    def _batch_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _log_prob(self, x):
        return self._distribution.log_prob(x)

    def _sample_n(self, n, seed=None):
        return self._distribution.sample(n, seed=seed)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()  # variables and a distribution with no batch shape, as in the flows


_SOFTPLUS_INVERSE_ONE = math.log(math.e - 1.0)  # softplus of it is 1


def _variable(name: str, value, dtype) -> keras.Variable:
    return keras.Variable(tf.cast(value, dtype), name=name, dtype=dtype, trainable=True)


def _positive(variable: keras.Variable, floor: float = 0.0, fn=tf.nn.softplus):
    """`floor + fn(variable)`, recomputed from the variable at each use."""
    return tfp.util.DeferredTensor(variable.value, lambda raw: floor + fn(raw))


def _independent(dist: tfd.Distribution, event_shape) -> tfd.Distribution:
    return tfd.Independent(dist, reinterpreted_batch_ndims=len(event_shape))


def diag_normal(event_shape: Sequence[int], *, dtype=tf.float32, name: str = "diag_normal"):
    """`N(loc, diag(scale^2))` with trainable `loc` (initially 0) and `scale` (initially 1)."""
    shape = list(event_shape)
    loc = _variable("loc", tf.zeros(shape), dtype)
    raw_scale = _variable("raw_scale", tf.fill(shape, _SOFTPLUS_INVERSE_ONE), dtype)
    dist = _independent(_PhiloxNormal(loc.value, _positive(raw_scale)), shape)
    return TrainableBase(dist, [loc, raw_scale], name=name)


def student_t(
    event_shape: Sequence[int], *, df: float = 10.0, dtype=tf.float32, name: str = "student_t"
):
    """Independent Student-t per dimension, with trainable degrees of freedom, loc and scale.

    `df = 1 + exp(raw_df)` stays above 1 (a finite mean); it starts at `df` (default 10),
    `loc` at 0 and `scale` at 1: close to `N(0, I)`, with tails the data can make heavier.
    """
    if not (isinstance(df, int | float) and not isinstance(df, bool) and 1.0 < df < 1e6):
        raise ValueError(f"`df` must be a number in (1, 1e6); got {df!r}.")
    shape = list(event_shape)
    raw_df = _variable("raw_df", tf.fill(shape, math.log(df - 1.0)), dtype)
    loc = _variable("loc", tf.zeros(shape), dtype)
    raw_scale = _variable("raw_scale", tf.fill(shape, _SOFTPLUS_INVERSE_ONE), dtype)
    inner = tfd.StudentT(_positive(raw_df, 1.0, tf.exp), loc.value, _positive(raw_scale))
    return TrainableBase(_independent(inner, shape), [raw_df, loc, raw_scale], name=name)


def mixture(
    event_shape: Sequence[int],
    *,
    num_components: int = 8,
    spread: float = 0.5,
    seed: int = 0,
    dtype=tf.float32,
    name: str = "mixture",
):
    """A mixture of `num_components` diagonal Gaussians, with trainable weights, means, scales.

    Equal weights; means `spread * e_k` with `e_k` a fixed-seed (`seed`) standard-normal draw,
    so the components differ; scales `sqrt(1 - spread^2)`: the variance is about 1 per
    dimension, close to `N(0, I)`. Samples are reparameterised (implicit gradients), so the
    weights train by variational inference too.
    """
    k = check.integer(num_components, "num_components")
    if not (isinstance(spread, int | float) and 0.0 <= spread < 1.0):
        raise ValueError(f"`spread` must be a number in [0, 1); got {spread!r}.")
    shape, size = list(event_shape), math.prod(event_shape)
    logits = _variable("logits", tf.zeros([k]), dtype)
    draw = tf.random.stateless_normal([k, size], seed=[seed, 0], dtype=tf.float64)
    locs = _variable("locs", spread * draw, dtype)
    scale = math.sqrt(1.0 - spread**2)
    raw_scale = tfp.math.softplus_inverse(tf.constant(scale, tf.float64)).numpy()
    raw_scales = _variable("raw_scales", tf.fill([k, size], raw_scale), dtype)
    components = _independent(_PhiloxNormal(locs.value, _positive(raw_scales)), [size])
    flat = tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits.value), components, reparameterize=True
    )
    dist = (
        flat if len(shape) == 1 else tfd.TransformedDistribution(flat, tfb.Reshape(shape, [size]))
    )
    return TrainableBase(dist, [logits, locs, raw_scales], name=name)


_BUILDERS = {"diag_normal": diag_normal, "mixture": mixture, "student_t": student_t}
NAMES = ("normal", *_BUILDERS)


def get(base, event_shape: Sequence[int], dtype=tf.float32) -> tfd.Distribution:
    """The base distribution over `event_shape` that `base=` names (see the table above)."""
    shape, dtype = tuple(event_shape), tf.as_dtype(dtype)
    if isinstance(base, tfd.Distribution):
        return _checked(base, shape, dtype)
    options = {}
    if isinstance(base, Mapping):
        options = dict(base)
        base = options.pop("name", None)
    if base == "normal" and not options:
        return standard_normal(shape, dtype)
    if not isinstance(base, str) or base not in _BUILDERS:
        raise ValueError(
            f"`base` must be one of {NAMES}, a dict {{'name': ..., **options}} or a "
            f"tfd.Distribution of event shape {list(shape)}; got {base!r}."
        )
    try:
        return _BUILDERS[base](shape, dtype=dtype, **options)
    except TypeError as error:
        raise ValueError(f"`base`: bad options {options} for {base!r}: {error}") from None


def _checked(base: tfd.Distribution, shape: tuple[int, ...], dtype) -> tfd.Distribution:
    """`base`, if its event shape, batch shape and dtype fit the flow; else a `ValueError`."""
    problems = []
    if base.event_shape != shape:
        problems.append(f"event shape {base.event_shape} (the flow's is {list(shape)})")
    if base.batch_shape.rank != 0:
        problems.append(f"batch shape {base.batch_shape} (must be [])")
    if base.dtype != dtype:
        problems.append(f"dtype {base.dtype!r} (the flow's is {dtype.name})")
    if problems:
        raise ValueError(f"`base` {base.name!r} does not fit the flow: " + "; ".join(problems))
    return base
