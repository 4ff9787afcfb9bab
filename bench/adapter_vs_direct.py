"""The same reads through the adapter (gRPC) and straight to the upstream
(httpx), side by side in one run, with the adapter on each HTTP transport.

The simulator and the adapter run as separate processes so client, adapter and
upstream do not share an event loop (the machine has 2 cores: figures are
relative, not absolute).

    python -m bench.adapter_vs_direct [--seconds 5] [--concurrency 1,16,64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from openframe.v1 import devices_pb2, devices_pb2_grpc

from bench.ports import listen_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"


@contextlib.asynccontextmanager
async def simulator() -> AsyncIterator[str]:
    of_port, os_port = listen_port(), listen_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator",
        "--openframe-port", str(of_port), "--octospine-port", str(os_port),
        "--rate-limit-per-minute", "0", "--log-level", "WARNING",
        "--openframe-api-key", KEY, "--octospine-api-key", KEY,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield f"http://127.0.0.1:{of_port}"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


@contextlib.asynccontextmanager
async def adapter(upstream: str, transport: str, *, cache: bool) -> AsyncIterator[str]:
    port = listen_port()
    env = {
        **os.environ,
        "MESH_LOG_LEVEL": "WARNING",
        "MESH_GRPC__PORT": str(port),
        "MESH_TELEMETRY__OPS_PORT": "0",
        "MESH_EVENTS__ENABLED": "false",
        "MESH_WORKERS": "1",  # one process: its CPU is what is measured
        "MESH_UPSTREAMS__OPENFRAME__BASE_URL": upstream,
        "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": KEY,
        "MESH_UPSTREAMS__OPENFRAME__TRANSPORT": transport,
        # The simulator runs without a quota here, so the adapter's limiter would only
        # measure itself; the cache is on for one row only (GetDevice is cacheable).
        "MESH_UPSTREAMS__OPENFRAME__RESILIENCE__RATE_LIMIT__ENABLED": "false",
        "MESH_UPSTREAMS__OPENFRAME__RESILIENCE__CACHE__ENABLED": str(cache).lower(),
        "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": upstream,
        "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": KEY,
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "adapter", cwd=ROOT, env=env)
    target = f"127.0.0.1:{port}"
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(200):
                with contextlib.suppress(grpc.aio.AioRpcError):
                    if (await health.Check(health_pb2.HealthCheckRequest(), timeout=1)).status == 1:
                        break
                await asyncio.sleep(0.05)
        yield target
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def measure(
    call: Callable[[], Awaitable[object]], concurrency: int, seconds: float
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of ``call`` from ``concurrency`` workers."""
    latencies: list[float] = []
    for _ in range(20):  # warm up connections
        await call()
    stop_at = time.perf_counter() + seconds  # after the warm-up, however long it took

    async def worker() -> None:
        # At least two calls each, so a short (smoke) run on a busy machine still has quantiles.
        while time.perf_counter() < stop_at or len(latencies) < 2:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, quantiles[49] * 1000, quantiles[98] * 1000


async def main(seconds: float, levels: list[int]) -> None:
    rows: list[tuple[str, int, tuple[float, float, float]]] = []
    async with simulator() as upstream:
        async with httpx.AsyncClient(
            base_url=upstream,
            headers={"Authorization": f"Bearer {KEY}"},
            limits=httpx.Limits(max_connections=100),
        ) as direct:

            async def direct_call() -> object:
                response = await direct.get("/v1/devices/dev_001")
                response.raise_for_status()
                return response.json()

            for c in levels:
                rows.append(("direct httpx -> upstream", c, await measure(direct_call, c, seconds)))
        for transport, cache in (("aiohttp", False), ("httpx", False), ("aiohttp", True)):
            label = f"gRPC -> adapter[{transport}{', cache hits' if cache else ''}] -> upstream"
            async with (
                adapter(upstream, transport, cache=cache) as target,
                grpc.aio.insecure_channel(target) as channel,
            ):
                stub = devices_pb2_grpc.DeviceServiceStub(channel)
                request = devices_pb2.GetDeviceRequest(device_id="dev_001")

                async def grpc_call(
                    stub: devices_pb2_grpc.DeviceServiceAsyncStub = stub,
                    request: devices_pb2.GetDeviceRequest = request,
                ) -> object:
                    return await stub.GetDevice(request, timeout=10)

                for c in levels:
                    rows.append((label, c, await measure(grpc_call, c, seconds)))
    print(
        f"\nGetDevice, {seconds:.0f} s per row (client, adapter and simulator in separate processes, 2 cores)"
    )
    print(f"{'path':<50} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, c, (rps, p50, p99) in rows:
        print(f"{name:<50} {c:>4} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,16,64")
    args = parser.parse_args()
    if os.environ.get("BENCH_SMOKE") == "1":
        args.seconds = 0.3
    asyncio.run(main(args.seconds, [int(c) for c in args.concurrency.split(",")]))
