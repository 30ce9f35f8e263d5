"""ActNorm: per-channel affine map with Glow's data-dependent initialisation."""

from __future__ import annotations

import math
import warnings

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows.bijectors._channelwise import ChannelwiseBijector

tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ["ActNorm", "initialize_actnorm"]


class ActNorm(ChannelwiseBijector):
    r"""Per-channel shift and log-scale over the last axis, initialised from the first data batch.

    Forward (latent to data), inverse (data to latent) and log-dets, with `s` the log-scale, `b`
    the shift and `N` the positions per channel (`H * W` for `[H, W, C]` events, 1 for vectors):

        y = x * exp(s) + b
        x = (y - b) * exp(-s)
        log|det J_forward| = N * sum(s)

    Data-dependent initialisation: the first batch seen in the data direction (`inverse`, which
    `log_prob` runs) sets `b` to the per-channel mean and `s` to the log standard deviation of
    that batch, so this layer's output has zero mean and unit variance per channel. A channel
    whose variance is below `epsilon` is centred but not scaled (`s = 0`), so constant data gives
    no inf or NaN. Under `tf.distribute` (e.g. `MirroredStrategy`, `MultiWorkerMirroredStrategy`)
    the statistics are those of the global batch: per-replica sums and counts are summed across
    replicas and every replica assigns the same values, so the result equals single-device
    initialisation on the same global batch, also when replicas hold batches of unequal size.
    The `initialized` flag is a variable that is saved and restored with the
    weights, so a restored model is never re-initialised. The forward (sampling) direction never
    initialises: before initialisation it is the identity, with a warning when run eagerly.

    Args:
      num_channels: size `C` of the last axis.
      event_ndims: rank of the event: 3 for `[H, W, C]` images (default), 1 for `[C]` vectors.
      epsilon: variance below which a channel is not scaled at initialisation.
      validate_args: check inputs for NaN and inf at run time.
      dtype: float dtype of the parameters.
      name: name of the bijector.

    References:
      Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions,
      https://arxiv.org/abs/1807.03039

    Example:

    >>> import tensorflow as tf
    >>> from tfp_flows.bijectors import ActNorm
    >>> bij = ActNorm(3, event_ndims=1)
    >>> y = tf.random.stateless_normal([256, 3], seed=[1, 2]) * 5.0 + 2.0
    >>> z = bij.inverse(y)  # initialises from this batch
    >>> bool(bij.is_initialized)
    True
    >>> [round(float(v), 3) for v in tf.math.reduce_std(z, axis=0)]
    [1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        num_channels: int,
        *,
        event_ndims: int = 3,
        epsilon: float = 1e-6,
        validate_args: bool = False,
        dtype=tf.float32,
        name: str = "act_norm",
    ):
        parameters = dict(locals())
        if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not epsilon >= 0:
            raise ValueError(f"`epsilon` must be a non-negative number; got {epsilon!r}.")
        with tf.name_scope(name) as name:
            super().__init__(num_channels, event_ndims, validate_args, dtype, parameters, name)
            self._epsilon = float(epsilon)
            self.shift = self._add_variable("shift", tf.zeros([self.num_channels], dtype))
            self.log_scale = self._add_variable("log_scale", tf.zeros([self.num_channels], dtype))
            self.initialized = self._add_variable(
                "initialized", False, trainable=False, dtype="bool"
            )

    @property
    def is_initialized(self) -> tf.Tensor:
        """Whether data-dependent initialisation has run (a boolean tensor)."""
        return tf.convert_to_tensor(self.initialized)

    def reset(self) -> None:
        """Marks the layer uninitialised: the next data batch seen by `inverse` initialises it."""
        self.initialized.assign(False)

    def _maybe_initialize(self, y: tf.Tensor) -> None:
        y = tf.stop_gradient(y)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # Replicas cannot synchronise inside `tf.cond` (no `merge_call` in a branch): hand
            # every replica's batch to one cross-replica function, which branches on the flag.
            ctx.merge_call(self._initialize_across_replicas, args=(y,))
            return

        def initialize():
            mean, var = _moments([y], tf.add_n)
            return self._assign_moments(mean, var)

        tf.cond(self.initialized, lambda: tf.constant(False), initialize)

    def _initialize_across_replicas(self, strategy, y) -> None:
        """Cross-replica context: initialises from the global batch (all replicas' `y`)."""
        local = strategy.experimental_local_results(y)

        def reduce_sum(per_device: list[tf.Tensor]) -> tf.Tensor:
            # Local replicas' partial sums into one distributed value, summed over all replicas
            # of all workers (value_fn is called once per local replica, in order).
            parts = iter(per_device)
            value = strategy.experimental_distribute_values_from_function(lambda _: next(parts))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

        def initialize():
            mean, var = _moments(local, reduce_sum)
            return self._assign_moments(mean, var)

        tf.cond(self.initialized, lambda: tf.constant(False), initialize)

    def _assign_moments(self, mean: tf.Tensor, var: tf.Tensor) -> tf.Tensor:
        safe_var = tf.where(var > self._epsilon, var, tf.ones_like(var))
        # A batch with NaN or inf gives non-finite statistics: keep the old values and stay
        # uninitialised, so the next finite batch initialises the layer (no corrupted weights,
        # and no run-time assertion, which XLA would strip).
        finite = tf.logical_and(
            tf.reduce_all(tf.math.is_finite(mean)), tf.reduce_all(tf.math.is_finite(safe_var))
        )
        updates = [
            self.shift.assign(tf.where(finite, mean, self.shift)),
            self.log_scale.assign(tf.where(finite, 0.5 * tf.math.log(safe_var), self.log_scale)),
        ]
        # The flag must not flip unless the statistics were computed (graphs may otherwise run
        # this data-independent assignment even when fetching the data fails).
        with tf.control_dependencies(updates):
            self.initialized.assign(finite)
        return tf.constant(True)

    def _forward_and_log_det(self, x):
        if tf.executing_eagerly() and not bool(self.initialized.numpy()):
            warnings.warn(
                f"ActNorm '{self.name}' runs forward (sampling) before its data-dependent "
                "initialisation; it is the identity until data passes through `inverse` "
                "(e.g. `log_prob`) or `initialize_actnorm`.",
                stacklevel=4,
            )
        y = x * tf.exp(self.log_scale) + self.shift
        return y, self._positions_log_det(x, tf.reduce_sum(self.log_scale))

    def _inverse_and_log_det(self, y):
        self._maybe_initialize(y)
        x = (y - self.shift) * tf.exp(-self.log_scale)
        return x, -self._positions_log_det(y, tf.reduce_sum(self.log_scale))


def _moments(parts: list[tf.Tensor], reduce_sum) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-channel mean and variance over all but the last axis of the batch split into `parts`.

    Sums and counts, not per-part means, are reduced (`reduce_sum` adds a list of per-part
    tensors, across replicas under `tf.distribute`), so parts of unequal size weigh correctly.
    """

    def local(fn):
        out = []
        for part in parts:
            with tf.device(part.device):
                out.append(fn(part, tf.range(tf.rank(part) - 1)))
        return out

    sums = reduce_sum(
        local(
            lambda y, axes: tf.concat(
                [
                    tf.reduce_sum(y, axes),
                    tf.cast(tf.size(y) // tf.shape(y)[-1], y.dtype)[None],
                ],
                axis=0,
            )
        )
    )
    mean, count = sums[:-1] / sums[-1], sums[-1]
    # A second, centred pass: E[y^2] - E[y]^2 loses precision when |mean| >> std.
    centred = reduce_sum(local(lambda y, axes: tf.reduce_sum(tf.square(y - mean), axes)))
    return mean, centred / count


def _flow_bijector(flow) -> tfb.Bijector:
    bijector = getattr(flow, "bijector", None)
    if isinstance(flow, tfd.Distribution) and isinstance(bijector, tfb.Bijector):
        return bijector  # a TransformedDistribution, or its non-composite base class
    if isinstance(flow, tfb.Bijector):
        return flow
    raise TypeError(
        f"Expected a tfb.Bijector or tfd.TransformedDistribution; got {type(flow).__name__}."
    )


def initialize_actnorm(flow, data, *, force: bool = False, **bijector_kwargs) -> list[ActNorm]:
    """Initialises every `ActNorm` in a flow from one batch of data, in data-flow order.

    Runs the flow's inverse (data to latent) once on `data`, so each ActNorm is initialised from
    the output of the layers before it, exactly as the first `log_prob` would do.

    Args:
      flow: a `tfd.TransformedDistribution` or a bijector (e.g. a `tfb.Chain`).
      data: a batch of data, shape `[N, *event_shape]`.
      force: re-initialise layers that are already initialised.
      **bijector_kwargs: passed to the bijector's `inverse` (e.g. conditional inputs).

    Returns:
      The list of `ActNorm` layers found.
    """
    bijector = _flow_bijector(flow)
    layers = [m for m in (bijector, *bijector.submodules) if isinstance(m, ActNorm)]
    if force:
        for layer in layers:
            layer.reset()
    data = tf.convert_to_tensor(data, dtype_hint=bijector.dtype)
    if not math.prod(data.shape) > 0:
        raise ValueError(f"initialize_actnorm needs a non-empty batch; got shape {data.shape}.")
    bijector.inverse(tf.identity(data), **bijector_kwargs)
    return layers
