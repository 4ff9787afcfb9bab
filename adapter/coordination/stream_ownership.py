"""Each vendor stream owned by exactly one live replica, through a Kafka consumer group.

The slots are the partitions of a small control topic (stream ``i`` of the sorted
names is partition ``i``); nothing is ever written to it. Every replica joins the
group (aiokafka's ``AIOKafkaConsumer`` with ``group_id``) and runs the streams of
the partitions it is assigned.

- **Old owner stops before the new one starts.** aiokafka's classic (eager)
  rebalance calls ``on_partitions_revoked`` on every live member and awaits it
  before the member rejoins; the broker hands out the new assignment only once all
  live members rejoined. The listener stops the stream (its vendor subscription is
  closed) and writes its watermark before returning.
- **A dead owner** (``kill -9``) is expelled by the broker ``session_timeout`` after
  its last heartbeat; then the survivors rebalance.
- **Fencing.** A replica may spool a stream's events only within a lease: each
  ``confirm_interval`` it commits offsets for its partitions, which the group
  coordinator accepts only from a member of the current generation. A replica cut
  off from the broker (it cannot learn it was expelled) stops publishing
  ``lease_seconds`` after its last confirmation, before the broker can have expired
  it (``session_timeout`` after its last heartbeat), and stops the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from adapter.config.coordination import CoordinationSettings
from adapter.events.kafka_connection import KafkaTarget
from adapter.lifecycle.supervisor import Supervisor

from .lease_group import LeaseGroupMember
from .shared_watermarks import SharedWatermarks

__all__ = ["OwnedStream", "StreamOwnership"]

logger = logging.getLogger(__name__)


class OwnedStream(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class _Fence:
    """One stream's :class:`~adapter.events.fencing.PublishFence`."""

    def __init__(self, ownership: StreamOwnership, name: str) -> None:
        self._ownership = ownership
        self._name = name

    def allows(self) -> bool:
        return self._ownership.may_publish(self._name)

    async def wait_allowed(self) -> None:
        while not self.allows():
            await self._ownership.changed()


class StreamOwnership:
    """Starts and stops the streams this replica is assigned; a lifecycle part (the
    group's :class:`~.lease_group.GroupRebalances`)."""

    def __init__(
        self,
        streams: Mapping[str, OwnedStream],
        settings: CoordinationSettings,
        *,
        bootstrap_servers: KafkaTarget,
        client_id: str,
        group_id: str,
        control_topic: str,
        replica_id: str,
        watermarks: SharedWatermarks,
        supervisor: Supervisor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.names = sorted(streams)
        self._streams = streams
        self._settings = settings
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.group_id = group_id
        self.control_topic = control_topic
        self.replica_id = replica_id
        self.watermarks = watermarks
        self._clock = clock
        self._member = LeaseGroupMember(
            settings,
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,  # join() names the member (see start())
            group_id=group_id,
            topic=control_topic,
            assignor=RangePartitionAssignor,
            task_name="stream-ownership",
            # Revoking stops a stream and writes its mark: bounded well below this.
            rebalance_timeout_seconds=max(settings.session_timeout_seconds, 30.0),
            supervisor=supervisor,
            clock=clock,
        )
        #: Streams of the current assignment, and those running now.
        self.assigned: set[str] = set()
        self.running: set[str] = set()
        self._changed = asyncio.Event()
        self._next_publish = 0.0
        self._transition = asyncio.Lock()

    def fence(self, name: str) -> _Fence:
        return _Fence(self, name)

    def may_publish(self, name: str) -> bool:
        return name in self.assigned and self.confirmed()

    def confirmed(self) -> bool:
        """Whether this replica's membership was confirmed within the lease."""
        return self._member.confirmed()

    async def changed(self) -> None:
        """Waits for the next change of assignment or confirmation."""
        self._changed.clear()
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        # The broker names a member "<client id>-<uuid>" and the range assignor deals the
        # streams out in member-name order: a start time in the name makes the oldest
        # replicas the owners, so a replica that joins (quota slices not yet usable, see
        # quota_membership.py) takes no stream from a running one.
        started = int(time.time() * 1000)
        await self._member.join(self, client_id=f"{self.client_id}-{started:013d}-{self.replica_id}")
        logger.info(
            "replica %s joined group %s for streams %s", self.replica_id, self.group_id, ", ".join(self.names)
        )

    async def stop(self) -> None:
        """Stops the owned streams, writes their marks, leaves the group (the others
        take over at once, not after a session timeout). Never raises."""
        await self._member.stop_polling()
        async with self._transition:
            owned = sorted(self.assigned)
            self.assigned.clear()
            self._notify()
            await self._stop_streams(owned, release=False)  # the final marks follow the drain
        await self._member.leave()

    # -- each round (GroupRebalances) -------------------------------------------------------

    async def round(self) -> None:
        if await self._member.confirm({self.names.index(n): 0 for n in self.assigned}):
            self._notify()
        await self._reconcile()
        if self._clock() >= self._next_publish:
            self._next_publish = self._clock() + self._settings.watermark_interval_seconds
            await self._publish(sorted(self.assigned))

    async def _reconcile(self) -> None:
        """Runs the assigned streams while confirmed; stops them when the lease lapsed."""
        async with self._transition:
            for name in sorted(self.assigned):
                if self.may_publish(name) and name not in self.running:
                    await self._start_stream(name)
                elif not self.may_publish(name) and name in self.running:
                    logger.warning(
                        "replica %s could not confirm its ownership of %s for %.1fs: stream stopped",
                        self.replica_id,
                        name,
                        self._member.since_confirmed(),
                    )
                    await self._stop_streams([name], release=False)

    async def _start_stream(self, name: str) -> None:
        try:
            mark = await self.watermarks.load(name)
        except Exception as exc:  # the broker, mostly: retried at the next round
            logger.warning("%s: watermark not readable (%r); stream start retried", name, exc)
            return
        await self._streams[name].start()
        self.running.add(name)
        logger.info(
            "replica %s owns stream %s (backfill from %s)",
            self.replica_id,
            name,
            mark.isoformat() if mark else "now",
        )

    async def _stop_streams(self, names: list[str], *, release: bool = True) -> None:
        for name in names:
            if name in self.running:
                await self._streams[name].stop()
                self.running.discard(name)
                logger.info("replica %s stopped stream %s", self.replica_id, name)
        if names:
            # The next owner reads back what Kafka has to drop its backfilled copies: give
            # the drainer a moment to deliver what this one spooled (bounded: Kafka may be down).
            await self.watermarks.settle(names, within=self._settings.session_timeout_seconds / 2)
            await self._publish(names)
        if release:
            for name in names:
                self.watermarks.release(name)

    async def _publish(self, names: list[str]) -> None:
        if not names:
            return
        try:
            async with asyncio.timeout(self._settings.confirm_interval_seconds * 2):
                await self.watermarks.publish(names)
        except Exception as exc:
            logger.warning("watermarks of %s not written (%r); retried", ", ".join(names), exc)

    # -- rebalances (called by aiokafka) -----------------------------------------------------

    async def partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        names = [self.names[p.partition] for p in partitions if p.partition < len(self.names)]
        async with self._transition:
            self.assigned.difference_update(names)
            self._notify()
            await self._stop_streams(sorted(names))

    async def partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        names = {self.names[p.partition] for p in partitions if p.partition < len(self.names)}
        self.assigned = names
        self._member.renewed()  # the group's join and sync just succeeded
        self._notify()
        logger.info(
            "replica %s assigned %s", self.replica_id, ", ".join(sorted(names)) or "no stream (standby)"
        )
