"""Masked autoregressive flow (MAF): any transformer, any autoregressive conditioner."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from tfp_flows.bijectors import transformers
from tfp_flows.bijectors._autoregressive_check import check_autoregressive
from tfp_flows.bijectors._conditioning import (
    ConditionedBijector,
    call_conditioner,
    conditioner_params,
)

__all__ = ["MaskedAutoregressiveFlow"]


class MaskedAutoregressiveFlow(ConditionedBijector):
    r"""Masked autoregressive flow: an elementwise map whose parameters are autoregressive.

    With `theta = conditioner(y)` autoregressive in `y` (the parameters of dimension `d` depend
    only on the dimensions before `d` in the conditioner's ordering) and `g` the transformer:

        forward (sampling):  y_d = g(x_d; theta_d(y))          D sequential passes
        inverse (density):   x_d = g^{-1}(y_d; theta_d(y))     one pass
        log|det J_forward| = sum_d log g'(x_d; theta_d(y)) = -log|det J_inverse|

    The default transformer is affine, `g(x) = x exp(s) + shift` with `s` soft-clamped to
    `(-log_scale_clamp, log_scale_clamp)`; `transformer="spline"` (or a
    `transformers.RationalQuadratic(num_bins, bound)`) makes `g` a monotone rational-quadratic
    spline (a neural spline flow), far more flexible per layer for multimodal densities. Any
    `transformers.Transformer` (`"sigmoid"`, `"additive"`, or your own) plugs in the same way.

    The forward map is solved dimension by dimension: starting from `y = 0`, pass `k` fixes the
    `k`-th dimension in the ordering, so `D` passes give `y`, in `tf.while_loop`s with static
    trip counts that compile under XLA. The log-scales of the last pass are already those at the
    final `y` (dimension `d` of `theta` only sees dimensions before `d`), so the log-det comes out
    of the loop without an extra pass. A conditioner may plan the passes itself: if it has
    `sequential_blocks(max_blocks) -> [(passes, call_kwargs), ...]` the passes run in those
    blocks, each calling `conditioner(y, **call_kwargs)`, and if it has `input_order` (the
    degree 1..D of each dimension) the dimensions not fixed yet are zeroed between passes.
    `MADE` has both: up to 8 blocks, each with the network cut to the hidden units its outputs
    can depend on, the same result with about 2.3x fewer FLOPs. Otherwise: `D` full passes.

    MAF vs IAF, which direction is cheap: a MAF evaluates the density (`log_prob`, the inverse)
    in one pass and samples in `D` passes, so it suits density estimation. An IAF
    (`InverseAutoregressiveFlow`, the inverse of a MAF) samples in one pass, and gets the
    log-prob of its own samples in the same pass (`experimental_sample_and_log_prob`), but the
    density of new points takes `D` passes, so it suits variational inference.

    Args:
      conditioner: a `tfp_flows.nn.MADE` with `num_params=transformer.num_params` (2 for affine,
        `3 * num_bins - 1` for a spline), or any callable `y -> params` of shape
        `[..., D, num_params]`, or, for the affine transformer, `y -> (shift, log_scale)` (each
        `[..., D]`, `None` meaning zero); it must be autoregressive. With a conditional input
        it is called as `conditioner(y, conditional=c)`, `c` being the bijector keyword
        argument `conditional`.
        A Keras layer must be built (its variables are tracked by this bijector).
      transformer: `"affine"` (default), `"sigmoid"`, `"additive"`, `"spline"` (8 bins on
        `[-5, 5]`) or an object implementing the `transformers.Transformer` protocol.
      log_scale_clamp: bound of the soft clamp `b * tanh(s / b)` on the affine log-scale, or
        `None` (ignored by a spline).
      validate_args: check inputs for NaN and inf at run time, and, once, that the conditioner
        is autoregressive (else a `ValueError` names an output and the input it must not see):
        at the first call, the Jacobian of the conditioner at a random probe, from one forward
        and one backward pass on a batch of `D` copies, computed eagerly even inside a
        `tf.function`. A MADE is checked against its `input_order`; any other conditioner must
        have acyclic dependencies (some order of the dimensions makes it autoregressive).
      name: name of the bijector.

    References:
      Papamakarios et al. (2017), Masked Autoregressive Flow for Density Estimation,
      https://arxiv.org/abs/1705.07057
      Durkan et al. (2019), Neural Spline Flows, https://arxiv.org/abs/1906.04032
      Germain et al. (2015), MADE: Masked Autoencoder for Distribution Estimation,
      https://arxiv.org/abs/1502.03509

    Example:

    >>> import tensorflow as tf
    >>> import tensorflow_probability as tfp
    >>> from tfp_flows.bijectors import MaskedAutoregressiveFlow
    >>> from tfp_flows.nn import MADE
    >>> maf = MaskedAutoregressiveFlow(MADE(3, hidden_units=(16,)))
    >>> dist = tfp.distributions.TransformedDistribution(
    ...     tfp.distributions.MultivariateNormalDiag(tf.zeros(3)), maf)
    >>> dist.log_prob(tf.zeros([5, 3])).shape  # one MADE pass
    TensorShape([5])
    >>> len(maf.trainable_variables)  # the MADE's kernels and biases
    4

    A spline MAF: the MADE outputs the spline's parameters.

    >>> from tfp_flows.bijectors import transformers
    >>> spline = transformers.RationalQuadratic(num_bins=4, bound=3.0)
    >>> maf = MaskedAutoregressiveFlow(
    ...     MADE(3, hidden_units=(16,), num_params=spline.num_params), transformer=spline)
    >>> maf.forward(tf.zeros([2, 3])).shape  # D = 3 sequential passes
    TensorShape([2, 3])
    """

    _SEQUENTIAL_BLOCKS = 8  # at most this many blocks of the forward's D passes

    def __init__(
        self,
        conditioner: Callable,
        *,
        transformer="affine",
        log_scale_clamp: float | None = 3.0,
        validate_args: bool = False,
        name: str = "masked_autoregressive_flow",
    ):
        parameters = dict(locals())
        if not callable(conditioner):
            raise ValueError(f"`conditioner` must be callable; got {type(conditioner).__name__}.")
        transformer = transformers.get(transformer, log_scale_clamp=log_scale_clamp)
        p = transformer.num_params
        if getattr(conditioner, "num_params", p) != p:
            raise ValueError(
                f"`conditioner` must output {p} params per dimension for the "
                f"{type(transformer).__name__} transformer; it has "
                f"num_params={conditioner.num_params}."
            )
        with tf.name_scope(name) as name:
            super().__init__(
                conditioner,
                transformer,
                event_ndims=1,
                validate_args=validate_args,
                dtype=None,
                parameters=parameters,
                name=name,
            )
            self._event_size = getattr(conditioner, "event_size", None)
            self._autoregressive_checked = False

    @property
    def log_scale_clamp(self) -> float | None:
        return getattr(self._transformer, "log_scale_clamp", None)

    def _check_event_shape(self, shape, what):
        super()._check_event_shape(shape, what)
        d = self._event_size
        if d is not None and shape.rank is not None and shape[-1] not in (None, d):
            raise ValueError(
                f"{self.name}: expected events of size {d} on the last axis of the {what} input; "
                f"got shape {shape}."
            )

    def _params(self, y, conditional, **call_kwargs):
        """The transformer's parameters `[..., D, num_params]`, autoregressive in `y`."""
        if self.validate_args and not self._autoregressive_checked:
            self._autoregressive_checked = check_autoregressive(
                self._conditioner_params, y, conditional, self
            )
        return self._conditioner_params(y, conditional, **call_kwargs)

    def _conditioner_params(self, y, conditional, **call_kwargs):
        output = call_conditioner(self._conditioner, y, conditional, self.name, **call_kwargs)
        return conditioner_params(output, self._transformer, y, 1, self.name, none_is_zero=True)

    def _blocks(self, x):
        """`[(passes, call_kwargs), ...]`: the conditioner's plan of the D passes, or D full."""
        plan = getattr(self._conditioner, "sequential_blocks", None)
        if plan is not None and x.shape[-1] is not None:
            return list(plan(self._SEQUENTIAL_BLOCKS))
        return [(x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1], {})]

    def _forward_and_log_det(self, x, conditional=None):
        # Pass j fixes the dimension of degree j + 1 (the first pass starts from y = 0, and fixes
        # the output shape if a conditional input broadcasts against x).
        transform = self._transformer.forward_and_log_det
        d = x.shape[-1]
        blocks = self._blocks(x)
        # With a known input order, after pass j the dimensions of degree > j + 1 hold values
        # from unfinished parameters, which can overflow (no clamp) and turn into NaN through
        # `inf * 0` in a masked matmul. They are zeroed; the result is the same.
        order = getattr(self._conditioner, "input_order", None)
        order = None if order is None or d is None else tf.constant(order, tf.int32)

        def one_pass(y, call_kwargs, j):
            y, log_det = transform(x, self._params(y, conditional, **call_kwargs))
            if order is not None and not (isinstance(j, int) and j + 1 >= d):
                y = tf.where(order <= j + 1, y, tf.zeros_like(y))
            return y, log_det

        y, log_det = one_pass(tf.zeros_like(x), blocks[0][1], 0)
        done = 1  # passes so far
        for b, (passes, call_kwargs) in enumerate(blocks):
            remaining = passes - 1 if b == 0 else passes
            if isinstance(remaining, int) and remaining <= 2:  # unrolled
                for _ in range(remaining):
                    y, log_det = one_pass(y, call_kwargs, done)
                    done += 1
                continue

            def step(i, y, _, call_kwargs=call_kwargs, offset=done):
                return (i + 1, *one_pass(y, call_kwargs, offset + i))

            _, y, log_det = tf.while_loop(
                lambda i, y, s, n=remaining: i < n,
                step,
                (tf.constant(0), y, log_det),
                maximum_iterations=remaining,
            )
            done = done + remaining
        return y, tf.reduce_sum(log_det, axis=-1)

    def _inverse_and_log_det(self, y, conditional=None):
        x, log_det = self._transformer.inverse_and_log_det(y, self._params(y, conditional))
        return x, tf.reduce_sum(log_det, axis=-1)
