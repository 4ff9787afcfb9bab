"""What operators hear about the drainer: its state, its health, and its log lines.

Logging is per state change ("Kafka unreachable since 12:00:01, 3412 events spooled,
retrying in 2.0s"; "Kafka delivering again after 41s") plus one progress line per
``progress_interval``, never a line per event. Kept apart from the delivery loop
(:mod:`adapter.events.delivery`), which only says what happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal, Protocol

from .kafka_outcomes import DeliveryError, DeliveryTimeout, KafkaUnavailable

__all__ = ["DeliveryReport", "SpoolGauges", "State"]

logger = logging.getLogger("adapter.events.delivery")  # the drainer's lines, under its name

State = Literal["idle", "delivering", "failing", "stopped"]


class SpoolGauges(Protocol):
    """What the report reads from the spool (:class:`~adapter.events.spool.EventSpool`)."""

    @property
    def depth(self) -> int: ...

    @property
    def oldest_pending_age(self) -> float: ...


class DeliveryReport:
    """The drainer's state and the outage it is in, told to the health check
    (``on_health(serving, why)``) and to the log."""

    def __init__(
        self,
        spool: SpoolGauges,
        *,
        progress_interval: float,
        clock: Callable[[], float],
        on_health: Callable[[bool, str], None] | None,
    ) -> None:
        self._spool = spool
        self.progress_interval = progress_interval
        self._clock = clock
        self._on_health = on_health
        self.state: State = "idle"
        #: When the failed round that began the current outage started (None: healthy).
        self.failing_since: float | None = None
        self._progress_at = 0.0
        self._progress_delivered = 0

    def started(self) -> None:
        """The drainer (re)started: the next progress line counts from now."""
        self._progress_at = self._clock()

    def serving(self) -> None:
        """The delivery loop runs: serving until Kafka says otherwise."""
        if self._on_health is not None and self.state != "failing":
            self._on_health(True, "")

    def idle(self) -> None:
        if self.state != "failing":
            self.state = "idle"

    def delivering(self) -> None:
        if self.state != "failing":
            self.state = "delivering"

    def stopped(self) -> None:
        self.state = "stopped"

    def failing_for(self) -> float:
        """Seconds since the current outage began; 0.0 when healthy."""
        since = self.failing_since
        return 0.0 if since is None else max(0.0, self._clock() - since)

    def failing(self, error: DeliveryError, delay: float, round_started: float) -> None:
        """A round failed with ``error``; the next one starts in ``delay`` seconds."""
        now = self._clock()
        what = "unreachable" if isinstance(error, KafkaUnavailable | DeliveryTimeout) else "failing"
        if self.failing_since is None:
            # "since" is when the failed round began: a timeout is noticed only at its end.
            self.failing_since = round_started
            self.state = "failing"
            if self._on_health is not None:
                self._on_health(False, f"Kafka {what}: {error}")
            self._progress_at = now
            logger.warning(
                "Kafka %s since %s (%s), %d events spooled, retrying in %.1fs",
                what,
                _hms(round_started),
                error,
                self._spool.depth,
                delay,
            )
        elif now - self._progress_at >= self.progress_interval:
            self._progress_at = now
            logger.warning(
                "Kafka still %s since %s (%.0fs; %s), %d events spooled, oldest %.0fs old, retrying in %.1fs",
                what,
                _hms(self.failing_since),
                now - self.failing_since,
                error,
                self._spool.depth,
                self._spool.oldest_pending_age,
                delay,
            )

    def recovered(self, delivered: int) -> None:
        """A round succeeded; ``delivered`` counts every record delivered since start."""
        if self.failing_since is not None:
            logger.info(
                "Kafka delivering again after %.0fs; %d events spooled, draining in order",
                self._clock() - self.failing_since,
                self._spool.depth,
            )
            self.failing_since = None
            self.state = "delivering"
            if self._on_health is not None:
                self._on_health(True, "")
            self._progress_at = self._clock()  # the next progress line is about the catch-up
            self._progress_delivered = delivered

    def progress(self, delivered: int) -> None:
        """One progress line once ``progress_interval`` has passed since the last."""
        now = self._clock()
        elapsed = now - self._progress_at
        if elapsed < self.progress_interval:
            return
        sent = delivered - self._progress_delivered
        if sent:
            logger.info(
                "delivered %d events in %.0fs (%.1f/s), %d spooled, oldest %.1fs old",
                sent,
                elapsed,
                sent / elapsed,
                self._spool.depth,
                self._spool.oldest_pending_age,
            )
        self._progress_at = now
        self._progress_delivered = delivered


def _hms(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))
