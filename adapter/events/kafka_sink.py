"""Sends records to Kafka through one idempotent aiokafka producer, every step bounded.

The producer is configured for safety (``enable_idempotence=True``, ``acks="all"``),
which in aiokafka means a batch is retried *forever* while the broker is away: its
send future and ``stop()`` never finish (aiokafka issue #1101). So here every
``start``, every batch of sends and every ``stop`` runs under a deadline, and a
producer that missed one, or hit a non-retriable error (``ProducerFenced``,
``OutOfOrderSequenceNumber``, a dead sender task...), is discarded and a fresh
one is built on next use. Nothing is lost by discarding: the caller (the
drainer) keeps every record in the spool until this sink reports it delivered.

Each batch gets ``send`` PRODUCER spans (OpenTelemetry messaging conventions for
batch publishing, names in :data:`SEMCONV`) that link to every record's creation
context, its ``traceparent`` header set by the source on receipt; the record keeps
that header, so a consumer extracting it continues the event's trace
(adapter/events/kafka_tracing.py).

Exceptions (``retriable`` says whether sending the record again can help)::

    DeliveryError
    ├── KafkaUnavailable   no producer could be started within start_timeout
    ├── DeliveryTimeout    not acknowledged within delivery_timeout (producer rebuilt)
    ├── DeliveryFailed     a Kafka or producer error (producer rebuilt when it is fatal),
    │                      or not sent because an earlier record of the batch failed
    └── RecordRejected     Kafka can never take this record (too large, bad topic); not retriable
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry.trace import TracerProvider

from .aiokafka_compat import force_close_producer
from .kafka_outcomes import (
    Delivered,
    DeliveryError,
    DeliveryFailed,
    DeliveryTimeout,
    KafkaUnavailable,
    RecordRejected,
)
from .kafka_tracing import SEMCONV, BatchSpans, ProducerTracing
from .partition_batches import PartitionBatch, group_by_partition
from .records import OutboundRecord

__all__ = [
    "SEMCONV",
    "Delivered",
    "DeliveryError",
    "DeliveryFailed",
    "DeliveryTimeout",
    "HandedOver",
    "KafkaSink",
    "KafkaUnavailable",
    "RecordRejected",
]

logger = logging.getLogger(__name__)

# Errors about the record itself: sending it again can never succeed.
_REJECTED = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.CorruptRecordException,
    kafka_errors.InvalidTimestampError,
)


class KafkaSink:
    """Delivers :class:`OutboundRecord` batches to Kafka.

    Example::

        async with KafkaSink("127.0.0.1:9092", client_id="mesh-adapter") as sink:
            outcomes = await sink.send_batch(records)   # Delivered or DeliveryError, per record

    ``start()`` does not fail when the broker is down (the adapter keeps accepting
    events into the spool); the producer is (re)built on the next send.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        client_id: str = "mesh-adapter",
        request_timeout_ms: int = 10_000,
        delivery_timeout: float = 20.0,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        max_batch_size: int = 256 * 1024,
        max_request_size: int = 1024 * 1024,
        compression_type: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.delivery_timeout = delivery_timeout
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._producer_config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "enable_idempotence": True,
            "acks": "all",
            "request_timeout_ms": request_timeout_ms,
            "max_batch_size": max_batch_size,
            "max_request_size": max_request_size,
            "compression_type": compression_type,
            "retry_backoff_ms": 200,
        }
        self._request_timeout_ms = request_timeout_ms
        self._max_request_size = max_request_size
        self._tracing = ProducerTracing(tracer_provider, client_id=client_id)
        self._generation: _Generation | None = None
        self._producer_lock = asyncio.Lock()
        self._started = False
        #: Producers discarded after a timeout or a fatal error (a metric).
        self.rebuilds = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connects within ``start_timeout``; a broker that is down is logged, not raised."""
        self._started = True
        try:
            await self._current()
        except KafkaUnavailable as exc:
            logger.warning("Kafka not reachable at start (%s); will retry on first send", exc)

    async def stop(self) -> None:
        """Closes the producer within ``stop_timeout`` (force-closes it after). Idempotent.

        Records not yet acknowledged are abandoned here; the spool still has them.
        """
        self._started = False
        async with self._producer_lock:
            generation, self._generation = self._generation, None
        if generation is not None:
            await self._close(generation)

    async def __aenter__(self) -> KafkaSink:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        """A started producer exists (not a promise that the broker answers right now)."""
        return self._generation is not None

    @property
    def in_flight(self) -> int:
        """Records handed to the producer and not acknowledged yet (a gauge)."""
        if self._generation is None:
            return 0
        return sum(
            len(batch.indices)
            for handed in self._generation.batches
            for batch, future in handed.in_flight
            if not future.done()
        )

    # -- sending -----------------------------------------------------------------------------

    async def send(self, record: OutboundRecord) -> Delivered:
        """Sends one record and waits for its acknowledgement; raises :class:`DeliveryError`."""
        (outcome,) = await self.send_batch([record])
        if isinstance(outcome, DeliveryError):
            raise outcome
        return outcome

    async def send_batch(self, records: Sequence[OutboundRecord]) -> list[Delivered | DeliveryError]:
        """Sends ``records`` in order, all in flight together; one outcome per record.

        The same as ``await (await sink.hand_over(records)).outcomes()``.
        """
        return await (await self.hand_over(records)).outcomes()

    async def hand_over(self, records: Sequence[OutboundRecord]) -> HandedOver:
        """Hands ``records`` to the producer in order and returns without waiting for
        Kafka's acknowledgements (:meth:`HandedOver.outcomes` waits for them).

        The records go as one record batch per topic-partition (more when one is
        full), built here with aiokafka's batch API (adapter/events/partition_batches.py)
        and closed, so the producer sends them at once: the drainer's own linger is
        the only one. Order per partition holds: each partition's records keep their
        given order inside its batches, batches of a partition are handed over in
        order, the idempotent producer keeps that order, and after the first batch
        the producer refuses (other than a :class:`RecordRejected`) the rest is not
        handed over at all (:attr:`HandedOver.complete` is then False, and a caller
        keeping batches in flight must not hand over later records before it resends
        these). Everything runs under one ``delivery_timeout`` deadline, counted from
        this call.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.delivery_timeout
        try:
            generation = await self._current()
        except KafkaUnavailable as exc:
            return HandedOver(self, None, deadline, [exc] * len(records), [], None, exc)
        producer = generation.producer
        outcomes: list[Delivered | DeliveryError | None] = [None] * len(records)
        in_flight: list[tuple[PartitionBatch, asyncio.Future[Any]]] = []
        handing_over: PartitionBatch | None = None  # the batch inside producer.send_batch()
        spans = self._tracing.start(records)
        fatal: BaseException | None = None
        refused: DeliveryError | None = None
        try:
            async with asyncio.timeout_at(deadline):
                partitions: dict[str, list[int]] = {}
                for topic in dict.fromkeys(record.topic for record in records):
                    try:
                        partitions[topic] = sorted(await producer.partitions_for(topic))
                    except Exception as exc:
                        error = _translate(exc)
                        for index, record in enumerate(records):
                            if record.topic == topic:
                                outcomes[index] = error
                                spans.failed(index, error)
                        if not isinstance(error, RecordRejected):
                            refused = error  # the other topics are not handed over either
                            if isinstance(error, DeliveryFailed) and error.fatal:
                                fatal = error
                batches: list[PartitionBatch] = []
                if refused is None:
                    batches, rejected = group_by_partition(
                        records,
                        partitions,
                        new_builder=producer.create_batch,
                        max_request_size=self._max_request_size,
                    )
                    for index, error in rejected.items():
                        outcomes[index] = error
                        spans.failed(index, error)
                for batch in batches:
                    handing_over = batch
                    try:
                        future = await producer.send_batch(
                            batch.builder, batch.topic, partition=batch.partition
                        )
                    except Exception as exc:
                        handing_over = None
                        error = _translate(exc)
                        for index in batch.indices:
                            outcomes[index] = error
                            spans.failed(index, error)
                        if isinstance(error, RecordRejected):
                            continue
                        if isinstance(error, DeliveryFailed) and error.fatal:
                            fatal = error
                        refused = error
                        break
                    handing_over = None
                    in_flight.append((batch, future))
        except TimeoutError:
            fatal = fatal or TimeoutError()
        except asyncio.CancelledError:
            spans.failed_all(DeliveryFailed("cancelled"))
            spans.end()
            raise
        if handing_over is not None:  # the deadline passed inside producer.send_batch()
            late = refused = DeliveryTimeout(f"not taken by the producer within {self.delivery_timeout:.1f}s")
            for index in handing_over.indices:
                outcomes[index] = late
                spans.failed(index, late)
        handed = HandedOver(self, generation, deadline, outcomes, in_flight, spans, refused, fatal)
        generation.batches.add(handed)
        return handed

    def _outcomes(
        self, batch: PartitionBatch, future: asyncio.Future[Any]
    ) -> list[Delivered | DeliveryError]:
        """One outcome per record of ``batch``: offsets follow the batch's base offset."""
        if not future.done():
            return [DeliveryTimeout(f"no acknowledgement within {self.delivery_timeout:.1f}s")] * len(
                batch.indices
            )
        if future.cancelled():
            return [DeliveryFailed("send cancelled", fatal=True)] * len(batch.indices)
        exc = future.exception()
        if exc is not None:
            return [_translate(exc)] * len(batch.indices)
        base = future.result().offset
        return [Delivered(batch.topic, batch.partition, base + i) for i in range(len(batch.indices))]

    # -- topics ------------------------------------------------------------------------------

    async def ensure_topics(
        self, names: Sequence[str], *, partitions: int = 3, replication_factor: int = 1
    ) -> list[str]:
        """Creates the topics of ``names`` that do not exist yet; returns those it created.

        Bounded by ``start_timeout``; raises :class:`KafkaUnavailable` when it passes.
        """
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-admin",
            request_timeout_ms=self._request_timeout_ms,
        )
        try:
            async with asyncio.timeout(self.start_timeout):
                await admin.start()
                missing = sorted(set(names) - set(await admin.list_topics()))
                if not missing:
                    return []
                response = await admin.create_topics(
                    [NewTopic(name, partitions, replication_factor) for name in missing],
                    timeout_ms=self._request_timeout_ms,
                )
        except TimeoutError as exc:
            raise KafkaUnavailable(f"could not create topics within {self.start_timeout:.1f}s") from exc
        except kafka_errors.KafkaError as exc:
            raise KafkaUnavailable(f"could not create topics: {exc}") from exc
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.stop_timeout):
                    await admin.close()
        created = []
        for topic, code, *_ in response.topic_errors:
            error = kafka_errors.for_code(code)
            if error is kafka_errors.NoError:
                created.append(topic)
            elif error is not kafka_errors.TopicAlreadyExistsError:  # a concurrent creator won
                raise DeliveryFailed(f"creating topic {topic!r} failed: {error.__name__}")
        if created:
            logger.debug("created Kafka topics %s (%d partitions)", ", ".join(created), partitions)
        return created

    # -- producer lifecycle ------------------------------------------------------------------

    async def _current(self) -> _Generation:
        async with self._producer_lock:
            if self._generation is not None:
                return self._generation
            if not self._started:
                raise KafkaUnavailable("the Kafka sink is not started")
            generation = _Generation(AIOKafkaProducer(**self._producer_config))
            try:
                async with asyncio.timeout(self.start_timeout):
                    await generation.producer.start()
            except (TimeoutError, kafka_errors.KafkaError, OSError) as exc:
                await self._close(generation)
                reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
                raise KafkaUnavailable(f"cannot start a Kafka producer ({reason})") from exc
            self._generation = generation
            logger.info("Kafka producer %s connected to %s", self.client_id, self.bootstrap_servers)
            return generation

    async def _discard(self, generation: _Generation, *, reason: BaseException) -> None:
        async with self._producer_lock:
            if self._generation is not generation:
                return  # discarded already (another of its batches, or stop())
            self._generation = None
        self.rebuilds += 1
        logger.warning(
            "discarding Kafka producer after %s; a new one is built on the next send",
            "a delivery timeout" if isinstance(reason, TimeoutError | DeliveryTimeout) else reason,
        )
        await self._close(generation)

    async def _close(self, generation: _Generation) -> None:
        """Closes a producer, bounded by ``stop_timeout``.

        With nothing unacknowledged, aiokafka's own ``stop()``. Otherwise (and when
        that overruns) it is closed forcibly, because its ``stop()`` would wait for
        those batches for ever (#1101): pending sends fail with :class:`DeliveryFailed`
        (their records are still in the spool), the sender task is cancelled and the
        connections closed (:mod:`adapter.events.aiokafka_compat`).
        """
        producer = generation.producer
        if not generation.unacked():
            try:
                async with asyncio.timeout(self.stop_timeout):
                    await producer.stop()
                return
            except TimeoutError:
                logger.warning("Kafka producer stop overran %.1fs; closing it forcibly", self.stop_timeout)
            except Exception as exc:
                logger.warning("Kafka producer stop failed (%r); closing it forcibly", exc)
        for future in generation.unacked():
            future.set_exception(DeliveryFailed("producer closed before Kafka acknowledged"))
            future.exception()  # read here: the batch that waited for it may be gone
        await force_close_producer(producer, step_timeout=self.stop_timeout)


class HandedOver:
    """Records handed to the producer; :meth:`outcomes` waits for Kafka's answers."""

    def __init__(
        self,
        sink: KafkaSink,
        generation: _Generation | None,
        deadline: float,
        outcomes: Sequence[Delivered | DeliveryError | None],
        in_flight: list[tuple[PartitionBatch, asyncio.Future[Any]]],
        spans: BatchSpans | None,
        refused: DeliveryError | None,
        fatal: BaseException | None = None,
    ) -> None:
        self._sink = sink
        self._generation = generation
        self._deadline = deadline
        self._outcomes: list[Delivered | DeliveryError | None] = list(outcomes)
        self.in_flight = in_flight
        self._spans = spans
        self._fatal = fatal
        #: Why the hand-over stopped early (None: every record was handed over or rejected).
        self.refused = refused

    @property
    def complete(self) -> bool:
        """Every record was handed over (or rejected for good): later records may follow."""
        return self.refused is None

    async def outcomes(self) -> list[Delivered | DeliveryError]:
        """One outcome per record, read at one instant: all acknowledged, or the deadline.

        So for each partition the delivered records are a prefix of what was handed over.
        A timeout or a fatal error discards the producer (a new one is built on next use).
        """
        spans, generation, fatal = self._spans, self._generation, self._fatal
        try:
            if self.in_flight and not isinstance(fatal, TimeoutError):  # (the hand-over's deadline passed)
                async with asyncio.timeout_at(self._deadline):
                    await asyncio.wait([future for _, future in self.in_flight])
        except TimeoutError:
            fatal = TimeoutError()
        except asyncio.CancelledError:
            if spans is not None:
                spans.failed_all(DeliveryFailed("cancelled"))
                spans.end()
            raise
        # One instant: every future is either resolved now or counted as timed out.
        for batch, future in self.in_flight:
            for index, outcome in zip(batch.indices, self._sink._outcomes(batch, future), strict=True):
                self._outcomes[index] = outcome
                if not isinstance(outcome, Delivered | RecordRejected):
                    # Even a retriable error: the producer gave up on a batch whose sequence
                    # numbers later batches of that partition may now take, so a fresh producer
                    # cuts those off before they overtake the resend (docs/delivery.md).
                    fatal = fatal or outcome
                if spans is not None:
                    if isinstance(outcome, Delivered):
                        spans.delivered(index)
                    else:
                        spans.failed(index, outcome)
        if spans is not None:
            spans.end()
        if generation is not None:
            if fatal is not None:  # (closing it fails and reads what is still unanswered)
                await self._sink._discard(generation, reason=fatal)
            generation.batches.discard(self)
        not_sent = DeliveryFailed("not sent: an earlier record of this batch failed")
        return [not_sent if outcome is None else outcome for outcome in self._outcomes]


@dataclass(eq=False)
class _Generation:
    """One producer instance and the batches handed to it whose outcomes nobody read yet.

    (Tracked per batch, not with a done-callback per send future: two callbacks a
    record were ~10% of the sink's CPU.)
    """

    producer: Any  # AIOKafkaProducer (untyped)
    batches: set[HandedOver] = field(default_factory=set)

    def unacked(self) -> list[asyncio.Future[Any]]:
        """Send futures (one per partition batch) Kafka has not answered yet."""
        return [future for batch in self.batches for _, future in batch.in_flight if not future.done()]


def _translate(exc: BaseException) -> DeliveryError:
    if isinstance(exc, DeliveryError):
        return exc
    error: DeliveryError
    if isinstance(exc, _REJECTED):
        error = RecordRejected(f"Kafka rejected the record: {exc}")
    else:
        # Retriable Kafka errors keep the producer; anything else (fenced, out of order
        # sequence, dead sender task, unknown exceptions) means it is no longer trusted.
        error = DeliveryFailed(f"{type(exc).__name__}: {exc}", fatal=not getattr(exc, "retriable", False))
    error.__cause__ = exc
    return error
