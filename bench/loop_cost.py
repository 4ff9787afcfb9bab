"""Two ways of doing one call's work, timed in a loop side by side in one run
(``bench.span_cost``, ``bench.histogram_cost``): the calling thread's own CPU
per call, best of interleaved rounds so the machine's drift hits both arms."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

__all__ = ["CALLS", "compare"]

SMOKE = os.environ.get("BENCH_SMOKE") == "1"
CALLS = 2000 if SMOKE else 30000
ROUNDS = 1 if SMOKE else 3


def _us_per_call(one: Callable[[], None]) -> float:
    started = time.thread_time_ns()
    for _ in range(CALLS):
        one()
    return (time.thread_time_ns() - started) / CALLS / 1000


def compare(
    what: str,
    sdk: tuple[str, Callable[[], None]],
    lean: tuple[str, Callable[[], None]],
    *,
    ratio: str = "lean / SDK",
) -> None:
    """Prints the table: each arm's best µs per call and the second / the first (``ratio``)."""
    arms = dict((sdk, lean))
    figures: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(ROUNDS):
        for name, one in arms.items():
            figures[name].append(_us_per_call(one))
    print(f"{what + ' per call, ' + str(CALLS) + ' calls, best of ' + str(ROUNDS):<44} {'us/call':>9}")
    best = {name: min(values) for name, values in figures.items()}
    for name, value in best.items():
        print(f"{name:<44} {value:>9.1f}")
    sdk_us, lean_us = best.values()
    print(f"{ratio}: {lean_us / sdk_us:.2f} ({sdk_us - lean_us:.1f} us less per call)")
