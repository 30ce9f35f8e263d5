"""`StepTraces`: lets a model's finished step graphs go, so a dropped model frees its memory.

TensorFlow and TFP keep a traced `tf.function` graph alive from two global places, and with it
everything the graph captured: the model's variables, its flow and its networks. A model's
compiled steps would then outlive the model (about 10 MB per small 2-D model without XLA, and
the whole flow's weights, in every process that trains many models):

* TF's gradient registry: each graph-mode `tf.custom_gradient` registers its gradient function
  under a new name and never removes it. Keras' optimizer registers one in every traced
  training step (its all-reduce of the gradients, which runs with no distribution strategy too),
  and the function holds tensors of the step's graph.
* TFP's bijector cache (one dict for all bijector instances): weakly keyed by a call's input
  and output tensors, but its values hold the call's log-det tensors, which belong to the same
  graph and so keep the keys (and the bijector instances in them) alive.

`note()`, called inside a traced step, records the graph being built; `release()`, called
eagerly after `fit`, `evaluate` or `predict` (or on leaving a `with StepTraces()` block, as
`train.minimize` does), removes from both places what belongs to the
recorded graphs (and the graphs nested in them, e.g. `tf.cond` branches). Nothing differentiates
a finished Keras step function from outside or traces into its graph again, and a later
retrace builds a new graph with new entries, so what is removed is never used again.

Not covered: XLA's compiled executables, which TF's compilation cache keeps for the life of
the process (it has no eviction), so a `jit_compile=True` model leaves its compiled code
behind; the Python objects and the weights are freed.
"""

from __future__ import annotations

import types
import weakref

import tensorflow as tf

from tfp_flows._tfp_compat import bijector_cache_storages, gradient_registry

__all__ = ["StepTraces"]


def _graph_of(value, depth: int = 4):
    """The graph of the first graph tensor found in `value` (through closures and lists)."""
    if tf.is_symbolic_tensor(value):
        return value.graph
    if depth == 0:
        return None
    if isinstance(value, types.FunctionType):
        children = [cell.cell_contents for cell in value.__closure__ or () if _filled(cell)]
    elif isinstance(value, list | tuple):
        children = value
    elif isinstance(value, dict):
        children = list(value.values())
    else:
        return None
    for child in children:
        graph = _graph_of(child, depth - 1)
        if graph is not None:
            return graph
    return None


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


class StepTraces:
    """The graphs a model's steps were traced in, to release once they are finished."""

    def __init__(self):
        self._graphs = weakref.WeakSet()

    def note(self) -> None:
        """Records the graph being built (call inside a step; eagerly it does nothing)."""
        graph = tf.compat.v1.get_default_graph()
        if not tf.executing_eagerly() and getattr(graph, "outer_graph", None) is not None:
            self._graphs.add(graph)

    def __enter__(self) -> StepTraces:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()  # also when the run raised: its graphs are finished either way

    def _recorded(self, graph) -> bool:
        while graph is not None:
            if graph in self._graphs:
                return True
            graph = getattr(graph, "outer_graph", None)
        return False

    def release(self) -> None:
        """Removes the gradient-registry and bijector-cache entries of the recorded graphs.

        Call eagerly, when no recorded graph is being built any more.
        """
        if not self._graphs or not tf.executing_eagerly():
            return
        registry = gradient_registry()
        if registry is not None:
            for name, entry in list(registry.items()):
                if isinstance(entry, dict) and self._recorded(_graph_of(entry.get("type"))):
                    del registry[name]
        for storage in bijector_cache_storages():
            for key, value in list(storage.items()):
                held = [key(), getattr(value, "attributes", None)]
                if self._recorded(_graph_of(tf.nest.flatten(held), depth=2)):
                    key.cancel()
                    storage.pop(key, None)
        self._graphs.clear()
