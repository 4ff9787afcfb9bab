"""Where sources hand events over: encode, trace, spool durably.

A source (WebSocket, webhook, backfill) calls :meth:`EventIntake.accept`; when
it returns, every event is durable in the spool (or was a duplicate, or was
dead-lettered), so the source may acknowledge it or advance its position.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from opentelemetry.trace import SpanKind, TracerProvider

from adapter.telemetry.lean_tracer import LeanTracer
from adapter.telemetry.repeated_lines import RepeatedLines

from .delivery_claims import DeliveryClaim
from .encoding import EventEncoder, UnroutableEventError, VendorEvent
from .records import OutboundRecord
from .spool import EventSpool, SpoolFull

__all__ = ["AcceptResult", "EventIntake", "IntakeFullError"]

logger = logging.getLogger(__name__)


class IntakeFullError(Exception):
    """The spool has no room; the source must push back (503, paused reads)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"event spool full; retry in {retry_after:.0f}s")
        self.retry_after = retry_after


@dataclass(slots=True)
class AcceptResult:
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    #: Indexes (into the accepted sequence) of the events that were dead-lettered:
    #: a source must not move its position past what they claim (their times).
    dead: frozenset[int] = frozenset()


@dataclass(slots=True)
class IntakeStats:
    accepted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)


class EventIntake:
    """Turns vendor events into spooled records."""

    def __init__(
        self,
        encoder: EventEncoder,
        spool: EventSpool,
        *,
        tracer_provider: TracerProvider | None = None,
        full_retry_after: float = 5.0,
    ) -> None:
        self.encoder = encoder
        self._spool = spool
        self._tracer = LeanTracer(tracer_provider, __name__)
        self._retry_after = full_retry_after
        self.stats = IntakeStats()
        # A vendor whose events drifted from the protos (or a flood of bad frames) would write a
        # line per event, and a spool that Kafka is catching up on fills again at every batch:
        # one line of a kind per interval, with a count. Each dead letter is still on its topic,
        # with its cause in headers, and counted.
        self._lines = RepeatedLines(logger)

    async def accept(
        self, events: Sequence[VendorEvent], *, wait: bool = False, claim: DeliveryClaim | None = None
    ) -> AcceptResult:
        """Durably accepts ``events``. With ``wait`` a full spool is waited out
        (WebSocket: reads pause meanwhile); without, IntakeFullError is raised
        (webhook: 503 + Retry-After). ``claim`` (a webhook's delivery id, never with
        ``wait``) makes them all duplicates when that delivery was accepted before."""
        if claim is not None and wait:
            raise ValueError("a delivery claim is for one webhook delivery, which never waits")
        records: list[OutboundRecord] = []
        owners: list[int] = []  # which event each record came from
        dead: set[int] = set()
        for index, event in enumerate(events):
            produced = self._encode(event)
            if produced[0].topic == self.encoder.dead_letter_topic:
                dead.add(index)
            records.extend(produced)
            owners.extend([index] * len(produced))
        try:
            fresh = await self._spool.append(records, claim=claim)
        except SpoolFull as full:
            if not wait:
                raise IntakeFullError(self._retry_after) from None
            fresh = await self._append_as_room_frees(records, owners, events, full.depth)
        if claim is not None and records and not any(fresh):
            # A replayed delivery: nothing was stored, dead letters included.
            for event in events:
                self.stats.duplicates[f"{event.source}.{event.channel}"] += 1
            return AcceptResult(duplicates=len(events))
        result = AcceptResult(dead_lettered=len(dead), dead=frozenset(dead))
        accepted_events = {owners[i] for i, is_new in enumerate(fresh) if is_new}
        for index, event in enumerate(events):
            name = f"{event.source}.{event.channel}"
            if index in dead:
                continue
            if index in accepted_events:
                result.accepted += 1
                self.stats.accepted[name] += 1
            else:
                result.duplicates += 1
                self.stats.duplicates[name] += 1
        return result

    async def _append_as_room_frees(
        self,
        records: list[OutboundRecord],
        owners: list[int],
        events: Sequence[VendorEvent],
        depth: int,
    ) -> list[bool]:
        """Appends event by event, in order, each as soon as it fits: a batch larger
        than the free room must not wait for a room it will never get at once.
        ``depth``: the spool's depth when it refused the batch, which the log line
        gives (by the time it is written the drainer may have freed some already)."""
        sources = _sources(events)
        self._lines.log(
            logging.WARNING,
            ("spool full", sources),
            "event spool full (%d events): pausing %s intake until Kafka takes some",
            depth,
            sources,
        )
        fresh: list[bool] = []
        start = 0
        while start < len(records):
            end = start
            while end < len(records) and owners[end] == owners[start]:
                end += 1
            pause = 0.01
            while True:
                try:
                    fresh += await self._spool.append(records[start:end])
                    break
                except SpoolFull as full:
                    if full.depth == 0:  # does not fit even in an empty spool: can never be stored
                        logger.error(
                            "event %r (%d bytes) is larger than the whole spool; not stored",
                            events[owners[start]].id or events[owners[start]].type,
                            sum(r.size for r in records[start:end]),
                        )
                        fresh += [False] * (end - start)
                        break
                    await self._spool.wait_for_room(None)
                    # Room for one record may not be room for this event's records.
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.5)
            start = end
        logger.info("event spool has room again: %s intake resumed", _sources(events))
        return fresh

    def _encode(self, event: VendorEvent) -> list[OutboundRecord]:
        with self._tracer.start_as_current_span(
            f"receive {event.source} {event.type[:100] or 'event'}",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": event.channel,
                "messaging.operation.type": "receive",
                "messaging.message.id": event.id[:200],
                "meshadapter.event.source": event.source,
                "meshadapter.event.type": event.type[:200],
            },
        ) as span:
            try:
                return self.encoder.records(event)
            except UnroutableEventError as exc:
                reason, detail = exc.reason, exc.detail
            except Exception as exc:  # the encoder promises not to; a bug must still not stop a stream
                logger.exception("event encoder failed on a %s %s event", event.source, event.channel)
                reason, detail = "ENCODER_FAILURE", f"{type(exc).__name__}: {exc}"[:1000]
            span.set_attribute("meshadapter.dead_letter.reason", reason)
            self.stats.dead_lettered[f"{event.source}.{reason}"] += 1
            self._lines.log(
                logging.WARNING,
                ("dead letter", event.source, event.channel, reason),
                "dead-lettering %s %s event %.100r: %s %.300s",
                event.source,
                event.channel,
                event.type,
                reason,
                detail,
            )
            raw = event.raw or _raw_of(event.data)
            return [
                self.encoder.dead_letter(
                    event, raw=raw, source=event.source, channel=event.channel, reason=reason, detail=detail
                )
            ]


def _raw_of(data: object) -> bytes:
    """The event's data as bytes for a dead letter, whatever it holds."""
    try:
        return orjson.dumps(data)
    except (TypeError, orjson.JSONEncodeError):
        return b"<data not serialisable as JSON>"


def _sources(events: Sequence[VendorEvent]) -> str:
    return ", ".join(sorted({f"{e.source} {e.channel}" for e in events}))
