"""Three adapter processes share the vendor streams through the real broker's
consumer group. Under a steady stream of a few thousand events, the owner of each
stream is killed with SIGKILL in turn (and restarted): nothing is lost, duplicates
carry the same ce_id and payload, each key keeps its order, and the simulator
never sees two subscriptions of one stream at once beyond the handover window."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from openframe.v1 import events_pb2 as of_events

from simulator import Simulator

from ..events.kafka_fixtures import BOOTSTRAP, consume_all, delete_topics_with_prefix, wait_until
from ..events.test_no_loss import ce_id, check_stream
from .replica_processes import SESSION_TIMEOUT, Replica, session_overlaps

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.usefixtures("kafka_bootstrap")

STREAMS = ("octospine", "openframe")
#: Two subscriptions of one stream may overlap this long at most: the old owner's
#: connection closing while the new one subscribes. The rebalance stops the old owner
#: first, so none is expected; the figure bounds the simulator's own bookkeeping.
HANDOVER_WINDOW = 0.5


@pytest_asyncio.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}."
    yield name
    await delete_topics_with_prefix(BOOTSTRAP, name)


def owners(replicas: list[Replica], stream: str) -> list[Replica]:
    return [r for r in replicas if stream in r.owned()]


def subscribed_since(sim: Simulator, stream: str, moment: float) -> float | None:
    """When the first session of ``stream`` opened after ``moment`` subscribed."""
    times = [
        s["subscribed"]
        for s in sim.ws_session_log(stream)
        if s["subscribed"] is not None and s["opened"] > moment and s["closed"] is None
    ]
    return min(times) if times else None


def payload_differences(records: list[Any]) -> list[str]:
    """Per ce_id whose copies differ: which fields of the event differ."""
    first: dict[str, Any] = {}
    found = []
    for record in records:
        key = dict(record.headers)["ce_id"].decode()
        if key not in first:
            first[key] = record
            continue
        if record.value != first[key].value:
            a = of_events.AlertEvent.FromString(first[key].value)
            b = of_events.AlertEvent.FromString(record.value)
            fields = [f.name for f in a.DESCRIPTOR.fields if getattr(a, f.name) != getattr(b, f.name)]
            where = f"offsets {first[key].offset} and {record.offset} of partition {record.partition}"
            found.append(f"{key}: {fields} differ ({a.event_id!r} vs {b.event_id!r}, {where})")
    return found


async def all_of(topic: str, expected: set[str], within: float = 60.0) -> list[Any]:
    """The topic's records once every expected ce_id is among them (or the last read,
    for the check to report what is missing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        records = await consume_all(BOOTSTRAP, topic, expected=len(expected), within=within)
        if expected <= {dict(r.headers)["ce_id"].decode() for r in records} or loop.time() > deadline:
            return records
        await asyncio.sleep(0.5)


@pytest.mark.timeout(170)
async def test_killing_each_streams_owner_loses_nothing(
    simulator: Simulator, tmp_path: Path, prefix: str
) -> None:
    replicas = [Replica(f"r{i}", simulator, tmp_path, prefix) for i in (1, 2, 3)]
    for replica in replicas:
        replica.start()
    takeovers: dict[str, float] = {}
    try:
        await asyncio.gather(*(r.wait_serving() for r in replicas))
        await wait_until(
            lambda: (
                all(len(owners(replicas, s)) == 1 for s in STREAMS)
                and all(subscribed_since(simulator, s, 0.0) is not None for s in STREAMS)
            ),
            within=30,
            what="each stream owned and subscribed once",
        )
        before = len(simulator.state.openframe.alerts)
        # About 2400 new alerts over 60 s, while the owners die.
        stream = asyncio.ensure_future(
            simulator.generate_events("openframe", "alert", count=2400, rate_per_s=40)
        )
        for victim_stream in ("openframe", "octospine"):
            await wait_until(
                lambda b=before: len(simulator.state.openframe.alerts) >= b + 300 or stream.done(),
                within=30,
                what="events flowing",
            )
            before = len(simulator.state.openframe.alerts)
            await wait_until(
                lambda vs=victim_stream: len(owners(replicas, vs)) == 1,
                within=30,
                what=f"{victim_stream} owned",
            )
            (victim,) = owners(replicas, victim_stream)
            killed_at = time.monotonic()
            await victim.kill()
            await wait_until(
                lambda vs=victim_stream, k=killed_at: subscribed_since(simulator, vs, k) is not None,
                within=SESSION_TIMEOUT + 15,
                what=f"{victim_stream} taken over",
            )
            subscribed = subscribed_since(simulator, victim_stream, killed_at)
            assert subscribed is not None
            takeovers[victim_stream] = subscribed - killed_at
            victim.start()  # back as a standby (its spool's leftovers are delivered: duplicates)
        changed = await stream
        expected = {ce_id(a) for a in changed}
        records = await all_of(f"{prefix}openframe.alerts", expected)
        differing = payload_differences(records)
        assert not differing, f"{len(differing)} duplicates carried another payload, e.g. {differing[:3]}"
        check_stream(records, expected)
        duplicates = len(records) - len({dict(r.headers)["ce_id"] for r in records})
        now = time.monotonic()
        overlaps = {s: session_overlaps(simulator.ws_session_log(s), now) for s in STREAMS}
        sys.stderr.write(
            f"\nreplica failover: {len(expected)} events, 0 lost, {duplicates} duplicates (same ce_id); "
            + ", ".join(f"{s} takeover {t:.1f}s" for s, t in takeovers.items())
            + f" (session timeout {SESSION_TIMEOUT:.0f}s); subscription overlaps "
            + ", ".join(f"{s}: {max((o for *_, o in v), default=0.0):.2f}s" for s, v in overlaps.items())
            + "\n"
        )
        for s, found in overlaps.items():
            assert all(o <= HANDOVER_WINDOW for *_, o in found), f"{s} subscribed twice at once: {found}"
        for s, seconds in takeovers.items():
            assert seconds < SESSION_TIMEOUT + 10, f"{s} took {seconds:.1f}s to take over"
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        for replica in replicas:
            if replica.log.exists():
                sys.stderr.write(f"--- {replica.name}\n" + replica.log.read_text(errors="replace")[-3000:])
