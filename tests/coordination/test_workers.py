"""``workers = 2``: one supervisor, two adapter processes on one gRPC port
(SO_REUSEPORT). New connections spread evenly over them, the vendor streams are
owned once, a worker killed with SIGKILL is started again, and SIGTERM stops
them all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio
from openframe.v1 import devices_pb2, devices_pb2_grpc

from simulator import Simulator

from ..adapter_process import listen_port
from ..conftest import OCTOSPINE_KEY, OPENFRAME_KEY
from ..events.kafka_fixtures import BOOTSTRAP, delete_topics_with_prefix, wait_until
from .replica_processes import QUICK_QUOTA, ROOT, session_overlaps, usable_slices

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.usefixtures("kafka_bootstrap")

# The kernel hashes each connection to a worker: 2000 of them keep a fair split within
# ±10% by more than 4 standard deviations (1000 gave 558/442 once).
CONNECTIONS = 2000
_CALLS = re.compile(r'rpc_server_duration_milliseconds_count\{[^}]*rpc_method="GetDevice"[^}]*\} ([0-9.e+]+)')


@pytest_asyncio.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}."
    yield name
    await delete_topics_with_prefix(BOOTSTRAP, name)


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found |= {int(c) for c in text}
    return found


def start_supervisor(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "adapter"], cwd=ROOT, env=env, stdout=out, stderr=out)


async def calls_per_worker(ops_ports: list[int]) -> list[int]:
    counts = []
    async with httpx.AsyncClient() as client:
        for port in ops_ports:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            counts.append(int(sum(float(v) for v in _CALLS.findall(text))))
    return counts


@pytest.mark.timeout(150)
async def test_two_workers_share_one_port_and_the_streams(
    simulator: Simulator, tmp_path: Path, prefix: str
) -> None:
    grpc_port, webhook_port, ops = listen_port(), listen_port(), listen_port(consecutive=2)
    env = {
        **os.environ,
        "MESH_WORKERS": "2",
        "MESH_LOG_FORMAT": "text",
        "MESH_GRPC__PORT": str(grpc_port),
        "MESH_GRPC__DRAIN_SECONDS": "0.2",
        "MESH_TELEMETRY__OPS_PORT": str(ops),
        "MESH_UPSTREAMS__OPENFRAME__BASE_URL": simulator.openframe_url,
        "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": OPENFRAME_KEY,
        "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": simulator.octospine_url,
        "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": OCTOSPINE_KEY,
        "MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
        "MESH_EVENTS__SPOOL__PATH": str(tmp_path / "spool" / "events.db"),
        "MESH_EVENTS__TOPIC_PREFIX": prefix,
        "MESH_EVENTS__WEBHOOK__PORT": str(webhook_port),
        "MESH_EVENTS__COORDINATION__ENABLED": "true",
        "MESH_EVENTS__COORDINATION__REPLICA_ID": "host",
        "MESH_EVENTS__COORDINATION__SESSION_TIMEOUT_SECONDS": "6",
        **QUICK_QUOTA,
    }
    log = tmp_path / "workers.log"
    supervisor = start_supervisor(env, log)
    try:
        await wait_until(lambda: len(children(supervisor.pid)) == 2, within=20, what="two workers")
        first_workers = children(supervisor.pid)
        for stream in ("openframe", "octospine"):
            await wait_until(
                lambda s=stream: any(
                    x["subscribed"] and x["closed"] is None for x in simulator.ws_session_log(s)
                ),
                within=40,
                what=f"{stream} subscribed",
            )
        ops_ports = [ops, ops + 1]
        # A worker whose quota slices came from the other waits out one quota window.
        await wait_until(
            lambda: all(usable_slices(log, f"host-w{i}") for i in (1, 2)),
            within=30,
            what="both workers' quota",
        )
        # One call per new connection: the kernel spreads connections, not calls. A local
        # subchannel pool per channel: grpc-core's global pool can hand a new channel the
        # previous one's still-open TCP connection, so runs of calls share a worker and the
        # split strays further than the kernel's hash would.
        for _ in range(CONNECTIONS):
            async with grpc.aio.insecure_channel(
                f"127.0.0.1:{grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)]
            ) as channel:
                stub = devices_pb2_grpc.DeviceServiceStub(channel)
                await stub.GetDevice(devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=10)
        split = await calls_per_worker(ops_ports)
        now = time.monotonic()
        for stream in ("openframe", "octospine"):
            log_of = simulator.ws_session_log(stream)
            open_sessions = [x for x in log_of if x["subscribed"] and x["closed"] is None]
            assert len(open_sessions) == 1, f"{stream} is subscribed {len(open_sessions)} times"
            assert all(o <= 0.5 for *_, o in session_overlaps(log_of, now)), (
                f"{stream} subscribed twice at once"
            )
        sys.stderr.write(f"\nworkers: {CONNECTIONS} connections split {split}\n")
        assert sum(split) == CONNECTIONS
        assert all(abs(n - CONNECTIONS / 2) <= 0.1 * CONNECTIONS / 2 for n in split), split
        # A worker killed is started again.
        victim = min(first_workers)
        os.kill(victim, signal.SIGKILL)
        await wait_until(
            lambda: len(children(supervisor.pid)) == 2 and victim not in children(supervisor.pid),
            within=20,
            what="the dead worker started again",
        )
        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(supervisor.wait, 60) == 0
        assert "worker 1 died" in log.read_text() or "worker 2 died" in log.read_text()
    finally:
        if supervisor.poll() is None:
            for pid in children(supervisor.pid):
                os.kill(pid, signal.SIGKILL)
            supervisor.kill()
            await asyncio.to_thread(supervisor.wait, 10)
        sys.stderr.write(log.read_text(errors="replace")[-3000:] if log.exists() else "")
