"""How the benchmarks time a call: blocks of calls per process, or alternating rounds in one."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["alternating_rounds", "block", "time_call"]


def block(fn: Callable, sync: Callable, n: int) -> float:
    """Seconds per call of `n` calls of `fn()`, waiting (`sync`) for the last output only."""
    start = time.perf_counter()
    for _ in range(n):
        out = fn()
    sync(out)
    return (time.perf_counter() - start) / n


def time_call(fn: Callable, sync: Callable, min_time: float, blocks: int) -> dict:
    """First call (trace/compile), one warm call that sizes the blocks, then `blocks` blocks of
    about `min_time` seconds each; `median_s` is the median over the blocks of the time per call.
    """
    first = block(fn, sync, 1)
    warm = block(fn, sync, 1)
    n = max(1, round(min_time / max(warm, 1e-6)))
    per_call = [block(fn, sync, n) for _ in range(blocks)]
    return {
        "median_s": statistics.median(per_call),
        "blocks_s": per_call,
        "calls_per_block": n,
        "first_call_s": first,
    }


def alternating_rounds(
    fns: dict[str, Callable],
    sync: Callable,
    *,
    rounds: int,
    min_time: float,
    warmup: int = 1,
    min_calls: int = 1,
) -> tuple[dict[str, list[float]], int]:
    """Times several calls in one process, round by round, alternating which goes first.

    Each is warmed up with `warmup` calls (trace and compile) and timed over `warmup` more; then
    every round times one block of each, the same number of calls for all: enough that the
    fastest's block lasts about `min_time` (at least `min_calls`). Drift of the machine then
    hits all alike. Returns the seconds per call of each name, one per round, and the calls per
    block.
    """
    per_call = {}
    for name, fn in fns.items():
        block(fn, sync, warmup)
        per_call[name] = block(fn, sync, warmup)
    n = max(min_calls, *(round(min_time / max(t, 1e-9)) for t in per_call.values()))
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            times[name].append(block(fns[name], sync, n))
    return times, n
