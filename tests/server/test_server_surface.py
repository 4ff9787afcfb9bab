"""What every gRPC client sees besides the vendor APIs: health checking,
reflection, graceful shutdown, traces, and logs without secrets."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from octospine.v1 import integrations_pb2, integrations_pb2_grpc
from openframe.v1 import devices_pb2, devices_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapter.runtime import MeshAdapter
from simulator import Fault, Simulator

from ..conftest import adapter_settings

EXPECTED_SERVICES = {
    "openframe.v1.DeviceService",
    "openframe.v1.AlertService",
    "openframe.v1.SecurityEventService",
    "octospine.v1.SystemService",
    "octospine.v1.PipelineService",
    "octospine.v1.AutomationService",
    "octospine.v1.IntegrationService",
    "octospine.v1.TaskService",
    "octospine.v1.WebhookService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
}


async def test_health_serving_per_service(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "openframe.v1.AlertService", "octospine.v1.TaskService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_and_describes(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask(request: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
        call = stub.ServerReflectionInfo()
        await call.write(request)
        await call.done_writing()
        return await call.read()  # type: ignore[return-value]

    listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    assert {s.name for s in listed.list_services_response.service} >= EXPECTED_SERVICES

    described = await ask(
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="openframe.v1.AlertService")
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in described.file_descriptor_response.file_descriptor_proto
    ]
    alerts = next(f for f in files if f.name == "openframe/v1/alerts.proto")
    # Methods resolve too (grpcurl describe pkg.Service.Method; grpc/grpc#34743).
    for symbol in ("openframe.v1.AlertService.UpdateAlert", "grpc.health.v1.Health.Check"):
        method = await ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
        assert method.WhichOneof("message_response") == "file_descriptor_response", symbol
    assert [m.name for m in alerts.service[0].method] == [
        "CreateAlert",
        "ListAlerts",
        "GetAlert",
        "UpdateAlert",
    ]


async def test_graceful_shutdown_finishes_in_flight_calls(simulator: Simulator, tracer_provider) -> None:  # type: ignore[no-untyped-def]
    simulator.faults.add(Fault(vendor="openframe", route="/v1/devices", latency=1.0))
    server = MeshAdapter(adapter_settings(simulator), tracer_provider=tracer_provider)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        slow = asyncio.ensure_future(
            devices_pb2_grpc.DeviceServiceStub(ch).ListDevices(devices_pb2.ListDevicesRequest(), timeout=10)
        )
        await simulator.wait_for(lambda: simulator.count(vendor="openframe", route="/v1/devices") == 1)
        health = health_pb2_grpc.HealthStub(ch)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.ensure_future(server.stop(grace=5))
        # Health turns NOT_SERVING at once, so load balancers drain the adapter...
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # ...while the call already in flight completes normally.
        answer = await slow
        assert answer.devices
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_trace_spans_gRPC_call_and_upstream_attempt(
    stub, simulator: Simulator, span_exporter: InMemorySpanExporter
) -> None:  # type: ignore[no-untyped-def]
    await stub(devices_pb2_grpc.DeviceServiceStub).GetDevice(
        devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=5
    )
    spans = span_exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    client = next(s for s in spans if s.kind == SpanKind.CLIENT)
    assert server.name == "/openframe.v1.DeviceService/GetDevice"
    assert client.context.trace_id == server.context.trace_id
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    # The upstream received the client span's context as W3C traceparent.
    [request] = simulator.find_requests(path="/v1/devices/dev_001")
    traceparent = dict((k.lower(), v) for k, v in request.headers.items())["traceparent"]
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{client.context.trace_id:032x}",
        f"{client.context.span_id:016x}",
    )
    assert int(flags, 16) & 0x01  # sampled


async def test_debug_logs_mask_secrets(stub, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG, logger="adapter")
    integrations = stub(integrations_pb2_grpc.IntegrationServiceStub)
    await integrations.CreateIntegration(
        integrations_pb2.CreateIntegrationRequest(
            integration=integrations_pb2.Integration(
                type="cloud_storage",
                name="AWS S3",
                configuration={
                    "provider": "aws",
                    "access_key": "AKIA-SECRET-1",
                    "secret_key": "TOP-SECRET-2",
                },
            )
        ),
        timeout=5,
    )
    logged = caplog.text
    assert "CreateIntegration request" in logged
    assert "AKIA-SECRET-1" not in logged and "TOP-SECRET-2" not in logged
    assert "[REDACTED]" in logged
