"""The quota slices' consumer group: its own group over the quota topic, with
Kafka's sticky assignor, so a rebalance moves as few slices as it can (a moved
slice waits out its previous holder's window, :mod:`.quota_share`) and does not
restart the streams (their group is another one).

On each assignment, before using any slice, and then each ``confirm_interval``, the
member commits, for every slice it holds, the wall time in milliseconds as the
slice's offset: the coordinator accepts it only from a current member, which renews
this replica's lease on its slices, and the next holder of a slice reads it as
"last possibly used until this + lease".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from adapter.config.coordination import CoordinationSettings
from adapter.lifecycle.supervisor import Supervisor

from .quota_share import QuotaShare

__all__ = ["QuotaMembership"]

logger = logging.getLogger(__name__)


class QuotaMembership:
    """Holds this replica's quota slices; a lifecycle part."""

    def __init__(
        self,
        share: QuotaShare,
        settings: CoordinationSettings,
        *,
        bootstrap_servers: str,
        client_id: str,
        group_id: str,
        supervisor: Supervisor | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.share = share
        self._settings = settings
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self.group_id = group_id
        self._supervisor = supervisor or Supervisor()
        self._clock = clock
        self._wall = wall
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.slices: set[int] = set()
        self._confirmed_at = float("-inf")
        self._assignment = 0  # counts assignments: a confirmation counts for the one it was sent in

    def confirmed(self) -> bool:
        return self._clock() - self._confirmed_at < self._settings.lease_seconds

    async def start(self) -> None:
        if self._consumer is not None:
            return
        s = self._settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-quota",
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_seconds * 1000),
            partition_assignment_strategy=(StickyPartitionAssignor,),
        )
        consumer.subscribe([self.share.topic], listener=_Listener(self))
        self._consumer = consumer  # the first assignment may come before start() returns
        try:
            await consumer.start()
        except BaseException:
            self._consumer = None
            raise
        self._task = self._supervisor.spawn("quota-membership", self._run)

    async def stop(self) -> None:
        """Gives the slices up (the limiters allow nothing more) and leaves the group."""
        task, self._task = self._task, None
        if task is not None:
            await self._supervisor.cancel(task)
        self.slices = set()
        self.share.assigned(set(), {})
        self.share.apply(confirmed=False)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                async with asyncio.timeout(self._settings.session_timeout_seconds):
                    await consumer.stop()
            except Exception as exc:
                logger.warning("leaving group %s failed (%r)", self.group_id, exc)

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        interval = self._settings.confirm_interval_seconds
        while True:
            with contextlib.suppress(kafka_errors.KafkaError):
                await consumer.getmany(timeout_ms=int(interval * 1000))
            await self._confirm()
            self.share.apply(confirmed=self.confirmed())

    async def _confirm(self) -> None:
        """Commits the wall time as every held slice's offset; renews the lease if accepted."""
        consumer = self._consumer
        if not self.slices or consumer is None:
            return
        slices, assignment = set(self.slices), self._assignment
        now_ms = int(self._wall() * 1000)
        asked = self._clock()
        try:
            await consumer.commit({TopicPartition(self.share.topic, i): now_ms for i in slices})
        except (kafka_errors.KafkaError, kafka_errors.IllegalStateError) as exc:
            logger.debug("quota slices not confirmed: %r", exc)
            return
        self._confirmed_at = asked
        if assignment == self._assignment:  # not a commit sent before the latest assignment
            self.share.committed(slices)

    async def assigned_now(self, partitions: set[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer is None:  # stopping: an assignment that lands now is not taken up
            logger.debug("quota slices assigned while leaving the group: ignored")
            return
        slices = {p.partition for p in partitions if p.topic == self.share.topic}
        last: dict[int, int | None] = {}
        for index in slices - self.slices:
            try:
                last[index] = await consumer.committed(TopicPartition(self.share.topic, index))
            except Exception as exc:  # unknown: wait as if it had just been used
                logger.warning("quota slice %d: last holder unknown (%r)", index, exc)
                last[index] = int(self._wall() * 1000)
        if self._consumer is not consumer:  # stop() ran meanwhile and gave every slice up
            return
        self.slices = slices
        self._assignment += 1
        self.share.assigned(slices, last)
        # A gained slice is used only once this replica's confirmation of it is committed:
        # the next holder of a slice reads the last committed one as "used until then", and
        # the previous holder's (or none, for a slice no one held) would let it start while
        # requests this replica sent still count. Kept slices stay in use meanwhile, within
        # the lease of the last confirmation committed (the one a successor would read).
        self.share.apply(confirmed=self.confirmed())
        await self._confirm()
        self.share.apply(confirmed=self.confirmed())


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped here
    def __init__(self, membership: QuotaMembership) -> None:
        self._membership = membership

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Slices stay in use until the new assignment says otherwise: a slice that moves
        is not used by its next holder before this one's requests stopped counting."""

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._membership.assigned_now(assigned)
