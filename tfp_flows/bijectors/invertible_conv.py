"""Invertible1x1Conv: Glow's learned invertible linear map over the channel axis."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfp_flows import _validation as check
from tfp_flows.bijectors._channelwise import ChannelwiseBijector

__all__ = ["Invertible1x1Conv"]


class Invertible1x1Conv(ChannelwiseBijector):
    r"""Glow's invertible 1x1 convolution: the same `C x C` matrix `W` applied at every position.

    With `x` an `[H, W, C]` image (or a `[C]` vector) and `N` the positions per channel (`H * W`,
    or 1 for vectors), at each position:

        y = W x                            (one matmul on x reshaped to [-1, C]: y = x W^T)
        x = W^{-1} y                       (triangular solves, never a matrix inverse)
        log|det J_forward| = N * log|det W|

    LU parameterisation (`lu=True`, the default), as in Glow:

        W = P L (U + diag(sign * exp(log_s))),    log|det W| = sum(log_s)

    with `P` a fixed permutation, `L` unit lower triangular (trainable strictly-lower entries),
    `U` strictly upper triangular (trainable), `sign` fixed and `log_s` trainable. `P` is stored
    as TF's LU pivot vector (`tf.linalg.lu` convention: `W = lu_reconstruct(L + U', perm)`), in a
    non-trainable variable so checkpoints restore it.

    Plain parameterisation (`lu=False`): `W` itself is trainable. Its log-determinant and inverse
    come from a QR factorisation `W = Q R` (`log|det W| = sum(log|diag R|)`, `x = R^{-1} Q^T y`
    by a triangular solve): TensorFlow has no XLA kernel for `Lu` or `LogMatrixDeterminant`, and
    QR (Householder) is as stable as pivoted LU for this use.

    Both start from a random rotation (QR of a Gaussian matrix), so the initial log-det is 0.

    Args:
      num_channels: size `C` of the last axis.
      lu: use the LU parameterisation (O(C) log-det, triangular-solve inverse).
      event_ndims: 3 for `[H, W, C]` images (default), 1 for `[C]` vectors (a learned invertible
        linear map, as in vector Glow-style flows); any rank >= 1 works.
      seed: integer seed of the random-rotation initialisation (numpy); `None` for a fresh one.
      validate_args, dtype, name: as for `ActNorm` (run-time NaN/inf checks, the parameters'
        float dtype, the bijector's name).

    References: Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1
    Convolutions, https://arxiv.org/abs/1807.03039 (section 3.2).

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from tfp_flows.bijectors import Invertible1x1Conv
    >>> conv = Invertible1x1Conv(3, seed=0)
    >>> x = tf.random.stateless_normal([2, 4, 4, 3], seed=[0, 1])
    >>> y = conv.forward(x)
    >>> bool(np.allclose(conv.inverse(tf.identity(y)), x, atol=1e-5))
    True
    >>> conv.forward_log_det_jacobian(x, event_ndims=3).shape
    TensorShape([2])
    """

    def __init__(
        self,
        num_channels: int,
        *,
        lu: bool = True,
        event_ndims: int = 3,
        seed: int | None = None,
        validate_args: bool = False,
        dtype=tf.float32,
        name: str = "invertible_1x1_conv",
    ):
        parameters = dict(locals())
        seed = check.integer(seed, "seed", minimum=0, allow_none=True)
        if not isinstance(lu, bool):
            raise TypeError(f"`lu` must be True or False; got {lu!r}.")
        with tf.name_scope(name) as name:
            super().__init__(num_channels, event_ndims, validate_args, dtype, parameters, name)
            c = self.num_channels
            np_dtype = self.dtype.as_numpy_dtype
            self._lu = bool(lu)
            rotation = _random_rotation(c, seed)
            if self._lu:
                with tf.init_scope():  # the pivoting is computed once, eagerly
                    packed, perm = tf.linalg.lu(tf.constant(rotation, tf.float64))
                packed, perm = packed.numpy(), perm.numpy()
                diag = np.diag(packed)
                self.permutation = self._add_variable(
                    "permutation", perm.astype(np.int32), trainable=False, dtype="int32"
                )
                self.lower = self._add_variable("lower", np.tril(packed, -1).astype(np_dtype))
                self.upper = self._add_variable("upper", np.triu(packed, 1).astype(np_dtype))
                self.sign = self._add_variable(
                    "sign", np.sign(diag).astype(np_dtype), trainable=False
                )
                log_abs_diag = np.log(np.abs(diag)).astype(np_dtype)
                self.log_scale = self._add_variable("log_scale", log_abs_diag)
            else:
                self.weight = self._add_variable("weight", rotation.astype(np_dtype))

    @property
    def lu(self) -> bool:
        return self._lu

    def _triangular_factors(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The masked factors `L` (unit lower) and `U + diag(sign * exp(log_s))` (upper)."""
        c = self._num_channels
        eye = tf.eye(c, dtype=self.dtype)
        lower = tf.linalg.band_part(self.lower, -1, 0) * (1.0 - eye) + eye
        upper = tf.linalg.band_part(self.upper, 0, -1) * (1.0 - eye)
        upper += tf.linalg.diag(self.sign * tf.exp(self.log_scale))
        return lower, upper

    @property
    def weight_matrix(self) -> tf.Tensor:
        """The current `C x C` matrix `W` (so `y = W x` at each position)."""
        if not self._lu:
            return tf.convert_to_tensor(self.weight)
        lower, upper = self._triangular_factors()
        # Row i of W is row invert_permutation(perm)[i] of L @ U, as in `tf.linalg.lu_reconstruct`.
        return tf.gather(tf.matmul(lower, upper), tf.math.invert_permutation(self.permutation))

    def _forward_and_log_det(self, x):
        w = self.weight_matrix
        y = tf.reshape(
            tf.matmul(tf.reshape(x, [-1, self._num_channels]), w, transpose_b=True), tf.shape(x)
        )
        if self._lu:
            log_abs_det = tf.reduce_sum(self.log_scale)
        else:
            log_abs_det = _qr_log_abs_det(tf.linalg.qr(w)[1])
        return y, self._positions_log_det(x, log_abs_det)

    def _inverse_and_log_det(self, y):
        rhs = tf.transpose(tf.reshape(y, [-1, self._num_channels]))  # [C, N]
        if self._lu:
            lower, upper = self._triangular_factors()
            rhs = tf.gather(rhs, self.permutation)  # P^{-1} y
            z = tf.linalg.triangular_solve(lower, rhs, lower=True)
            x = tf.linalg.triangular_solve(upper, z, lower=False)
            log_abs_det = tf.reduce_sum(self.log_scale)
        else:
            q, r = tf.linalg.qr(self.weight)
            x = tf.linalg.triangular_solve(r, tf.matmul(q, rhs, transpose_a=True), lower=False)
            log_abs_det = _qr_log_abs_det(r)
        return tf.reshape(tf.transpose(x), tf.shape(y)), -self._positions_log_det(y, log_abs_det)


def _qr_log_abs_det(r: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))


def _random_rotation(n: int, seed: int | None) -> np.ndarray:
    """A random orthogonal matrix: QR of a Gaussian matrix, signs fixed so it is Haar-uniform."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)
