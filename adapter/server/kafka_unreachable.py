"""What ``EventService/Subscribe`` does when its Kafka cannot be reached: the
caller's status, and a log that names each outage without one line per refusal.

The caller gets UNAVAILABLE (retryable by every gRPC client's retry policy) with
``ErrorInfo`` reason ``KAFKA_UNREACHABLE`` and a ``RetryInfo``; the cause, which
names the broker's address, goes to the log only. A client that retries in a loop
is refused once per metadata timeout per stream, so with per-line logging an
outage would write a WARNING per attempt of every client: the log says once when
refusals start, then at most once per ``summary_interval`` how many more there
were, and once at INFO when a stream opens again. Written by hand: the logging
module has no rate-limited handler, and counting the refusals is what operators
need anyway (``refused``, a metric).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from adapter.status.mapping import ERROR_DOMAIN

__all__ = ["RETRY_AFTER_SECONDS", "KafkaUnreachableRefusals"]

logger = logging.getLogger(__name__)

#: What ``RetryInfo`` asks: a broker restart or a leader election takes seconds.
RETRY_AFTER_SECONDS = 5


class KafkaUnreachableRefusals:
    """Counts Subscribe refusals for an unreachable Kafka and logs them by outage."""

    def __init__(
        self, *, summary_interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._summary_interval = summary_interval
        self._clock = clock
        #: Subscribe calls refused because Kafka was unreachable, since start.
        self.refused = 0
        self._in_outage = 0  # refusals since the outage began (0: no outage)
        self._unlogged = 0
        self._logged_at = float("-inf")

    def refuse(self, cause: BaseException) -> status_pb2.Status:
        """Counts and logs one refusal; the status the caller gets (no broker address in it)."""
        self.refused += 1
        self._in_outage += 1
        now = self._clock()
        if self._in_outage == 1:
            logger.warning("Subscribe refused: Kafka is unreachable (%r); refusing until it answers", cause)
            self._logged_at = now
        elif now - self._logged_at >= self._summary_interval:
            logger.warning(
                "Subscribe refused %d more calls since the last line: Kafka is still unreachable (%r)",
                self._unlogged + 1,
                cause,
            )
            self._unlogged = 0
            self._logged_at = now
        else:
            self._unlogged += 1
        return _status()

    def reached(self) -> None:
        """A stream got its partitions: an outage, if one was logged, is over."""
        if self._in_outage:
            logger.info("Subscribe reached Kafka again, after %d refused calls", self._in_outage)
            self._in_outage = 0
            self._unlogged = 0


def _status() -> status_pb2.Status:
    packed = status_pb2.Status(
        code=grpc.StatusCode.UNAVAILABLE.value[0], message="Kafka is unreachable; retry later"
    )
    packed.details.add().Pack(error_details_pb2.ErrorInfo(reason="KAFKA_UNREACHABLE", domain=ERROR_DOMAIN))
    packed.details.add().Pack(
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_AFTER_SECONDS))
    )
    return packed
