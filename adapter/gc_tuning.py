"""The garbage collector, tuned for a long-running server."""

from __future__ import annotations

import gc

__all__ = ["YOUNG_GENERATION_THRESHOLD", "tune_collector_for_serving"]

#: Net container allocations between two young-generation collections once serving
#: (CPython's default: 700). Each unary call leaves a reference cycle behind in
#: grpc.aio itself (its ``_find_method_handler`` coroutine keeps the ``query_handlers``
#: closure that points back at it: five objects a call only the collector frees), so
#: at 700 a young collection ran every ~40 calls, and each walked again everything
#: the calls in flight hold. At 10,000: a fortieth of the collections, 1.5-2% less CPU
#: a call at 16 in flight, and a young collection of ~4.6 ms instead of ~0.3 on a slow
#: bench host (docs/benchmarks.md, "Fortieth stop").
YOUNG_GENERATION_THRESHOLD = 10_000


def tune_collector_for_serving() -> None:
    """Freezes the startup heap and raises the young generation's threshold; called
    once the adapter has started.

    The freeze moves everything alive after startup (modules, protobuf descriptors,
    the assembled adapter) into the collector's permanent generation: those ~100,000
    objects live as long as the process, yet every full collection scanned them
    again: 50-75 ms on the bench machine (``gc.collect()`` after assembly), a stall
    of every call and event in flight each time one ran. After the freeze a full
    collection scans only what the process allocated since (CPython's advice for
    servers, ``gc.freeze`` docs).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)
