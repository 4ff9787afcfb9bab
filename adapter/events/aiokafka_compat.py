"""The only place that touches aiokafka's private attributes, each for an open
upstream problem. ``tests/events/test_aiokafka_compat.py`` fails when the installed
aiokafka no longer has them, so an upgrade cannot break these paths silently.

- **aio-libs/aiokafka#1101**: ``AIOKafkaProducer.stop()`` waits for ever for
  batches a dead broker will never acknowledge. :func:`force_close_producer`
  cancels the sender task and closes the connections instead.
- **No public metadata refresh for one topic** (aio-libs/aiokafka#575): a consumer
  assigned to a topic that does not exist yet never learns its partitions.
  :func:`refresh_topic_metadata` asks the client to track the topic and refresh.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["PRIVATE_ATTRIBUTES", "force_close_producer", "refresh_topic_metadata"]

logger = logging.getLogger(__name__)

#: What this module reads or writes, per class (checked by the compatibility test).
PRIVATE_ATTRIBUTES = {
    "AIOKafkaProducer": ("_closed", "_sender", "client"),
    "Sender": ("sender_task",),
    "AIOKafkaConsumer": ("_client",),
    "AIOKafkaClient": ("force_metadata_update", "add_topic", "close"),
}


async def force_close_producer(producer: Any, *, step_timeout: float) -> None:
    """Closes a producer whose ``stop()`` would hang (#1101); pending sends are the
    caller's to fail first."""
    producer._closed = True  # keeps its __del__ from warning: closed below
    sender_task = producer._sender.sender_task
    if sender_task is not None and not sender_task.done():
        sender_task.cancel()
        await asyncio.wait([sender_task], timeout=step_timeout)
    try:
        async with asyncio.timeout(step_timeout):
            await producer.client.close()
    except Exception as exc:
        logger.error("could not close a discarded Kafka producer's connections: %r", exc)


async def refresh_topic_metadata(consumer: Any, topic: str) -> None:
    """Makes the consumer's client fetch ``topic``'s metadata (it may have appeared)."""
    await consumer._client.add_topic(topic)
    await consumer._client.force_metadata_update()
