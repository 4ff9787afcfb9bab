"""Inputs each target tried and the time it took, printed after the run."""

from __future__ import annotations

import collections
import time

__all__ = ["RESULTS", "tried"]

#: target -> [inputs, first seen (monotonic), last seen (monotonic)]
RESULTS: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])


def tried(target: str) -> None:
    entry = RESULTS[target]
    now = time.monotonic()
    if not entry[0]:
        entry[1] = now
    entry[0] += 1
    entry[2] = now
