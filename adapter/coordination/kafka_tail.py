"""What a stream's topics received lately: the identities (topic + ``ce_id``) of the
records written since a moment, read back from Kafka.

A replica taking a stream over backfills from the shared watermark, which lags a
little behind what the previous owner delivered; its backfilled copies of those
events would carry the same ``ce_id`` but not the vendor's event id (backfill has
none). Seeding the new owner's spool dedupe with what Kafka already holds drops
them before they are spooled, so the handover adds no duplicates of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from adapter.events.aiokafka_compat import refresh_topic_metadata, start_client, stop_consumer
from adapter.events.kafka_connection import KafkaTarget, client_args

__all__ = ["identities_since"]


async def identities_since(
    bootstrap_servers: KafkaTarget,
    topics: Sequence[str],
    since: dt.datetime,
    *,
    client_id: str,
    timeout: float,  # noqa: ASYNC109 (bounds several steps, not one)
) -> list[str]:
    """Identities of the records of ``topics`` with a Kafka timestamp at or after
    ``since``, up to the end offsets of now. Raises ``KafkaError`` or ``TimeoutError``."""
    consumer = AIOKafkaConsumer(
        **client_args(bootstrap_servers), client_id=f"{client_id}-tail", enable_auto_commit=False
    )
    found: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            await start_client(consumer)
            partitions: list[TopicPartition] = []
            for topic in topics:
                await refresh_topic_metadata(consumer, topic)
                ids = consumer.partitions_for_topic(topic) or set()
                partitions += [TopicPartition(topic, p) for p in sorted(ids)]
            if not partitions:
                return []
            consumer.assign(partitions)
            starts = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            ends = await consumer.end_offsets(partitions)
            reading = {tp: ends[tp] for tp, at in starts.items() if at is not None and at.offset < ends[tp]}
            for tp, at in starts.items():
                if tp in reading and at is not None:
                    consumer.seek(tp, at.offset)
            consumer.pause(*(tp for tp in partitions if tp not in reading))
            while reading:
                batches = await consumer.getmany(*reading, timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        ce_id = dict(record.headers).get("ce_id")
                        if ce_id is not None:
                            found.append(f"{tp.topic}\x00{bytes(ce_id).decode(errors='replace')}")
                        if record.offset + 1 >= reading.get(tp, 0):
                            reading.pop(tp, None)
    finally:
        await stop_consumer(consumer, within=timeout)
    return found
