"""The lease both coordination groups hold (lease_group.py), against the real broker:
renewed only by a commit the coordinator accepted, and nothing confirmed once the
member left the group."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from adapter.config.coordination import CoordinationSettings
from adapter.coordination.lease_group import LeaseGroupMember

from ..events.kafka_fixtures import BOOTSTRAP, TopicFactory, wait_until

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.timeout(90)

SETTINGS = CoordinationSettings(
    enabled=True, session_timeout_seconds=6, heartbeat_interval_seconds=1, confirm_interval_seconds=0.5
)


class Rounds:
    """Confirms every assigned partition at offset 7 each round; records what happened."""

    def __init__(self) -> None:
        self.member: LeaseGroupMember | None = None
        self.held: set[int] = set()
        self.accepted = 0

    async def partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        self.held -= {p.partition for p in partitions}

    async def partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        self.held = {p.partition for p in partitions}

    async def round(self) -> None:
        assert self.member is not None
        if await self.member.confirm({p: 7 for p in self.held}):
            self.accepted += 1


async def test_the_lease_is_renewed_by_accepted_commits_only(new_topic: TopicFactory) -> None:
    topic = await new_topic(partitions=2)
    group = f"lease-{uuid.uuid4().hex[:8]}"
    rounds = Rounds()
    member = LeaseGroupMember(
        SETTINGS,
        bootstrap_servers=BOOTSTRAP,
        client_id="tests-lease",
        group_id=group,
        topic=topic,
        assignor=RangePartitionAssignor,
        task_name="lease-test",
    )
    rounds.member = member
    assert not member.confirmed()
    await member.join(rounds)
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="tests-admin")
    await admin.start()
    try:
        await wait_until(lambda: rounds.accepted >= 2, within=30, what="two accepted confirmations")
        assert member.confirmed()
        assert rounds.held == {0, 1}
        committed = await admin.list_consumer_group_offsets(group)
        assert {tp.partition: c.offset for tp, c in committed.items()} == {0: 7, 1: 7}
    finally:
        await member.leave()
        await admin.close()
    assert member.consumer is None
    # Left: a commit is not even attempted, and the lease is not renewed by it.
    assert not await member.confirm({0: 8})
    await member.leave()  # idempotent
