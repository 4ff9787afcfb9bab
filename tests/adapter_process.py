"""What every test that runs ``python -m adapter`` as a real process needs: a port to
give it, and a wait until it serves (failing with its log if it died instead)."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["listen_port", "log_tail", "wait_serving"]

# Ports the kernel never picks as the source port of an outgoing connection sit below
# ip_local_port_range (32768-60999 by default). A port asked of the kernel with bind(0)
# comes from that very range: between the test closing it and the adapter binding it,
# one of the adapter's own Kafka or upstream connections can take it as its source port
# (seen in CI: "Failed to bind to address"). The test brokers listen below 20000.
_LISTEN_RANGE = range(20000, 32000)
_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listen_port(*, consecutive: int = 1) -> int:
    """A loopback port (and its ``consecutive - 1`` successors) free now, outside the
    ephemeral range, and never handed out before by this test process."""
    for _ in range(200):
        port = random.choice(_LISTEN_RANGE)
        wanted = range(port, port + consecutive)
        if _handed_out.intersection(wanted) or not all(_bindable(p) for p in wanted):
            continue
        _handed_out.update(wanted)
        return port
    raise RuntimeError(f"no {consecutive} free consecutive ports in {_LISTEN_RANGE}")


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
