"""The streams' backfill watermarks in a compacted Kafka topic, shared by replicas.

A replica that owns a stream moves its local mark as events are spooled (as the
single-process :class:`~adapter.events.watermarks.WatermarkStore` does), but
*publishes* a mark only once the spool holds no record enqueued before it was
reached: Kafka acknowledged every event up to it. So the next owner, after a
``kill -9`` of this one, reads a mark nothing before which is missing from Kafka,
and backfills the rest (events spooled here but never delivered come again, with
the same ``ce_id``).

Records: key = stream name, value = ``{"mark", "replica", "written_at"}`` (JSON);
the topic has one partition, so the last record per key is the mark.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from adapter.events.aiokafka_compat import start_client, stop_consumer
from adapter.events.backfill import OVERLAP
from adapter.events.kafka_connection import KafkaTarget, client_args
from adapter.events.kafka_sink import Delivered, KafkaSink
from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool
from adapter.events.watermarks import capped, event_time

from .kafka_tail import identities_since

__all__ = ["SharedWatermarks"]

logger = logging.getLogger(__name__)

#: Kafka timestamps are the producer's clock at delivery, after the event's own time;
#: this much earlier is read as well, for clocks that disagree.
_CLOCK_MARGIN = dt.timedelta(seconds=10)


@dataclass
class _Stream:
    #: The mark this replica moved to (spooled events), used while it keeps the stream.
    local: dt.datetime | None = None
    #: The mark Kafka holds (published or read).
    published: dt.datetime | None = None
    #: (spool clock when reached, mark) not yet known to be delivered, oldest first.
    candidates: deque[tuple[float, dt.datetime]] = field(default_factory=deque)


class SharedWatermarks:
    """Per-stream marks; the :class:`~adapter.events.watermarks.Watermarks` interface
    the WebSocket sources use, plus :meth:`load` / :meth:`publish` for the ownership."""

    def __init__(
        self,
        *,
        topic: str,
        bootstrap_servers: KafkaTarget,
        client_id: str,
        replica_id: str,
        sink: KafkaSink,
        spool: EventSpool,
        topics: Mapping[str, tuple[str, ...]] | None = None,
        timeout: float = 10.0,
    ) -> None:
        """``topics``: each stream's topics, whose records since its mark are known to the
        spool's dedupe before the stream starts (see :mod:`.kafka_tail`)."""
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._replica = replica_id
        self._sink = sink
        self._spool = spool
        self._timeout = timeout
        self._topics = dict(topics or {})
        self._streams: dict[str, _Stream] = {}
        self._lock = asyncio.Lock()

    # -- the sources' interface --------------------------------------------------------------

    def get(self, source: str) -> dt.datetime | None:
        stream = self._streams.get(source)
        if stream is None:
            return None
        marks = [m for m in (stream.local, stream.published) if m is not None]
        return max(marks) if marks else None

    def advance(self, source: str, timestamp: str, *, ceiling: dt.datetime | None = None) -> None:
        when = event_time(timestamp)
        if when is not None:
            self.advance_to(source, when, ceiling=ceiling)

    def advance_to(self, source: str, when: dt.datetime, *, ceiling: dt.datetime | None = None) -> None:
        when = capped(when, ceiling)
        stream = self._streams.setdefault(source, _Stream())
        if stream.local is None or when > stream.local:
            stream.local = when
            stream.candidates.append((self._spool.now(), when))

    def flush(self) -> None:
        """Publishing is asynchronous (:meth:`publish`); nothing to write here."""

    # -- the ownership's interface -----------------------------------------------------------

    async def load(self, source: str) -> dt.datetime | None:
        """Reads ``source``'s mark from the topic (the last one any replica wrote) and
        starts this ownership from it; a stream nobody marked yet starts now, and that
        start is published at once (a successor then backfills from it)."""
        marks = await self._read_all()
        mark = marks.get(source)
        self._streams[source] = _Stream(published=mark)
        if mark is not None and self._topics.get(source):
            delivered = await identities_since(
                self._bootstrap,
                self._topics[source],
                mark - OVERLAP - _CLOCK_MARGIN,
                client_id=self._client_id,
                timeout=self._timeout,
            )
            known = await self._spool.remember(delivered)
            logger.info(
                "%s: %d events since its mark are in Kafka already (%d new here)",
                source,
                len(delivered),
                known,
            )
        if mark is None:
            start = dt.datetime.now(dt.UTC)
            self._streams[source] = _Stream(local=start, candidates=deque([(self._spool.now(), start)]))
            await self.publish([source])
        logger.info("%s watermark read from %s: %s", source, self.topic, mark.isoformat() if mark else "none")
        return mark

    async def settle(self, sources: list[str], *, within: float) -> bool:
        """Waits (up to ``within`` seconds) until Kafka acknowledged every event these
        streams spooled here, so the next owner finds them in Kafka; True if it did."""
        moment = self._spool.now()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        pending = any(self._streams.get(s, _Stream()).candidates for s in sources)
        while pending and not self._spool.delivered_through(moment):
            if loop.time() > deadline:
                logger.warning("%s: spooled events not all in Kafka within %.1fs", ", ".join(sources), within)
                return False
            await asyncio.sleep(0.02)
        return True

    def release(self, source: str) -> None:
        """Forgets ``source``'s local state: another replica owns it now."""
        self._streams.pop(source, None)

    async def publish(self, sources: list[str] | None = None) -> int:
        """Writes the mark of every stream (of ``sources``) whose spooled events Kafka has
        all acknowledged up to a newer mark than the one published; returns how many
        were written. Failures are logged and retried at the next call."""
        async with self._lock:
            records: list[tuple[str, dt.datetime, OutboundRecord]] = []
            for name in sources if sources is not None else list(self._streams):
                stream = self._streams.get(name)
                if stream is None:
                    continue
                delivered: dt.datetime | None = None
                while stream.candidates and self._spool.delivered_through(stream.candidates[0][0]):
                    delivered = stream.candidates.popleft()[1]
                if delivered is None or (stream.published is not None and delivered <= stream.published):
                    continue
                records.append((name, delivered, self._record(name, delivered)))
            if not records:
                return 0
            outcomes = await self._sink.send_batch([r for _, _, r in records])
            written = 0
            for (name, mark, _), outcome in zip(records, outcomes, strict=True):
                stream = self._streams.get(name)
                if isinstance(outcome, Delivered):
                    written += 1
                    if stream is not None:
                        stream.published = mark
                else:
                    logger.warning("%s watermark not written (%s); retried", name, outcome)
                    if stream is not None:  # keep it for the next round
                        stream.candidates.appendleft((float("-inf"), mark))
            return written

    def _record(self, name: str, mark: dt.datetime) -> OutboundRecord:
        value = orjson.dumps(
            {
                "mark": mark.isoformat(),
                "replica": self._replica,
                "written_at": dt.datetime.now(dt.UTC).isoformat(),
            }
        )
        return OutboundRecord(
            topic=self.topic,
            key=name.encode(),
            value=value,
            headers=(("content-type", b"application/json"),),
            ce_id=f"watermark:{name}:{mark.isoformat()}",
        )

    async def _read_all(self) -> dict[str, dt.datetime]:
        """The last mark per stream: the topic read from its beginning to its end now."""
        consumer = AIOKafkaConsumer(
            **client_args(self._bootstrap),
            client_id=f"{self._client_id}-watermarks",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            group_id=None,
        )
        marks: dict[str, dt.datetime] = {}
        try:
            async with asyncio.timeout(self._timeout):
                await start_client(consumer)
                partition = TopicPartition(self.topic, 0)
                consumer.assign([partition])
                end = (await consumer.end_offsets([partition]))[partition]
                next_offset = 0
                while next_offset < end:
                    batches = await consumer.getmany(partition, timeout_ms=500)
                    for record in batches.get(partition, []):
                        next_offset = record.offset + 1
                        if record.key is None or record.value is None:
                            continue
                        mark = _mark_of(record.value)
                        if mark is not None:
                            marks[record.key.decode(errors="replace")] = mark
                    if not batches:  # compaction may have removed the last offsets
                        next_offset = max(next_offset, await consumer.position(partition))
        finally:
            await stop_consumer(consumer, within=self._timeout)
        return marks


def _mark_of(value: bytes) -> dt.datetime | None:
    """A watermark record's mark (``{"mark": <RFC 3339>}``) as an aware UTC time, or None
    when the record is not one this module writes: anyone who may write to the topic
    could put another there, and one record must not stop a replica loading the rest."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    mark = doc.get("mark") if isinstance(doc, dict) else None
    return event_time(mark) if isinstance(mark, str) else None
