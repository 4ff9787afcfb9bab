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
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from adapter.config.coordination import CoordinationSettings
from adapter.lifecycle.supervisor import Supervisor

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
    """Starts and stops the streams this replica is assigned; a lifecycle part."""

    def __init__(
        self,
        streams: Mapping[str, OwnedStream],
        settings: CoordinationSettings,
        *,
        bootstrap_servers: str,
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
        self._supervisor = supervisor or Supervisor()
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        #: Streams of the current assignment, and those running now.
        self.assigned: set[str] = set()
        self.running: set[str] = set()
        self._confirmed_at = float("-inf")
        self._changed = asyncio.Event()
        self._transition = asyncio.Lock()

    def fence(self, name: str) -> _Fence:
        return _Fence(self, name)

    def may_publish(self, name: str) -> bool:
        return name in self.assigned and self.confirmed()

    def confirmed(self) -> bool:
        """Whether this replica's membership was confirmed within the lease."""
        return self._clock() - self._confirmed_at < self._settings.lease_seconds

    async def changed(self) -> None:
        """Waits for the next change of assignment or confirmation."""
        self._changed.clear()
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._consumer is not None:
            return
        s = self._settings
        # The broker names a member "<client id>-<uuid>" and the range assignor deals the
        # streams out in member-name order: a start time in the name makes the oldest
        # replicas the owners, so a replica that joins (quota slices not yet usable, see
        # quota_membership.py) takes no stream from a running one.
        started = int(time.time() * 1000)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-{started:013d}-{self.replica_id}",
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_seconds * 1000),
            # Revoking stops a stream and writes its mark: bounded well below this.
            rebalance_timeout_ms=int(max(s.session_timeout_seconds, 30.0) * 1000),
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        consumer.subscribe([self.control_topic], listener=_Listener(self))
        self._consumer = consumer  # the first assignment may come before start() returns
        try:
            await consumer.start()
        except BaseException:
            self._consumer = None
            raise
        self._task = self._supervisor.spawn("stream-ownership", self._run)
        logger.info(
            "replica %s joined group %s for streams %s", self.replica_id, self.group_id, ", ".join(self.names)
        )

    async def stop(self) -> None:
        """Stops the owned streams, writes their marks, leaves the group (the others
        take over at once, not after a session timeout). Never raises."""
        task, self._task = self._task, None
        if task is not None:
            await self._supervisor.cancel(task)
        async with self._transition:
            owned = sorted(self.assigned)
            self.assigned.clear()
            self._notify()
            await self._stop_streams(owned, release=False)  # the final marks follow the drain
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                async with asyncio.timeout(self._settings.session_timeout_seconds):
                    await consumer.stop()
            except Exception as exc:
                logger.warning(
                    "leaving group %s failed (%r); the broker expires this member", self.group_id, exc
                )

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        interval = self._settings.confirm_interval_seconds
        next_publish = 0.0
        while True:
            # Polling keeps this member in the group (max.poll.interval) and runs rebalances.
            with contextlib.suppress(kafka_errors.KafkaError):
                await consumer.getmany(timeout_ms=int(interval * 1000))
            await self._confirm(consumer)
            await self._reconcile()
            if self._clock() >= next_publish:
                next_publish = self._clock() + self._settings.watermark_interval_seconds
                await self._publish(sorted(self.assigned))

    async def _confirm(self, consumer: AIOKafkaConsumer) -> None:
        partitions = {TopicPartition(self.control_topic, self.names.index(n)): 0 for n in self.assigned}
        if not partitions:
            return
        asked = self._clock()
        try:
            await consumer.commit(partitions)
        except (kafka_errors.KafkaError, kafka_errors.IllegalStateError) as exc:
            logger.debug("ownership not confirmed: %r", exc)
            return
        self._confirmed_at = asked
        self._notify()

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
                        self._clock() - self._confirmed_at,
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

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        names = [self.names[p.partition] for p in partitions if p.partition < len(self.names)]
        async with self._transition:
            self.assigned.difference_update(names)
            self._notify()
            await self._stop_streams(sorted(names))

    async def assigned_now(self, partitions: set[TopicPartition]) -> None:
        names = {self.names[p.partition] for p in partitions if p.partition < len(self.names)}
        self.assigned = names
        self._confirmed_at = self._clock()  # the group's join and sync just succeeded
        self._notify()
        logger.info(
            "replica %s assigned %s", self.replica_id, ", ".join(sorted(names)) or "no stream (standby)"
        )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped here
    def __init__(self, ownership: StreamOwnership) -> None:
        self._ownership = ownership

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._ownership.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._ownership.assigned_now(assigned)
