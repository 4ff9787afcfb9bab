"""Caps on open Subscribe streams, end to end (the real broker, a real channel):
past a cap a stream is refused with RESOURCE_EXHAUSTED before any Kafka consumer
is made, and a closed stream frees its place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from meshadapter.v1 import events_pb2, events_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from adapter.config.security import LimitsSettings, SecuritySettings
from adapter.runtime import MeshAdapter
from adapter.server.stream_caps import StreamCapExceeded, SubscribeStreamCaps
from simulator import Simulator
from tests.resilience.harness import error_details

from .mesh_fixtures import mesh_settings

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.usefixtures("kafka_bootstrap")


def _with_limits(settings: Any, **limits: int) -> Any:
    return settings.model_copy(update={"security": SecuritySettings(limits=LimitsSettings(**limits))})


def _open(stub: Any, topic: str) -> Any:
    return stub.Subscribe(events_pb2.SubscribeRequest(topics=[topic]), timeout=30)


@pytest.mark.parametrize(
    ("limits", "subject"),
    [
        ({"max_subscribe_streams_per_principal": 2, "max_subscribe_streams": 10}, "principal:anonymous"),
        ({"max_subscribe_streams_per_principal": 0, "max_subscribe_streams": 2}, "server"),
    ],
)
async def test_stream_past_a_cap_is_refused_until_one_closes(
    simulator: Simulator,
    tmp_path: Path,
    prefix: str,
    tracer_provider: TracerProvider,
    limits: dict[str, int],
    subject: str,
) -> None:
    settings = _with_limits(mesh_settings(simulator, tmp_path, prefix), **limits)
    topic = f"{prefix}openframe.alerts"
    async with MeshAdapter(settings, tracer_provider=tracer_provider) as adapter:
        assert adapter.events is not None and adapter.events.subscriptions is not None
        servicer = adapter.events.subscriptions
        async with grpc.aio.insecure_channel(f"127.0.0.1:{adapter.grpc_port}") as channel:
            stub = events_pb2_grpc.EventServiceStub(channel)
            first, second = _open(stub, topic), _open(stub, topic)
            await simulator.wait_for(lambda: servicer.open_streams == 2, timeout_s=15)
            third = _open(stub, topic)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await third.read()
            assert servicer.open_streams == 2  # no consumer was made for it
            first.cancel()
            await simulator.wait_for(lambda: servicer.open_streams == 1, timeout_s=15)
            fourth = _open(stub, topic)  # the closed stream's place is free again
            await simulator.wait_for(lambda: servicer.open_streams == 2, timeout_s=15)
            second.cancel()
            fourth.cancel()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(refused.value)
    assert details["ErrorInfo"].reason == "TOO_MANY_STREAMS"
    assert details["QuotaFailure"].violations[0].subject == subject
    assert "max_subscribe_streams" in (refused.value.details() or "")


def test_caps_count_per_principal_and_in_all() -> None:
    caps = SubscribeStreamCaps(total=3, per_principal=2)
    caps.acquire("a")
    caps.acquire("a")
    with pytest.raises(StreamCapExceeded) as per_principal:
        caps.acquire("a")
    caps.acquire("b")
    with pytest.raises(StreamCapExceeded) as total:
        caps.acquire("c")
    assert per_principal.value.subject == "principal:a" and total.value.subject == "server"
    caps.release("a")
    caps.acquire("c")
    assert (caps.open, caps.open_for("a"), caps.open_for("c")) == (3, 1, 1)
