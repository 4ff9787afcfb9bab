"""Telemetry finished after the reply, off the call's critical path.

Ending a span (its processors) and recording a histogram (an exemplar, one
aggregation per reader) cost CPU that nothing the caller gets depends on, even
as the lean spans and histograms (:mod:`.lean_tracer`, :mod:`.lean_metrics`)
make them cheaper. So a call takes its measurements on the spot (end time,
duration) and hands the recording to the event loop, which runs it once the
handler's current step, the one that passes the reply to grpc.aio, is done. The
recorded values are the same; the caller waits less (the CPU spent is the same).
Whoever shuts the providers down gives the loop one more step first
(``adapter/cli.py``), so the last calls' telemetry is in what they flush.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["after_reply"]


def after_reply(record: Callable[..., None], *args: Any) -> None:
    """``record(*args)`` once the running loop's current callback is done; at once
    when no loop runs (a synchronous caller has no later moment to use)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        record(*args)
        return
    loop.call_soon(record, *args)
