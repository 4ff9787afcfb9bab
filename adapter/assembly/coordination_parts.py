"""The replicas' coordination, built when ``events.coordination.enabled``: the
shared watermarks and the stream ownership, and their lifecycle parts."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping, Sequence

from adapter.config.settings import Settings
from adapter.coordination.control_topics import ensure_control_topics
from adapter.coordination.quota_membership import QuotaMembership
from adapter.coordination.quota_share import QuotaShare
from adapter.coordination.recovered_spool import drop_delivered_elsewhere
from adapter.coordination.shared_watermarks import SharedWatermarks
from adapter.coordination.stream_ownership import StreamOwnership
from adapter.events.kafka_connection import KafkaConnection
from adapter.events.kafka_sink import KafkaSink
from adapter.events.routing import EventRoute
from adapter.events.spool import EventSpool
from adapter.events.websocket_source import WebSocketSource
from adapter.lifecycle import HealthBoard, Part, Supervisor, part
from adapter.resilience.rate_limiter import UpstreamRateLimiter

__all__ = ["coordination_parts", "quota_membership", "replica_id", "shared_watermarks", "stream_ownership"]

logger = logging.getLogger(__name__)


def replica_id(settings: Settings) -> str:
    return settings.events.coordination.replica_id or f"{socket.gethostname()}-{os.getpid()}"


def shared_watermarks(
    settings: Settings,
    kafka: KafkaConnection,
    sink: KafkaSink,
    spool: EventSpool,
    routes: Sequence[EventRoute],
) -> SharedWatermarks:
    cfg = settings.events
    topics: dict[str, tuple[str, ...]] = {}
    for route in routes:
        topics[route.source] = tuple(dict.fromkeys((*topics.get(route.source, ()), *route.topics)))
    return SharedWatermarks(
        topic=cfg.topic_prefix + cfg.coordination.watermark_topic,
        bootstrap_servers=kafka,
        client_id=cfg.kafka.client_id,
        replica_id=replica_id(settings),
        sink=sink,
        spool=spool,
        topics=topics,
        timeout=cfg.kafka.lifecycle_timeout_seconds,
    )


def stream_ownership(
    settings: Settings,
    kafka: KafkaConnection,
    sources: Mapping[str, WebSocketSource],
    watermarks: SharedWatermarks,
    supervisor: Supervisor,
) -> StreamOwnership:
    cfg = settings.events
    ownership = StreamOwnership(
        sources,
        cfg.coordination,
        bootstrap_servers=kafka,
        client_id=cfg.kafka.client_id,
        group_id=cfg.topic_prefix + cfg.coordination.group_id,
        control_topic=cfg.topic_prefix + cfg.coordination.control_topic,
        replica_id=replica_id(settings),
        watermarks=watermarks,
        supervisor=supervisor,
    )
    for name, source in sources.items():
        source.fence_with(ownership.fence(name))
    return ownership


def quota_membership(
    settings: Settings,
    kafka: KafkaConnection,
    limiters: Sequence[UpstreamRateLimiter],
    supervisor: Supervisor,
    board: HealthBoard,
) -> QuotaMembership | None:
    """The quota slices' membership, or None when ``share_quota`` is off. The whole
    server (health ``""``) is NOT_SERVING while a limiter allows no request: the
    health name load balancers watch (docs/load-balancing.md)."""
    cfg = settings.events
    c = cfg.coordination
    if not c.share_quota:
        return None
    share = QuotaShare(
        limiters,
        topic=cfg.topic_prefix + c.quota_topic,
        slices=c.quota_slices,
        lease_seconds=c.lease_seconds,
        grace_seconds=c.quota_grace_seconds,
        replica_id=replica_id(settings),
        on_ready=lambda ready, why: board.set("", ready, why),
    )
    return QuotaMembership(
        share,
        c,
        bootstrap_servers=kafka,
        client_id=f"{cfg.kafka.client_id}-{replica_id(settings)}",
        group_id=cfg.topic_prefix + c.group_id + ".quota",
        supervisor=supervisor,
    )


def coordination_parts(
    ownership: StreamOwnership, spool: EventSpool, quota: QuotaMembership | None = None
) -> list[Part]:
    """The control topics, the spool's leftovers and the last watermarks (start before
    the drainer, stop after it: the marks of what it drained at stop are written); the
    quota membership; the ownership (starts last, stops first: no stream runs unowned)."""
    watermarks = ownership.watermarks
    timeout = 10.0

    async def create_topics() -> None:
        await ensure_control_topics(
            ownership.bootstrap_servers,
            client_id=ownership.client_id,
            control_topic=ownership.control_topic,
            slots=len(ownership.names),
            watermark_topic=watermarks.topic,
            quota_topic=quota.share.topic if quota else None,
            quota_slices=quota.share.slices if quota else 0,
            timeout=timeout,
        )
        try:
            await drop_delivered_elsewhere(
                spool, ownership.bootstrap_servers, client_id=ownership.client_id, timeout=timeout
            )
        except Exception as exc:
            logger.warning("could not compare the recovered spool with Kafka (%r); delivering it all", exc)

    async def last_marks() -> None:
        try:
            async with asyncio.timeout(timeout):
                await watermarks.publish()
        except Exception as exc:
            logger.warning("last watermarks not written (%r); the next owner backfills from older ones", exc)

    parts = [part("coordination topics", create_topics, last_marks)]
    if quota is not None:
        parts.append(part("quota membership", quota.start, quota.stop))
    parts.append(part("stream ownership", ownership.start, ownership.stop))
    return parts
