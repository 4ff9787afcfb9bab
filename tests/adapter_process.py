"""What every test that runs ``python -m adapter`` as a real process needs: a port to
give it, and a wait until it serves (failing with its log if it died instead)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.ports import listen_port

__all__ = ["listen_port", "log_tail", "wait_serving"]


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
