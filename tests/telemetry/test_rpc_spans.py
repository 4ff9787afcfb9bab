"""Server spans: upstream-backed RPCs trace themselves (continuing the caller's
trace, with the gRPC status), every other service but health through the
interceptor."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from adapter.telemetry.rpc_spans import RpcSpans
from simulator import Fault, Simulator

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def _server_spans(exporter: InMemorySpanExporter, name: str) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER and s.name == name]


async def test_the_call_continues_the_callers_trace(stub, span_exporter: InMemorySpanExporter) -> None:  # type: ignore[no-untyped-def]
    await stub(devices_pb2_grpc.DeviceServiceStub).GetDevice(
        devices_pb2.GetDeviceRequest(device_id="dev_001"),
        metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),),
        timeout=5,
    )
    [span] = _server_spans(span_exporter, "/openframe.v1.DeviceService/GetDevice")
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_ID
    assert span.attributes["rpc.system"] == "grpc"
    assert span.attributes["rpc.service"] == "openframe.v1.DeviceService"
    assert span.attributes["rpc.method"] == "GetDevice"
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert span.status.status_code == StatusCode.UNSET


@pytest.mark.parametrize(
    ("fault", "code", "is_error"),
    [
        (None, grpc.StatusCode.NOT_FOUND, False),  # the caller's mistake, not the server's
        (Fault(vendor="openframe", status=503), grpc.StatusCode.UNAVAILABLE, True),
    ],
)
async def test_a_failed_call_records_its_status(  # type: ignore[no-untyped-def]
    stub, simulator: Simulator, span_exporter: InMemorySpanExporter, fault, code, is_error
) -> None:
    if fault is not None:
        simulator.faults.add(fault)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(alerts_pb2_grpc.AlertServiceStub).GetAlert(
            alerts_pb2.GetAlertRequest(alert_id="alt_nope"), timeout=10
        )
    assert info.value.code() == code
    [span] = _server_spans(span_exporter, "/openframe.v1.AlertService/GetAlert")
    assert span.attributes["rpc.grpc.status_code"] == code.value[0]
    assert (span.status.status_code == StatusCode.ERROR) is is_error


async def test_other_services_are_traced_by_the_interceptor(
    channel: grpc.aio.Channel, span_exporter: InMemorySpanExporter
) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = reflection.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    answer = await call.read()
    assert answer.list_services_response.service
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    method = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    assert len(_server_spans(span_exporter, method)) == 1


async def test_health_is_not_traced_and_its_watch_works(
    channel: grpc.aio.Channel, span_exporter: InMemorySpanExporter
) -> None:
    """Health probes are not traced (noise, and the interceptor breaks ``Watch``:
    opentelemetry-python-contrib issue 3066); ``Watch`` answers the current status."""
    health = health_pb2_grpc.HealthStub(channel)
    await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()
    assert not [s for s in span_exporter.get_finished_spans() if "grpc.health" in s.name]


async def test_the_span_and_duration_are_taken_at_the_end_and_recorded_after_the_reply(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    """``end()`` only takes the times; the loop records them once the handler's step
    (the one that hands the reply to grpc.aio) is done, with the times of the end."""
    reader = InMemoryMetricReader()
    spans = RpcSpans(tracer_provider, "/openframe.v1.DeviceService/GetDevice", MeterProvider([reader]))
    call = spans.start(())
    spans.end(call)
    ended = time.time_ns()
    time.sleep(0.05)  # noqa: ASYNC251  # blocks on purpose: the rest of the handler's step
    assert _server_spans(span_exporter, "/openframe.v1.DeviceService/GetDevice") == []
    await asyncio.sleep(0)
    [span] = _server_spans(span_exporter, "/openframe.v1.DeviceService/GetDevice")
    assert span.end_time <= ended
    data = reader.get_metrics_data()
    assert data is not None
    [point] = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "rpc.server.duration"
        for p in m.data.data_points
    ]
    assert point.count == 1 and point.sum < 50  # ms: the sleep after end() is not counted
    [exemplar] = point.exemplars  # trace-based: points at this call's span
    assert exemplar.span_id == span.context.span_id
