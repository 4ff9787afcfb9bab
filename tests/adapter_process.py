"""What every test that runs ``python -m adapter`` as a real process needs: a port to
give it, and a wait until it serves (failing with its log if it died instead)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.ports import listen_port
from simulator import Simulator

__all__ = [
    "OFFLINE",
    "against",
    "listen_port",
    "log_tail",
    "offline",
    "run_command",
    "spawn",
    "terminate",
    "wait_serving",
]

ROOT = Path(__file__).resolve().parents[1]


#: A configuration that starts without a simulator or Kafka: both upstreams on a port
#: nothing answers (never called by these tests), events off, no telemetry ports.
OFFLINE = {
    "MESH_UPSTREAMS__OPENFRAME__BASE_URL": "http://127.0.0.1:1",
    "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": "k",
    "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": "http://127.0.0.1:1",
    "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": "k",
    "MESH_EVENTS__ENABLED": "false",
    "MESH_GRPC__PORT": "0",
    "MESH_TELEMETRY__OPS_ENABLED": "false",
    "MESH_TELEMETRY__OTLP_ENABLED": "false",
    "MESH_LOG_FORMAT": "text",
}


def offline(**changes: str | None) -> dict[str, str]:
    """:data:`OFFLINE` with ``changes`` (``None`` drops a variable)."""
    return {k: v for k, v in (OFFLINE | changes).items() if v is not None}


def against(sim: Simulator, port: int, **changes: str | None) -> dict[str, str]:
    """:data:`OFFLINE` pointed at ``sim`` with the suite's keys, gRPC on ``port``."""
    from .conftest import OCTOSPINE_KEY, OPENFRAME_KEY

    return offline(
        MESH_UPSTREAMS__OPENFRAME__BASE_URL=sim.openframe_url,
        MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY=OPENFRAME_KEY,
        MESH_UPSTREAMS__OCTOSPINE__BASE_URL=sim.octospine_url,
        MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY=OCTOSPINE_KEY,
        MESH_GRPC__PORT=str(port),
        **changes,
    )


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m adapter`` started (not waited for), configured by ``env`` alone,
    its output in ``log``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "adapter"], cwd=ROOT, env=clean | env, stdout=out, stderr=subprocess.STDOUT
        )


def terminate(process: subprocess.Popen[bytes], within: float = 30) -> None:
    """SIGTERM (a graceful stop), SIGKILL if it has not ended ``within`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_command(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m adapter *args`` to its end, configured by ``env`` alone: the test
    process's own ``MESH_`` variables are left out."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    return subprocess.run(
        [sys.executable, "-m", "adapter", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def log_tail(log: Path | None, size: int = 4000) -> str:
    return log.read_text(errors="replace")[-size:] if log is not None and log.exists() else ""


async def wait_serving(
    port: int,
    *,
    within: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    name: str = "adapter",
) -> None:
    """Poll the standard health service on ``port`` until it says SERVING; fail at once,
    with the log's tail, if ``process`` exits first."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            if process is not None and process.poll() is not None:
                pytest.fail(f"{name} on port {port} exited with {process.returncode}:\n{log_tail(log)}")
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if loop.time() > deadline:
                pytest.fail(f"{name} on port {port} did not serve within {within}s:\n{log_tail(log)}")
            await asyncio.sleep(0.1)
