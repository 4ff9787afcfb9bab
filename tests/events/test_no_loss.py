"""No event lost: the broker stopped for 60 s under a steady event stream, and
the adapter killed with SIGKILL mid-stream. Every change the simulator made is
counted on Kafka afterwards: 0 lost, 0 unexpected, duplicates only as the same
ce_id with the same payload, each alert's versions in order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2
from openframe.v1 import events_pb2 as of_events
from opentelemetry.sdk.trace import TracerProvider

from adapter.runtime import MeshAdapter
from adapter.transcoding.json_codec import format_timestamp
from simulator import Simulator

from ..adapter_process import listen_port, wait_serving
from ..conftest import OCTOSPINE_KEY, OPENFRAME_KEY
from .kafka_fixtures import BOOTSTRAP, consume_all, start_broker, stop_broker, wait_until
from .test_events_end_to_end import health_of, mesh_settings

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.usefixtures("kafka_bootstrap")
ROOT = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def ce_id(alert: dict[str, Any]) -> str:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString(alert["updated_at"])
    return f"openframe:alert:{alert['id']}:{format_timestamp(stamp)}"


def check_stream(records: Iterable[Any], expected: set[str]) -> None:
    """0 lost, 0 unexpected, duplicates identical, per-key versions in order."""
    by_id: dict[str, list[bytes]] = defaultdict(list)
    per_key: dict[bytes, list[tuple[int, int, tuple[int, int]]]] = defaultdict(list)
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        by_id[headers["ce_id"]].append(record.value)
        event = of_events.AlertEvent.FromString(record.value)
        changed = event.alert.updated_at  # compared as numbers: "…57Z" < "…57.239Z" as text is wrong
        per_key[record.key].append((record.partition, record.offset, (changed.seconds, changed.nanos)))
    seen = set(by_id)
    assert not expected - seen, f"{len(expected - seen)} events lost"
    assert not seen - expected, f"{len(seen - expected)} unexpected events"
    for values in by_id.values():
        assert all(v == values[0] for v in values), "a duplicate ce_id carried another payload"
    for key, versions in per_key.items():
        assert len({p for p, _, _ in versions}) == 1, f"{key!r} spread over partitions"
        stamps = [t for _, _, t in sorted(versions)]
        assert stamps == sorted(stamps), f"{key!r} versions out of order"


@pytest_asyncio.fixture
async def outage_mesh(
    simulator: Simulator, tmp_path: Path, tracer_provider: TracerProvider
) -> AsyncIterator[tuple[MeshAdapter, str]]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    adapter = MeshAdapter(mesh_settings(simulator, tmp_path, prefix), tracer_provider=tracer_provider)
    await adapter.start()
    try:
        yield adapter, prefix
    finally:
        start_broker()  # whatever happened, leave the broker up for the next test
        await adapter.stop(0)


@pytest.mark.timeout(300)
async def test_broker_outage_of_60s_loses_nothing(
    outage_mesh: tuple[MeshAdapter, str], simulator: Simulator
) -> None:
    mesh, prefix = outage_mesh
    assert mesh.events is not None
    await asyncio.wait_for(mesh.events.sources["openframe"].streaming.wait(), 10)
    # About 3000 changes over 80 s: new alerts and updates of existing ones (several versions per key).
    creates = asyncio.ensure_future(
        simulator.generate_events("openframe", "alert", count=2000, rate_per_s=25)
    )
    updates = asyncio.ensure_future(
        simulator.generate_events("openframe", "alert_update", count=1000, rate_per_s=12.5)
    )
    await asyncio.sleep(5)  # the stream flows into Kafka for a while
    await asyncio.to_thread(stop_broker)
    outage_started = asyncio.get_running_loop().time()
    await wait_until(
        lambda: mesh.events is not None and mesh.events.spool.depth > 500, within=60, what="spool to fill"
    )
    await asyncio.sleep(max(0.0, 60 - (asyncio.get_running_loop().time() - outage_started)))
    depth_at_restart = mesh.events.spool.depth
    # Meanwhile health told load balancers that the Kafka-backed stream is impaired.
    assert await health_of(mesh.grpc_port, "meshadapter.v1.EventService") == NOT_SERVING
    assert await health_of(mesh.grpc_port, "") == SERVING  # the RPCs are not
    await asyncio.to_thread(start_broker)
    changed = [*await creates, *await updates]
    await wait_until(
        lambda: mesh.events is not None and mesh.events.spool.depth == 0, within=90, what="spool to drain"
    )
    expected = {ce_id(a) for a in changed}
    records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=len(expected), within=60)
    check_stream(records, expected)
    assert depth_at_restart > 1000  # the outage really buffered the stream
    for _ in range(50):  # health is re-checked every second
        if await health_of(mesh.grpc_port, "meshadapter.v1.EventService") == SERVING:
            break
        await asyncio.sleep(0.1)
    assert await health_of(mesh.grpc_port, "meshadapter.v1.EventService") == SERVING


def _adapter_process(
    sim: Simulator, tmp_path: Path, prefix: str, grpc_port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MESH_GRPC__PORT": str(grpc_port),
        "MESH_TELEMETRY__OPS_PORT": "0",
        "MESH_UPSTREAMS__OPENFRAME__BASE_URL": sim.openframe_url,
        "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": OPENFRAME_KEY,
        "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": sim.octospine_url,
        "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": OCTOSPINE_KEY,
        "MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
        "MESH_EVENTS__SPOOL__PATH": str(tmp_path / "spool" / "events.db"),
        "MESH_EVENTS__TOPIC_PREFIX": prefix,
        "MESH_EVENTS__WEBHOOK__PORT": "0",
        "MESH_EVENTS__WEBSOCKETS__OPENFRAME__PING_INTERVAL_SECONDS": "0.5",
        "MESH_EVENTS__WEBSOCKETS__OPENFRAME__STALL_TIMEOUT_SECONDS": "1",
    }
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "adapter"], cwd=ROOT, env=env, stdout=out, stderr=out)


@pytest.mark.timeout(240)
async def test_sigkill_mid_stream_loses_nothing(simulator: Simulator, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    port = listen_port()
    log = tmp_path / "adapter.log"
    first = _adapter_process(simulator, tmp_path, prefix, port, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        await wait_serving(port, within=20.0, log=log)
        await simulator.wait_for(lambda: len(simulator.ws_sessions("openframe")) == 1, timeout_s=20)
        stream = asyncio.ensure_future(
            simulator.generate_events("openframe", "alert", count=800, rate_per_s=40)
        )
        await asyncio.sleep(5)
        first.send_signal(signal.SIGKILL)  # no shutdown code runs
        assert await asyncio.to_thread(first.wait, 10) == -signal.SIGKILL
        await asyncio.sleep(3)  # events keep coming while nobody listens
        second = _adapter_process(simulator, tmp_path, prefix, port, log)
        await wait_serving(port, within=20.0, log=log)
        changed = await stream
        expected = {ce_id(a) for a in changed}
        records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=len(expected), within=60)
        check_stream(records, expected)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(process.wait, 20)
                except subprocess.TimeoutExpired:
                    process.kill()
        if log.exists():
            sys.stderr.write(log.read_text()[-4000:])
