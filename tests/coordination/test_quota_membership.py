"""A replica uses a quota slice only once its own confirmation of it is committed.

The next holder of a slice reads the last committed confirmation as "used until
then + lease". A replica that used its new slices before confirming them, and was
killed in that interval, would leave the previous holder's older confirmation (or
none at all) behind, and its successor could start while its requests still count."""

from __future__ import annotations

import time
import uuid

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from adapter.config.coordination import CoordinationSettings
from adapter.coordination.quota_membership import QuotaMembership
from adapter.coordination.quota_share import QuotaShare
from adapter.resilience import UpstreamRateLimiter

from ..events.kafka_fixtures import BOOTSTRAP, TopicFactory, wait_until
from .instant_caller import Instant

pytest_plugins = ["tests.events.kafka_fixtures"]

SLICES = 4


async def test_new_slices_are_used_only_once_their_confirmation_is_committed(new_topic: TopicFactory) -> None:
    topic = await new_topic(partitions=SLICES)
    group = f"quota-{uuid.uuid4().hex[:8]}"
    limiter = UpstreamRateLimiter(Instant(), limit=1000, window=60)
    # Confirmations every 2 s: a share taken at the assignment, before the first of
    # them, would be seen long before the offsets exist.
    settings = CoordinationSettings(
        enabled=True, session_timeout_seconds=6, heartbeat_interval_seconds=1, confirm_interval_seconds=2
    )
    share = QuotaShare(
        [limiter], topic=topic, slices=SLICES, lease_seconds=settings.lease_seconds, grace_seconds=1
    )
    membership = QuotaMembership(share, settings, bootstrap_servers=BOOTSTRAP, client_id="t", group_id=group)
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="tests-admin")
    await admin.start()
    try:
        before_ms = int(time.time() * 1000)
        await membership.start()
        await wait_until(lambda: limiter.limit > 0, within=30, what="a share of the quota")
        committed = await admin.list_consumer_group_offsets(group)
        after_ms = int(time.time() * 1000)
        assert limiter.limit == 1000  # a new group: every slice, never held, usable at once
        assert set(committed) == {TopicPartition(topic, i) for i in range(SLICES)}
        assert all(before_ms <= c.offset <= after_ms for c in committed.values()), committed
    finally:
        await membership.stop()
        await admin.close()
    assert limiter.limit == 0


async def test_an_assignment_that_lands_while_leaving_gives_no_quota(new_topic: TopicFactory) -> None:
    """aiokafka may still deliver an assignment while the consumer stops (seen when the
    adapter failed to start): once stop() gave every slice up, none comes back."""
    topic = await new_topic(partitions=SLICES)
    limiter = UpstreamRateLimiter(Instant(), limit=1000, window=60)
    settings = CoordinationSettings(enabled=True, session_timeout_seconds=6, heartbeat_interval_seconds=1)
    share = QuotaShare(
        [limiter], topic=topic, slices=SLICES, lease_seconds=settings.lease_seconds, grace_seconds=1
    )
    membership = QuotaMembership(
        share, settings, bootstrap_servers=BOOTSTRAP, client_id="t", group_id=f"quota-{uuid.uuid4().hex[:8]}"
    )
    await membership.start()
    await wait_until(lambda: limiter.limit > 0, within=30, what="a share of the quota")
    await membership.stop()
    assert limiter.limit == 0
    await membership.partitions_assigned({TopicPartition(topic, i) for i in range(SLICES)})
    assert limiter.limit == 0
    assert membership.slices == set()
