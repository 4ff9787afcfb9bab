"""Creates the coordination's own topics: the control topic (one partition per
stream, never written) and the compacted watermark topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiokafka.errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapter.events.aiokafka_compat import start_client
from adapter.events.kafka_connection import KafkaTarget, client_args

__all__ = ["ensure_control_topics"]

logger = logging.getLogger(__name__)


async def ensure_control_topics(
    bootstrap_servers: KafkaTarget,
    *,
    client_id: str,
    control_topic: str,
    slots: int,
    watermark_topic: str,
    quota_topic: str | None = None,
    quota_slices: int = 0,
    timeout: float,  # noqa: ASYNC109 (bounds several steps, not one)
) -> None:
    """Creates the topics that do not exist yet; raises ``KafkaError`` or ``TimeoutError``.

    A control topic that exists with fewer partitions than there are streams leaves
    some streams without an owner: that is refused loudly, not run half-owned.
    """
    admin = AIOKafkaAdminClient(**client_args(bootstrap_servers), client_id=f"{client_id}-control-admin")
    try:
        async with asyncio.timeout(timeout):
            await start_client(admin)
            existing = set(await admin.list_topics())
            wanted = []
            if control_topic not in existing:
                wanted.append(NewTopic(control_topic, slots, 1))
            if quota_topic is not None and quota_topic not in existing:
                wanted.append(NewTopic(quota_topic, quota_slices, 1))
            if watermark_topic not in existing:
                # One partition: every write of every replica in one order; compacted: the
                # latest mark per stream is kept for ever, older ones cleaned away.
                wanted.append(NewTopic(watermark_topic, 1, 1, topic_configs={"cleanup.policy": "compact"}))
            if wanted:
                response = await admin.create_topics(wanted, timeout_ms=int(timeout * 1000))
                for topic, code, *_ in response.topic_errors:
                    error = kafka_errors.for_code(code)
                    if error not in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                        raise error(f"creating {topic!r}")
                logger.info("created coordination topics: %s", ", ".join(t.name for t in wanted))
            described = await admin.describe_topics([control_topic])
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                await admin.close()
    partitions = len(described[0].get("partitions", ())) if described else 0
    if partitions and partitions < slots:
        raise ValueError(
            f"control topic {control_topic!r} has {partitions} partitions for {slots} streams; "
            "add partitions (kafka-topics --alter) or name another control topic"
        )
