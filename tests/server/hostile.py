"""Helpers of the hostile-input tests: an adapter that also serves
``meshadapter.v1.EventService`` (validation answers before Kafka is contacted,
so no broker is needed), raw-bytes calls, silent connections, and the
simulator's request log."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.trace import TracerProvider

from adapter.runtime import MeshAdapter
from simulator import Simulator
from tests.conftest import adapter_settings

EVENT_TOPICS = ["openframe.alerts", "octospine.tasks"]


@contextlib.asynccontextmanager
async def adapter_with_events(
    sim: Simulator, tracer_provider: TracerProvider | None = None, **settings: Any
) -> AsyncIterator[MeshAdapter]:
    """The whole adapter with its event pipeline pointed at a port where no broker
    listens (the discard port): a Subscribe that got past validation would fail
    UNAVAILABLE. No streams, no webhooks: only EventService matters here."""
    with tempfile.TemporaryDirectory() as spool_dir:
        events = {
            "kafka": {"bootstrap_servers": "127.0.0.1:9", "lifecycle_timeout_seconds": 0.5},
            "spool": {"path": str(Path(spool_dir) / "events.db")},
            "websockets": {"openframe": {"enabled": False}, "octospine": {"enabled": False}},
            "webhook": {"enabled": False},
        }
        adapter = MeshAdapter(
            adapter_settings(sim, events=events, **settings), tracer_provider=tracer_provider
        )
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.stop(0)


async def call_raw(
    channel: grpc.aio.Channel, method: str, payload: bytes, *, streaming: bool = False, seconds: float = 10
) -> grpc.aio.AioRpcError | None:
    """Sends ``payload`` as the request bytes of ``method``; the error, or None on success."""
    try:
        if streaming:
            call = channel.unary_stream(method)(payload, timeout=seconds)
            async for _ in call:
                break
            call.cancel()
        else:
            await channel.unary_unary(method)(payload, timeout=seconds)
    except grpc.aio.AioRpcError as exc:
        return exc
    return None


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(field, description) of the BadRequest detail; [] when there is none."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    out: list[tuple[str, str]] = []
    for holder in status.details if status is not None else []:
        if holder.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            holder.Unpack(bad)
            out.extend((v.field, v.description) for v in bad.field_violations)
    return out


async def requests_logged(sim: Simulator) -> int:
    """Requests both vendors received, from the simulator's admin API."""
    total = 0
    async with httpx.AsyncClient() as client:
        for url in (sim.openframe_url, sim.octospine_url):
            answer = await client.get(f"{url}/_sim/requests")
            answer.raise_for_status()
            total += int(answer.json()["count"])
    return total


async def silent_connection_closed_within(port: int, seconds: float) -> float | None:
    """A TCP connection that sends nothing (no TLS ClientHello, no HTTP/2 preface):
    when the server closed it, or None if it was still open after ``seconds``."""
    began = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
        return time.monotonic() - began
    except TimeoutError:
        return None
    finally:
        writer.close()
