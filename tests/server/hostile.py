"""Helpers of the hostile-input tests: an adapter that also serves
``meshadapter.v1.EventService`` (validation answers before Kafka is contacted,
so no broker is needed), raw-bytes calls, and the simulator's request log."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from meshadapter.v1 import events_pb2_grpc
from opentelemetry.trace import TracerProvider

from adapter.server.app import AdapterServer
from adapter.server.event_service import EventStreamServicer
from adapter.transcoding.json_codec import JsonCodec
from simulator import Simulator
from tests.conftest import adapter_settings

EVENT_TOPICS = ["openframe.alerts", "octospine.tasks"]


@contextlib.asynccontextmanager
async def adapter_with_events(
    sim: Simulator, tracer_provider: TracerProvider | None = None, **settings: Any
) -> AsyncIterator[AdapterServer]:
    servicer = EventStreamServicer(
        bootstrap_servers="127.0.0.1:9",  # discard port: a call that got this far would fail UNAVAILABLE
        topics=EVENT_TOPICS,
        message_types={},
        codec=JsonCodec(),
        metadata_timeout_seconds=1.0,
    )
    server = AdapterServer(
        adapter_settings(sim, **settings),
        tracer_provider=tracer_provider,
        extra_services=[
            (
                "meshadapter.v1.EventService",
                lambda s: events_pb2_grpc.add_EventServiceServicer_to_server(servicer, s),
            )
        ],
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


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
