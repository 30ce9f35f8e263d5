"""What the coupling conditioners share: conditional inputs, params or (shift, log_scale)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfp_flows import _validation as check

__all__ = ["Conditioner", "positive_int"]


def positive_int(value, name: str) -> int:
    return check.integer(value, name)


class Conditioner(keras.layers.Layer):
    """Shared input checks and conditional-input handling."""

    def _init_conditional(self, conditional_size):
        self.conditional_size = (
            None if conditional_size is None else positive_int(conditional_size, "conditional_size")
        )

    def _check_last_dim(self, tensor: tf.Tensor, expected: int, what: str) -> None:
        got = tensor.shape[-1] if tensor.shape.rank else None
        if tensor.shape.rank == 0 or (got is not None and got != expected):
            raise ValueError(
                f"{self.name}: the {what} must have last dimension {expected}; "
                f"got shape {tensor.shape}."
            )

    def _conditional_input(self, inputs: tf.Tensor, conditional, event_ndims: int):
        """Checks `conditional` and broadcasts it to the leading (batch) dims of `inputs`."""
        if self.conditional_size is None:
            if conditional is not None:
                raise ValueError(
                    f"{self.name}: got a `conditional` input, but the layer was built with "
                    "`conditional_size=None`."
                )
            return None
        if conditional is None:
            raise ValueError(
                f"{self.name}: a `conditional` input of size {self.conditional_size} is "
                "required (the layer was built with `conditional_size`)."
            )
        conditional = tf.convert_to_tensor(conditional, dtype=self.compute_dtype)
        self._check_last_dim(conditional, self.conditional_size, "`conditional` input")
        shape = tf.concat([tf.shape(inputs)[:-event_ndims], [self.conditional_size]], 0)
        return tf.broadcast_to(conditional, shape)

    def _init_num_params(self, num_params):
        self.num_params = check.integer(num_params, "num_params", allow_none=True)
        return 2 if self.num_params is None else self.num_params  # outputs per element

    def _split_output(self, out, leading, size: int):
        """`out [..., P * size]` (column `i * P + j`: element `i`, param `j`) as the params
        `[..., size, P]`, or as `(shift, log_scale)` (two halves) when `num_params` is None."""
        if self.num_params is None:
            return out[..., :size], out[..., size:]
        return tf.reshape(out, tf.concat([leading, [size, self.num_params]], 0))

    def _base_config(self) -> dict:
        config = super().get_config()
        config["conditional_size"] = self.conditional_size
        config["num_params"] = self.num_params
        return config
