"""What ``EventService/Subscribe`` does when its Kafka cannot be reached: the
caller's status, and a log that names each outage without one line per refusal.

The caller gets UNAVAILABLE (retryable by every gRPC client's retry policy) with
``ErrorInfo`` reason ``KAFKA_UNREACHABLE`` and a ``RetryInfo``; the cause, which
names the broker's address, goes to the log only. A client that retries in a loop
is refused once per metadata timeout per stream, so with per-line logging an
outage would write a WARNING per attempt of every client: the log says once when
refusals start, then at most once per ``summary_interval`` how many more there
were (:class:`~adapter.telemetry.repeated_lines.RepeatedLines`), and once at INFO
when a stream opens again. ``refused`` counts them all (a metric).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc
from google.rpc import error_details_pb2, status_pb2

from adapter.status.mapping import ERROR_DOMAIN, build_status, delay_duration
from adapter.telemetry.repeated_lines import RepeatedLines

__all__ = ["RETRY_AFTER_SECONDS", "KafkaUnreachableRefusals"]

logger = logging.getLogger(__name__)
_OUTAGE = "outage"

#: What ``RetryInfo`` asks: a broker restart or a leader election takes seconds.
RETRY_AFTER_SECONDS = 5


class KafkaUnreachableRefusals:
    """Counts Subscribe refusals for an unreachable Kafka and logs them by outage."""

    def __init__(
        self, *, summary_interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lines = RepeatedLines(logger, interval=summary_interval, clock=clock)
        #: Subscribe calls refused because Kafka was unreachable, since start.
        self.refused = 0
        self._in_outage = 0  # refusals since the outage began (0: no outage)

    def refuse(self, cause: BaseException) -> status_pb2.Status:
        """Counts and logs one refusal; the status the caller gets (no broker address in it)."""
        self.refused += 1
        self._in_outage += 1
        self._lines.log(
            logging.WARNING,
            _OUTAGE,
            "Subscribe refused: Kafka is unreachable (%r); refusing until it answers",
            cause,
        )
        return _REFUSED

    def reached(self) -> None:
        """A stream got its partitions: an outage, if one was logged, is over."""
        if self._in_outage:
            logger.info("Subscribe reached Kafka again, after %d refused calls", self._in_outage)
            self._in_outage = 0
            self._lines.forget(_OUTAGE)


#: What every refused call gets: the same status each time.
_REFUSED = build_status(
    grpc.StatusCode.UNAVAILABLE,
    "Kafka is unreachable; retry later",
    [
        error_details_pb2.ErrorInfo(reason="KAFKA_UNREACHABLE", domain=ERROR_DOMAIN),
        error_details_pb2.RetryInfo(retry_delay=delay_duration(RETRY_AFTER_SECONDS)),
    ],
)
