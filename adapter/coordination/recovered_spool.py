"""A replica restarted after a crash finds, in its spool, events it had accepted but
not delivered; meanwhile the stream's next owner may have backfilled them. Those
already in Kafka are dropped before the drainer starts, so a consumer gets one copy
(the backfilled copy lacks the vendor's event id, so the two would differ)."""

from __future__ import annotations

import datetime as dt
import logging

from adapter.events.kafka_connection import KafkaTarget
from adapter.events.spool import EventSpool

from .kafka_tail import identities_since

__all__ = ["drop_delivered_elsewhere"]

logger = logging.getLogger(__name__)

#: Kafka timestamps may lag the spool's clock on another host this much.
_CLOCK_MARGIN = dt.timedelta(seconds=10)


async def drop_delivered_elsewhere(
    spool: EventSpool,
    bootstrap_servers: KafkaTarget,
    *,
    client_id: str,
    timeout: float,  # noqa: ASYNC109 (bounds several steps, not one)
) -> int:
    """Acknowledges the pending records whose identity (topic + ``ce_id``) Kafka has;
    returns how many. Raises ``KafkaError`` or ``TimeoutError`` (the caller goes on:
    then they are delivered again, duplicates with the same ``ce_id``)."""
    if spool.depth == 0:
        return 0
    pending = await spool.pending(spool.depth)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=spool.oldest_pending_age) - _CLOCK_MARGIN
    topics = sorted({record.topic for _, record in pending})
    in_kafka = set(
        await identities_since(bootstrap_servers, topics, since, client_id=client_id, timeout=timeout)
    )
    delivered = [seq for seq, record in pending if record.identity in in_kafka]
    if delivered:
        await spool.ack(delivered)
        logger.info(
            "%d of %d events recovered from the spool were in Kafka already (another replica backfilled "
            "them): dropped as duplicates",
            len(delivered),
            len(pending),
        )
    return len(delivered)
