"""A replica's membership of a Kafka consumer group, held under a lease.

Both coordination groups (the streams' owners, :mod:`.stream_ownership`, and the
quota slices' holders, :mod:`.quota_membership`) work the same way: the replica
joins the group over a topic whose partitions stand for what is shared out, polls
to stay a member (``max.poll.interval``) and to run rebalances, and each
``confirm_interval`` commits offsets for the partitions it holds. The coordinator
accepts a commit only from a member of the current generation, so an accepted
commit renews the replica's *lease*: a replica cut off from the broker (it cannot
learn it was expelled) stops using what it holds ``lease_seconds`` after its last
accepted commit, before the broker can have expired it (``session_timeout`` after
its last heartbeat).

What each group does with its partitions, and what its commits carry, stays with
its owner (:class:`GroupRebalances`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor

from adapter.config.coordination import CoordinationSettings
from adapter.events.aiokafka_compat import start_client, stop_consumer
from adapter.events.kafka_connection import KafkaTarget, client_args
from adapter.lifecycle.supervisor import Supervisor

__all__ = ["GroupRebalances", "LeaseGroupMember"]

logger = logging.getLogger(__name__)


class GroupRebalances(Protocol):
    """What the owner of a membership does when the group changes, and each round."""

    async def partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        """Awaited by aiokafka before this member rejoins (eager rebalance)."""

    async def partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        """This member's new assignment (it may come before :meth:`LeaseGroupMember.join` returns)."""

    async def round(self) -> None:
        """After each poll: confirm what is held (:meth:`LeaseGroupMember.confirm`), act on it."""


class LeaseGroupMember:
    """Joins ``group_id`` over ``topic``, polls it and keeps the lease; a part of a
    lifecycle part (its owner starts and stops it)."""

    def __init__(
        self,
        settings: CoordinationSettings,
        *,
        bootstrap_servers: KafkaTarget,
        client_id: str,
        group_id: str,
        topic: str,
        assignor: type[AbstractPartitionAssignor],
        task_name: str,
        rebalance_timeout_seconds: float | None = None,
        supervisor: Supervisor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.group_id = group_id
        self.topic = topic
        self._assignor = assignor
        self._task_name = task_name
        self._rebalance_timeout = rebalance_timeout_seconds
        self._supervisor = supervisor or Supervisor()
        self._clock = clock
        #: The group's consumer while joined; None before :meth:`join` and once leaving.
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._confirmed_at = float("-inf")

    # -- the lease ---------------------------------------------------------------------------

    def confirmed(self) -> bool:
        """Whether a commit of this member was accepted within the lease."""
        return self.since_confirmed() < self._settings.lease_seconds

    def since_confirmed(self) -> float:
        return self._clock() - self._confirmed_at

    def renewed(self) -> None:
        """The lease starts now: the group's join and sync just succeeded."""
        self._confirmed_at = self._clock()

    async def confirm(self, offsets: Mapping[int, int]) -> bool:
        """Commits ``offsets`` (partition -> offset of ``topic``); True, and the lease
        renewed from when it was asked, if the coordinator accepted it."""
        consumer = self.consumer
        if not offsets or consumer is None:
            return False
        asked = self._clock()
        try:
            await consumer.commit({TopicPartition(self.topic, p): o for p, o in offsets.items()})
        except (kafka_errors.KafkaError, kafka_errors.IllegalStateError) as exc:
            logger.debug("%s: commit not accepted: %r", self.group_id, exc)
            return False
        self._confirmed_at = asked
        return True

    # -- lifecycle ---------------------------------------------------------------------------

    async def join(self, rebalances: GroupRebalances, *, client_id: str | None = None) -> None:
        """Joins the group and starts polling (a supervised task); idempotent.
        ``client_id``, for this join only: the broker names the member after it."""
        if self.consumer is not None:
            return
        s = self._settings
        consumer = AIOKafkaConsumer(
            **client_args(self.bootstrap_servers),
            client_id=client_id or self.client_id,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_seconds * 1000),
            rebalance_timeout_ms=(
                None if self._rebalance_timeout is None else int(self._rebalance_timeout * 1000)
            ),
            partition_assignment_strategy=(self._assignor,),
        )
        consumer.subscribe([self.topic], listener=_Listener(rebalances))
        self.consumer = consumer  # the first assignment may come before start() returns
        try:
            await start_client(consumer)
        except BaseException:
            self.consumer = None
            await self._stop(consumer)
            raise
        self._task = self._supervisor.spawn(self._task_name, lambda: self._poll(consumer, rebalances))

    async def stop_polling(self) -> None:
        """Ends the rounds; the member stays in the group until :meth:`leave`."""
        task, self._task = self._task, None
        if task is not None:
            await self._supervisor.cancel(task)

    async def leave(self) -> None:
        """Leaves the group, so the others rebalance at once, not after a session
        timeout. Never raises. An assignment aiokafka delivers meanwhile finds
        :attr:`consumer` None: the owner must not take it up."""
        await self.stop_polling()
        consumer, self.consumer = self.consumer, None
        if consumer is None:
            return
        await self._stop(consumer)

    async def _stop(self, consumer: AIOKafkaConsumer) -> None:
        # Bounded: a member whose LeaveGroup is not answered is expired by the broker.
        name = f"the member of group {self.group_id} (the broker expires it)"
        await stop_consumer(consumer, within=self._settings.session_timeout_seconds, name=name)

    async def _poll(self, consumer: AIOKafkaConsumer, rebalances: GroupRebalances) -> None:
        interval_ms = int(self._settings.confirm_interval_seconds * 1000)
        while True:
            # Polling keeps this member in the group (max.poll.interval) and runs rebalances.
            with contextlib.suppress(kafka_errors.KafkaError):
                await consumer.getmany(timeout_ms=interval_ms)
            await rebalances.round()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped here
    def __init__(self, rebalances: GroupRebalances) -> None:
        self._rebalances = rebalances

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._rebalances.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._rebalances.partitions_assigned(assigned)
