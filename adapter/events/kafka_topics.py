"""Creates the Kafka topics the adapter writes to, when they do not exist yet.

Bounded like everything the sink does: aiokafka's admin client waits as long as the
broker is away, so its start, its requests and its close run under deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aiokafka.errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from .aiokafka_compat import start_client
from .kafka_connection import KafkaTarget, client_args
from .kafka_outcomes import DeliveryFailed, KafkaUnavailable

__all__ = ["create_missing_topics"]

logger = logging.getLogger(__name__)


async def create_missing_topics(
    bootstrap_servers: KafkaTarget,
    names: Sequence[str],
    *,
    client_id: str,
    partitions: int,
    replication_factor: int,
    request_timeout_ms: int,
    start_timeout: float,
    stop_timeout: float,
) -> list[str]:
    """Creates the topics of ``names`` that do not exist yet; returns those it created.

    Raises :class:`KafkaUnavailable` when the broker cannot be reached within
    ``start_timeout``, :class:`DeliveryFailed` when it refuses to create a topic.
    """
    admin = AIOKafkaAdminClient(
        **client_args(bootstrap_servers), client_id=client_id, request_timeout_ms=request_timeout_ms
    )
    try:
        async with asyncio.timeout(start_timeout):
            await start_client(admin)
            missing = sorted(set(names) - set(await admin.list_topics()))
            if not missing:
                return []
            response = await admin.create_topics(
                [NewTopic(name, partitions, replication_factor) for name in missing],
                timeout_ms=request_timeout_ms,
            )
    except TimeoutError as exc:
        raise KafkaUnavailable(f"could not create topics within {start_timeout:.1f}s") from exc
    except kafka_errors.KafkaError as exc:
        raise KafkaUnavailable(f"could not create topics: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(stop_timeout):
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
