"""A pipeline with its recent tasks and the automations naming it: one GraphQL query
(``GetPipelineOverview``) against the three REST calls a client makes otherwise
(``GetPipeline``, ``ListTasks``, ``ListAutomations``, filtered client-side), both through
the adapter. Upstream requests per read are counted by the simulator.

The simulator and the adapter run as separate processes, without quotas or cache (the
machine has 2 cores: figures are relative, not absolute).

    python -m bench.graphql_overview [--seconds 5] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from octospine.v1 import (
    automations_pb2,
    automations_pb2_grpc,
    pipelines_pb2,
    pipelines_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

from bench.adapter_vs_direct import measure
from bench.ports import listen_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"


@contextlib.asynccontextmanager
async def simulator() -> AsyncIterator[str]:
    ports = [str(listen_port()), str(listen_port())]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "--openframe-port", ports[0], "--octospine-port", ports[1],
        "--rate-limit-per-minute", "0", "--graphql-rate-limit-per-minute", "0", "--log-level", "WARNING",
        "--openframe-api-key", KEY, "--octospine-api-key", KEY,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield f"http://127.0.0.1:{ports[1]}"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


@contextlib.asynccontextmanager
async def adapter(octospine: str) -> AsyncIterator[str]:
    port = listen_port()
    env = {
        **os.environ,
        "MESH_LOG_LEVEL": "WARNING",
        "MESH_GRPC__PORT": str(port),
        "MESH_TELEMETRY__OPS_PORT": "0",
        "MESH_EVENTS__ENABLED": "false",
        "MESH_WORKERS": "1",  # one process: its CPU is what is measured
        "MESH_UPSTREAMS__OPENFRAME__BASE_URL": "http://127.0.0.1:9",
        "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": KEY,
        "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": octospine,
        "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": KEY,
        "MESH_UPSTREAMS__OCTOSPINE__RESILIENCE__RATE_LIMIT__ENABLED": "false",
        "MESH_UPSTREAMS__OCTOSPINE__GRAPHQL__RATE_LIMIT__ENABLED": "false",
        "MESH_UPSTREAMS__OCTOSPINE__RESILIENCE__CACHE__ENABLED": "false",
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


async def upstream_requests(admin: httpx.AsyncClient) -> int:
    return int((await admin.get("/_sim/requests")).json()["count"])


async def main(seconds: float, levels: list[int]) -> None:
    rows: list[tuple[str, int, tuple[float, float, float], float]] = []
    async with (
        simulator() as octospine,
        adapter(octospine) as target,
        grpc.aio.insecure_channel(target) as channel,
        httpx.AsyncClient(base_url=octospine) as admin,
    ):
        pipelines = pipelines_pb2_grpc.PipelineServiceStub(channel)
        tasks = tasks_pb2_grpc.TaskServiceStub(channel)
        automations = automations_pb2_grpc.AutomationServiceStub(channel)
        overview = pipelines_pb2.GetPipelineOverviewRequest(pipeline_id="pip_0002", recent_tasks=5)

        async def graphql() -> object:
            return await pipelines.GetPipelineOverview(overview, timeout=10)

        async def rest() -> object:
            pipeline = await pipelines.GetPipeline(pipelines_pb2.GetPipelineRequest(pipeline_id="pip_0002"))
            listed = await tasks.ListTasks(tasks_pb2.ListTasksRequest(page_size=100), timeout=10)
            autos = await automations.ListAutomations(automations_pb2.ListAutomationsRequest(page_size=100))
            return pipeline, listed, autos

        for label, read in (
            ("GraphQL: GetPipelineOverview", graphql),
            ("REST: Get + ListTasks + ListAutos", rest),
        ):
            for c in levels:
                reads = 0

                async def counted(read: Callable[[], Awaitable[object]] = read) -> object:
                    nonlocal reads
                    reads += 1
                    return await read()

                before = await upstream_requests(admin)
                figures = await measure(counted, c, seconds)
                sent = await upstream_requests(admin) - before
                rows.append((label, c, figures, sent / reads))
                await admin.delete("/_sim/requests")
    print(f"\nPipeline overview, {seconds:.0f} s per row (client, adapter, simulator in separate processes)")
    print(f"{'path':<36} {'conc':>4} {'reads/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'upstream req/read':>18}")
    for name, c, (rps, p50, p99), per_read in rows:
        print(f"{name:<36} {c:>4} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f} {per_read:>18.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args()
    if os.environ.get("BENCH_SMOKE") == "1":
        args.seconds = 0.3
    asyncio.run(main(args.seconds, [int(c) for c in args.concurrency.split(",")]))
