"""Records handed to a Kafka producer, and the outcomes Kafka gives them.

:class:`HandedOver` is what :meth:`adapter.events.kafka_sink.KafkaSink.hand_over`
returns: the send futures of the batches it handed over, read all at one instant
(acknowledged, or the deadline) so that for each partition the delivered records are
a prefix of what was handed over. A producer that timed out or failed fatally is
handed back to the sink's ``discard``, which builds a fresh one on next use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from .kafka_outcomes import (
    Delivered,
    DeliveryError,
    DeliveryFailed,
    DeliveryTimeout,
    RecordRejected,
    translate_kafka_error,
)
from .kafka_tracing import BatchSpans
from .partition_batches import PartitionBatch

__all__ = ["HandedOver", "ProducerGeneration"]

_new = tuple.__new__


class HandedOver:
    """Records handed to the producer; :meth:`outcomes` waits for Kafka's answers."""

    def __init__(
        self,
        discard: Callable[[ProducerGeneration, BaseException], Awaitable[None]],
        generation: ProducerGeneration | None,
        *,
        deadline: float,
        delivery_timeout: float,
        outcomes: Sequence[Delivered | DeliveryError | None],
        in_flight: list[tuple[PartitionBatch, asyncio.Future[Any]]],
        spans: BatchSpans | None,
        refused: DeliveryError | None,
        fatal: BaseException | None = None,
    ) -> None:
        self._discard = discard
        self._generation = generation
        self._deadline = deadline
        self._delivery_timeout = delivery_timeout
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
        outcomes = self._outcomes
        for batch, future in self.in_flight:
            # A batch's records share one fate: all delivered, or all the same error.
            batch_outcomes = self._outcomes_of(batch, future)
            for index, outcome in zip(batch.indices, batch_outcomes, strict=True):
                outcomes[index] = outcome
            fate = batch_outcomes[0]
            if isinstance(fate, Delivered):
                if spans is not None:
                    spans.delivered(batch.indices)
                continue
            if not isinstance(fate, RecordRejected):
                # Even a retriable error: the producer gave up on a batch whose sequence
                # numbers later batches of that partition may now take, so a fresh producer
                # cuts those off before they overtake the resend (docs/delivery.md).
                fatal = fatal or fate
            if spans is not None:
                for index in batch.indices:
                    spans.failed(index, fate)
        if spans is not None:
            spans.end()
        if generation is not None:
            if fatal is not None:  # (closing it fails and reads what is still unanswered)
                await self._discard(generation, fatal)
            generation.batches.discard(self)
        if None in outcomes:
            not_sent = DeliveryFailed("not sent: an earlier record of this batch failed")
            return [not_sent if outcome is None else outcome for outcome in outcomes]
        return cast(list[Delivered | DeliveryError], outcomes)

    def _outcomes_of(
        self, batch: PartitionBatch, future: asyncio.Future[Any]
    ) -> list[Delivered | DeliveryError]:
        """One outcome per record of ``batch``: offsets follow the batch's base offset."""
        if not future.done():
            return [DeliveryTimeout(f"no acknowledgement within {self._delivery_timeout:.1f}s")] * len(
                batch.indices
            )
        if future.cancelled():
            return [DeliveryFailed("send cancelled", fatal=True)] * len(batch.indices)
        exc = future.exception()
        if exc is not None:
            return [translate_kafka_error(exc)] * len(batch.indices)
        topic, partition, base = batch.topic, batch.partition, future.result().offset
        # (tuple.__new__ as the named tuple's own _make: one per record, its __new__ a
        # Python frame more.)
        return [
            _new(Delivered, (topic, partition, offset)) for offset in range(base, base + len(batch.indices))
        ]


@dataclass(eq=False)
class ProducerGeneration:
    """One producer instance and the batches handed to it whose outcomes nobody read yet.

    (Tracked per batch, not with a done-callback per send future: two callbacks a
    record were ~10% of the sink's CPU.)
    """

    producer: Any  # AIOKafkaProducer (untyped)
    batches: set[HandedOver] = field(default_factory=set)

    def unacked(self) -> list[asyncio.Future[Any]]:
        """Send futures (one per partition batch) Kafka has not answered yet."""
        return [future for batch in self.batches for _, future in batch.in_flight if not future.done()]
