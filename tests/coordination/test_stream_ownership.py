"""Stream ownership through the real broker's consumer group: every stream owned by
exactly one member, handed over on leave (old owner stopped first), and the shared
watermark written only for what Kafka acknowledged."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from adapter.assembly.coordination_parts import coordination_parts
from adapter.config.coordination import CoordinationSettings
from adapter.coordination.shared_watermarks import SharedWatermarks
from adapter.coordination.stream_ownership import StreamOwnership
from adapter.events.kafka_sink import KafkaSink
from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool
from adapter.lifecycle import LifecycleGroup

from ..events.kafka_fixtures import BOOTSTRAP, delete_topics_with_prefix, wait_until

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = [pytest.mark.usefixtures("kafka_bootstrap"), pytest.mark.timeout(120)]

SETTINGS = CoordinationSettings(
    enabled=True, session_timeout_seconds=6, heartbeat_interval_seconds=1, confirm_interval_seconds=0.5
)
STREAMS = ("octospine", "openframe")


class Ledger:
    """Who runs which stream; a second runner of a stream is a failure on the spot."""

    def __init__(self) -> None:
        self.running: dict[str, str] = {}
        self.overlaps: list[str] = []
        self.starts: list[tuple[str, str]] = []


class RecordedStream:
    def __init__(self, ledger: Ledger, name: str, replica: str) -> None:
        self._ledger, self._name, self._replica = ledger, name, replica

    async def start(self) -> None:
        holder = self._ledger.running.get(self._name)
        if holder is not None and holder != self._replica:
            self._ledger.overlaps.append(f"{self._name}: {self._replica} started while {holder} ran it")
        self._ledger.running[self._name] = self._replica
        self._ledger.starts.append((self._name, self._replica))

    async def stop(self) -> None:
        if self._ledger.running.get(self._name) == self._replica:
            del self._ledger.running[self._name]


class Clock:
    """time.monotonic, or (while ``stalled``) one that leaps a minute per reading: every
    confirmation then comes too late for the lease, as for a replica cut off from the
    group coordinator (or frozen) longer than the lease."""

    def __init__(self) -> None:
        self.stalled = False
        self._leap = 0.0

    def __call__(self) -> float:
        if self.stalled:
            self._leap += 60.0
        return time.monotonic() + self._leap


class Replica:
    def __init__(
        self, name: str, prefix: str, ledger: Ledger, tmp_path: Path, clock: Clock | None = None
    ) -> None:
        self.name = name
        self.spool = EventSpool(tmp_path / name / "events.db")
        self.sink = KafkaSink(BOOTSTRAP, client_id=f"test-{name}")
        self.watermarks = SharedWatermarks(
            topic=f"{prefix}marks",
            bootstrap_servers=BOOTSTRAP,
            client_id=f"test-{name}",
            replica_id=name,
            sink=self.sink,
            spool=self.spool,
        )
        self.ownership = StreamOwnership(
            {s: RecordedStream(ledger, s, name) for s in STREAMS},
            SETTINGS,
            bootstrap_servers=BOOTSTRAP,
            client_id=f"test-{name}",
            group_id=f"{prefix}group",
            control_topic=f"{prefix}control",
            replica_id=name,
            watermarks=self.watermarks,
            clock=clock or Clock(),
        )
        self.group = LifecycleGroup([self.spool, self.sink, *coordination_parts(self.ownership, self.spool)])


@pytest_asyncio.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}."
    yield name
    await delete_topics_with_prefix(BOOTSTRAP, name)


async def test_each_stream_has_one_owner_and_moves_when_its_owner_leaves(prefix: str, tmp_path: Path) -> None:
    ledger = Ledger()
    replicas = [Replica(f"r{i}", prefix, ledger, tmp_path) for i in range(3)]
    try:
        for replica in replicas:
            await replica.group.start()
        await wait_until(lambda: len(ledger.running) == 2, within=30, what="both streams owned")
        owners = {r.name for r in replicas if r.ownership.running}
        assert len(owners) == 2, "two streams over three replicas: two owners, one standby"
        leaving = next(r for r in replicas if r.ownership.running)
        lost = sorted(leaving.ownership.running)
        await leaving.group.stop()
        await wait_until(
            lambda: len(ledger.running) == 2 and all(ledger.running[s] != leaving.name for s in lost),
            within=30,
            what="the left streams taken over",
        )
        assert ledger.overlaps == []
    finally:
        for replica in replicas:
            await replica.group.stop()
    assert ledger.overlaps == []


async def test_watermark_is_published_only_once_kafka_has_the_events(prefix: str, tmp_path: Path) -> None:
    replica = Replica("solo", prefix, Ledger(), tmp_path)
    await replica.group.start()
    try:
        await wait_until(lambda: len(replica.ownership.running) == 2, within=30, what="both streams owned")
        first = replica.watermarks.get("openframe")
        assert first is not None  # a stream nobody marked starts now, and says so
        await replica.spool.append(
            [OutboundRecord(topic=f"{prefix}events", key=b"k", value=b"v", headers=(), ce_id="e1")]
        )
        later = first + dt.timedelta(seconds=5)
        replica.watermarks.advance_to("openframe", later)
        # The record waits in the spool (no drainer here): the mark must not be published.
        assert await replica.watermarks.publish(["openframe"]) == 0
        entries = await replica.spool.pending(10)
        outcomes = await replica.sink.send_batch([record for _, record in entries])
        assert all(type(o).__name__ == "Delivered" for o in outcomes)
        await replica.spool.ack([seq for seq, _ in entries])
        assert await replica.watermarks.publish(["openframe"]) == 1
        reader = Replica("reader", prefix, Ledger(), tmp_path)
        assert await reader.watermarks.load("openframe") == later
    finally:
        await replica.group.stop()


async def test_an_owner_that_cannot_confirm_within_its_lease_stops_publishing(
    prefix: str, tmp_path: Path
) -> None:
    clock = Clock()
    ledger = Ledger()
    replica = Replica("slow", prefix, ledger, tmp_path, clock)
    await replica.group.start()
    try:
        await wait_until(lambda: len(replica.ownership.running) == 2, within=30, what="both streams owned")
        fence = replica.ownership.fence("openframe")
        assert fence.allows()
        clock.stalled = True
        assert not fence.allows()  # the next batch would be refused before the spool
        await wait_until(
            lambda: not ledger.running, within=10, what="the streams stopped by the lapsed lease"
        )
        assert replica.ownership.assigned == {"openframe", "octospine"}  # the group still says so
        clock.stalled = False
        await wait_until(lambda: len(ledger.running) == 2, within=10, what="the streams back once confirmed")
        assert fence.allows()
    finally:
        await replica.group.stop()
