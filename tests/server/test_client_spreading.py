"""How gRPC clients spread calls over several adapters (docs/load-balancing.md):
one channel to every replica with ``round_robin``, client-side health checking
and a retry policy for UNAVAILABLE. Calls split evenly, and a rolling restart of
every replica under steady traffic fails no call: a stopping replica turns
NOT_SERVING first (``grpc.drain_seconds``), clients leave it, then it finishes
its in-flight calls."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest_asyncio
from openframe.v1 import devices_pb2, devices_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapter.runtime import MeshAdapter
from simulator import Simulator

from ..conftest import adapter_settings
from ..events.kafka_fixtures import wait_until

#: What docs/load-balancing.md tells clients to use.
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "healthCheckConfig": {"serviceName": ""},
    "methodConfig": [
        {
            "name": [{}],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}


class Replica:
    """One adapter on a fixed port, with its own span exporter (who served what)."""

    def __init__(self, sim: Simulator, port: int = 0) -> None:
        self.spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.spans))
        settings = adapter_settings(sim, grpc={"port": port, "drain_seconds": 0.5})
        self.adapter = MeshAdapter(settings, tracer_provider=provider)

    @property
    def served(self) -> int:
        return sum(1 for s in self.spans.get_finished_spans() if s.name.endswith("/ListDevices"))


@pytest_asyncio.fixture
async def replicas(simulator: Simulator) -> AsyncIterator[list[Replica]]:
    started = [Replica(simulator), Replica(simulator)]
    for replica in started:
        await replica.adapter.start()
    try:
        yield started
    finally:
        for replica in started:
            await replica.adapter.stop(0)


def channel_to(replicas: list[Replica]) -> grpc.aio.Channel:
    target = "ipv4:" + ",".join(f"127.0.0.1:{r.adapter.port}" for r in replicas)
    return grpc.aio.insecure_channel(target, options=[("grpc.service_config", json.dumps(SERVICE_CONFIG))])


async def test_calls_split_evenly_over_the_replicas(replicas: list[Replica]) -> None:
    async with channel_to(replicas) as channel:
        stub = devices_pb2_grpc.DeviceServiceStub(channel)
        for _ in range(200):
            await stub.ListDevices(devices_pb2.ListDevicesRequest(page_size=1), timeout=10)
    split = [r.served for r in replicas]
    print(f"\ncalls per replica: {split}")
    assert sum(split) == 200
    assert all(90 <= n <= 110 for n in split), split  # round_robin: even within ±10%


async def test_a_rolling_restart_under_steady_traffic_fails_no_call(
    replicas: list[Replica], simulator: Simulator
) -> None:
    outcomes: Counter[str] = Counter()
    stop = asyncio.Event()

    async with channel_to(replicas) as channel:
        stub = devices_pb2_grpc.DeviceServiceStub(channel)

        async def caller() -> None:
            while not stop.is_set():
                try:
                    await stub.ListDevices(devices_pb2.ListDevicesRequest(page_size=1), timeout=10)
                    outcomes["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    outcomes[exc.code().name] += 1
                await asyncio.sleep(0.01)

        callers = [asyncio.create_task(caller()) for _ in range(8)]
        await asyncio.sleep(0.5)
        for index, old in enumerate(list(replicas)):
            port = old.adapter.port
            await old.adapter.stop()  # as on SIGTERM: drain, then grace for in-flight calls
            new = Replica(simulator, port=port)
            await new.adapter.start()
            replicas[index] = new
            # As an orchestrator waits for readiness before it stops the next replica: the
            # channel reconnects to the new one (gRPC's reconnect backoff starts at 1 s,
            # +-20%, so a fixed 1 s wait sometimes stopped the other replica while the
            # channel had none ready, and a call failed after its retries).
            await wait_until(lambda r=new: r.served > 0, within=15, what=f"replica {index} back in use")
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*callers)
    print(f"\nrolling restart of {len(replicas)} replicas: {dict(outcomes)}")
    assert outcomes["OK"] > 200
    assert set(outcomes) == {"OK"}, dict(outcomes)
    assert all(r.served > 0 for r in replicas)  # the restarted replicas took calls again
