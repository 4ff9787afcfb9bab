"""What a failed call's log line costs: every failure logged (as before
``telemetry.failure_log_interval_seconds``) against the lines repeated at most once
per interval (``adapter/telemetry/repeated_lines.py``), in a loop, side by side in
one run. Per call, as the handlers log an outage's failures: the same method and
status code each time, through the adapter's JSON log set-up (trace context and
secret masking filters) into ``/dev/null``, inside a sampled span so each line
carries its ids, on a running event loop (where a held line's timer is set). The CPU
is the calling thread's own: a collector reading the lines would add its share.

    python -m bench.failure_log_cost
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from adapter.telemetry.logs import configure_logging
from adapter.telemetry.repeated_lines import RepeatedLines
from bench.loop_cost import compare

PATH = "/openframe.v1.DeviceService/ListDevices"
MESSAGE = "openframe: circuit open for GET /v1/devices; the next probe in 4.2 s"


def _failure(lines: RepeatedLines) -> Callable[[], None]:
    def one() -> None:
        lines.log(logging.WARNING, "UNAVAILABLE", "%s -> %s: %s", PATH, "UNAVAILABLE", MESSAGE)

    return one


def _compare() -> None:
    with open(os.devnull, "w") as sink:
        configure_logging("INFO", "json", stream=sink)
        logger = logging.getLogger("adapter.server.handlers")
        tracer = TracerProvider().get_tracer("bench")
        with trace.use_span(tracer.start_span("call"), end_on_exit=True):
            compare(
                "a failed call's log line",
                ("every failure logged", _failure(RepeatedLines(logger, interval=0))),
                ("repeated lines once per 10 s", _failure(RepeatedLines(logger, interval=10.0))),
                ratio="once per 10 s / every failure",
            )


async def _on_the_loop() -> None:
    _compare()  # blocking on purpose: a loop must be running, not turning


def main() -> None:
    asyncio.run(_on_the_loop())


if __name__ == "__main__":
    main()
