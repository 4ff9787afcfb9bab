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
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import TracerProvider

from .aiokafka_compat import connect_failure, force_close_producer, start_client
from .handed_over import HandedOver, ProducerGeneration
from .kafka_connection import KafkaTarget, client_args
from .kafka_outcomes import (
    Delivered,
    DeliveryError,
    DeliveryFailed,
    DeliveryTimeout,
    KafkaUnavailable,
    RecordRejected,
    translate_kafka_error,
)
from .kafka_topics import create_missing_topics
from .kafka_tracing import SEMCONV, ProducerTracing
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
        bootstrap_servers: KafkaTarget,
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
        #: Without the connection's arguments: each producer gets them when it is built
        #: (a rotated SASL password or TLS file is read then).
        self._producer_config: dict[str, Any] = {
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
        self._generation: ProducerGeneration | None = None
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
            return HandedOver(
                self._discard,
                None,
                deadline=deadline,
                delivery_timeout=self.delivery_timeout,
                outcomes=[exc] * len(records),
                in_flight=[],
                spans=None,
                refused=exc,
            )
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
                        error = translate_kafka_error(exc)
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
                        error = translate_kafka_error(exc)
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
        handed = HandedOver(
            self._discard,
            generation,
            deadline=deadline,
            delivery_timeout=self.delivery_timeout,
            outcomes=outcomes,
            in_flight=in_flight,
            spans=spans,
            refused=refused,
            fatal=fatal,
        )
        generation.batches.add(handed)
        return handed

    # -- topics ------------------------------------------------------------------------------

    async def ensure_topics(
        self, names: Sequence[str], *, partitions: int = 3, replication_factor: int = 1
    ) -> list[str]:
        """Creates the topics of ``names`` that do not exist yet; returns those it created.

        Bounded by ``start_timeout``; raises :class:`KafkaUnavailable` when it passes.
        """
        return await create_missing_topics(
            self.bootstrap_servers,
            names,
            client_id=f"{self.client_id}-admin",
            partitions=partitions,
            replication_factor=replication_factor,
            request_timeout_ms=self._request_timeout_ms,
            start_timeout=self.start_timeout,
            stop_timeout=self.stop_timeout,
        )

    # -- producer lifecycle ------------------------------------------------------------------

    async def _current(self) -> ProducerGeneration:
        async with self._producer_lock:
            if self._generation is not None:
                return self._generation
            if not self._started:
                raise KafkaUnavailable("the Kafka sink is not started")
            producer = AIOKafkaProducer(**client_args(self.bootstrap_servers), **self._producer_config)
            generation = ProducerGeneration(producer)
            try:
                async with asyncio.timeout(self.start_timeout):
                    await start_client(generation.producer)
            except (TimeoutError, kafka_errors.KafkaError, OSError) as exc:
                await self._close(generation)
                reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
                cause = connect_failure(client_args(self.bootstrap_servers)["bootstrap_servers"])
                if cause and isinstance(exc, kafka_errors.KafkaConnectionError):  # "Unable to bootstrap"
                    reason = f"{reason}: {cause}"
                raise KafkaUnavailable(f"cannot start a Kafka producer ({reason})") from exc
            self._generation = generation
            logger.info("Kafka producer %s connected to %s", self.client_id, self.bootstrap_servers)
            return generation

    async def _discard(self, generation: ProducerGeneration, reason: BaseException) -> None:
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

    async def _close(self, generation: ProducerGeneration) -> None:
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
