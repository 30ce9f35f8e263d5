"""`validate_args` of the autoregressive layers: is the conditioner really autoregressive?"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["check_autoregressive", "not_autoregressive"]


def check_autoregressive(params_fn, y, conditional, bijector) -> bool:
    """Raises `ValueError` unless the params of each dimension see only earlier inputs.

    `params_fn(y, conditional)` gives the params `[..., D, P]` of `bijector` (a MAF). Runs
    eagerly (lifted out of any `tf.function`) on `D` copies of a random probe, with a random
    condition, whose row `k` feeds output `k`: one backward pass of the conditioner gives the
    rows of its Jacobian. The dependencies are checked against the conditioner's `input_order`
    when it has one, else they must be acyclic. Returns False (deferred) while the event size
    is unknown, True once checked.
    """
    d = (y.shape[-1] if y.shape.rank else None) or bijector._event_size
    c = None if conditional is None else tf.convert_to_tensor(conditional).shape
    if d is None or (c is not None and (not c.rank or c[-1] is None)):
        return False
    with tf.init_scope():  # eager; `tf.gradients` in a graph, as init_scope pauses tapes
        rank = max(y.shape.rank or 2, 2)
        probe = tf.random.stateless_normal([d], [0, 1])
        probe = tf.cast(tf.broadcast_to(probe, [1] * (rank - 2) + [d, d]), y.dtype)
        if c is not None:
            c_probe = tf.random.stateless_normal([1] * (c.rank - 1) + [c[-1]], [0, 2])
            conditional = tf.cast(c_probe, conditional.dtype)
        p = bijector.transformer.num_params
        pick = tf.eye(d, dtype=y.dtype)[..., None] * tf.range(1, p + 1, dtype=y.dtype)

        @tf.function(autograph=False)
        def jacobian_rows(probe):
            params = params_fn(probe, conditional)
            loss = tf.reduce_sum(params * pick)  # output k of row k, its params weighted
            return tf.gradients(loss, probe, unconnected_gradients="zero")[0]

        depends = tf.reshape(jacobian_rows(probe), [d, d]).numpy() != 0
    order = getattr(bijector.conditioner, "input_order", None)
    owner = type(bijector.conditioner).__name__
    problem = not_autoregressive(depends, None if order is None else np.asarray(order), owner)
    if problem:
        raise ValueError(
            f"{bijector.name}: the conditioner is not autoregressive: {problem}. The log-det "
            "would be wrong (its Jacobian is not triangular)."
        )
    return True


def not_autoregressive(depends: np.ndarray, order=None, owner: str = "MADE") -> str | None:
    """What breaks autoregressiveness in `depends[d, i]`: "the params of `d` depend on input `i`".

    With an `order` (e.g. a MADE's degrees), input `i` may feed dimension `d` only if
    `order[i] < order[d]` (`owner` names whose order it is); without one, the dependencies
    must not form a cycle.
    """
    if order is not None:
        for d, i in zip(*np.nonzero(depends)):
            if order[i] >= order[d]:
                return (
                    f"the params of dimension {d} (degree {order[d]} in the {owner}'s "
                    f"`input_order`) depend on input {i} (degree {order[i]}), not before it"
                )
        return None
    remaining = set(range(len(depends)))  # strip dimensions with no remaining dependency
    while free := {d for d in remaining if not any(depends[d, i] for i in remaining)}:
        remaining -= free
    if not remaining:
        return None
    path = [min(remaining)]  # each remaining dimension depends on another: walk to a repeat
    while (i := next(i for i in sorted(remaining) if depends[path[-1], i])) not in path:
        path.append(i)
    cycle = [*path[path.index(i) :], i]
    return (
        f"the params of dimension {cycle[0]} depend on input {cycle[1]} (dependency cycle "
        f"{' -> '.join(map(str, cycle))}, so no order of the dimensions is autoregressive)"
    )
