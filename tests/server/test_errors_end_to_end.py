"""Upstream failures provoked through the simulator's fault switches, as each
caller sees them: the gRPC code and the rich details (grpcio-status).

Retries and the circuit breaker are off here so each case shows how one upstream
outcome maps to a status; tests/resilience covers what retries make of them."""

from __future__ import annotations

import asyncio
import logging
import re

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from octospine.v1 import tasks_pb2, tasks_pb2_grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc

from adapter.runtime import MeshAdapter
from simulator import Fault, Simulator

from ..conftest import adapter_settings

C = grpc.StatusCode
LIST = "/v1/devices"


@pytest.fixture(params=["aiohttp", "httpx", "h1"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every HTTP transport must classify failures the same way."""
    return str(request.param)


@pytest.fixture
def upstream_extra() -> dict[str, object]:
    return {"resilience": {"retry": {"max_attempts": 1}, "circuit_breaker": {"enabled": False}}}


pytestmark = pytest.mark.usefixtures("transport", "upstream_extra")


def _details(error: grpc.aio.AioRpcError) -> dict[str, object]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    out: dict[str, object] = {}
    for holder in status.details:
        name = holder.type_url.rsplit(".", 1)[-1]
        message = getattr(error_details_pb2, name)()
        holder.Unpack(message)
        out[name] = message
    return out


async def _list_devices_error(stub) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(devices_pb2_grpc.DeviceServiceStub).ListDevices(
            devices_pb2.ListDevicesRequest(), timeout=10
        )
    return info.value


FAULTS = [
    (
        Fault(vendor="openframe", route=LIST, status=503, retry_after=3),
        C.UNAVAILABLE,
        "UPSTREAM_UNAVAILABLE",
        {"RetryInfo"},
    ),
    (
        Fault(vendor="openframe", route=LIST, status=429, retry_after=7),
        C.RESOURCE_EXHAUSTED,
        "UPSTREAM_RATE_LIMITED",
        {"RetryInfo", "QuotaFailure"},
    ),
    (Fault(vendor="openframe", route=LIST, status=500), C.INTERNAL, "UPSTREAM_INTERNAL_ERROR", set()),
    (Fault(vendor="openframe", route=LIST, status=502), C.UNAVAILABLE, "UPSTREAM_BAD_GATEWAY", set()),
    (
        Fault(vendor="openframe", route=LIST, status=403),
        C.PERMISSION_DENIED,
        "UPSTREAM_PERMISSION_DENIED",
        set(),
    ),
    (
        Fault(vendor="openframe", route=LIST, expired_token=True),
        C.INTERNAL,
        "UPSTREAM_CREDENTIALS_REJECTED",
        set(),
    ),
    (Fault(vendor="openframe", route=LIST, reset=True), C.UNAVAILABLE, "UPSTREAM_CONNECTION_RESET", set()),
    (
        Fault(vendor="openframe", route=LIST, truncated_json=True),
        C.INTERNAL,
        "UPSTREAM_MALFORMED_RESPONSE",
        set(),
    ),
    (
        Fault(vendor="openframe", route=LIST, malformed_json=True),
        C.INTERNAL,
        "UPSTREAM_MALFORMED_RESPONSE",
        set(),
    ),
    (
        Fault(vendor="openframe", route=LIST, content_type="text/html"),
        C.INTERNAL,
        "UPSTREAM_UNEXPECTED_CONTENT_TYPE",
        set(),
    ),
    (
        Fault(vendor="openframe", route=LIST, redirect="http://evil.example/steal"),
        C.INTERNAL,
        "UPSTREAM_REDIRECT_BLOCKED",
        set(),
    ),
]


@pytest.mark.parametrize(
    ("fault", "code", "reason", "extra"), FAULTS, ids=[f"{f.kind}-{f.status or ''}" for f, *_ in FAULTS]
)
async def test_fault_maps_to_status(stub, simulator: Simulator, fault, code, reason, extra) -> None:  # type: ignore[no-untyped-def]
    simulator.faults.add(fault)
    error = await _list_devices_error(stub)
    assert error.code() == code, error.details()
    details = _details(error)
    assert details["ErrorInfo"].reason == reason  # type: ignore[attr-defined]
    assert details["ErrorInfo"].domain == "mesh-adapter"  # type: ignore[attr-defined]
    assert extra <= set(details)
    if "RetryInfo" in extra:
        assert details["RetryInfo"].retry_delay.seconds == fault.retry_after  # type: ignore[attr-defined]


async def test_validation_error_names_the_request_field(stub) -> None:  # type: ignore[no-untyped-def]
    alerts = stub(alerts_pb2_grpc.AlertServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await alerts.CreateAlert(
            alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(title="no severity")), timeout=10
        )
    assert info.value.code() == C.INVALID_ARGUMENT
    details = _details(info.value)
    fields = [v.field for v in details["BadRequest"].field_violations]  # type: ignore[attr-defined]
    assert "alert.severity" in fields
    assert details["RequestInfo"].request_id.startswith("req_")  # type: ignore[attr-defined]


async def test_not_found_and_conflict(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(alerts_pb2_grpc.AlertServiceStub).GetAlert(
            alerts_pb2.GetAlertRequest(alert_id="alt_nope"), timeout=10
        )
    assert info.value.code() == C.NOT_FOUND
    resource = _details(info.value)["ResourceInfo"]
    assert resource.resource_name == "/v1/alerts/alt_nope"  # type: ignore[attr-defined]
    assert resource.resource_type == "GET /v1/alerts/{alert_id}"  # type: ignore[attr-defined]

    tasks = stub(tasks_pb2_grpc.TaskServiceStub)
    done = next(t for t in simulator.state.octospine.tasks if t["status"] == "completed")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await tasks.CancelTask(tasks_pb2.CancelTaskRequest(task_id=done["id"]), timeout=10)
    assert info.value.code() == C.ABORTED


async def test_bad_request_fails_before_any_upstream_call(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    before = len(simulator.requests)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(devices_pb2_grpc.DeviceServiceStub).GetDevice(devices_pb2.GetDeviceRequest(), timeout=10)
    assert info.value.code() == C.INVALID_ARGUMENT
    [violation] = _details(info.value)["BadRequest"].field_violations  # type: ignore[attr-defined]
    assert violation.field == "device_id"
    assert len(simulator.requests) == before


async def test_upstream_down_is_unavailable(
    simulator: Simulator, tracer_provider, transport: str, upstream_extra: dict[str, object]
) -> None:  # type: ignore[no-untyped-def]
    settings = adapter_settings(simulator, transport=transport, upstream_extra=upstream_extra)
    dead = settings.model_copy(
        update={
            "upstreams": {
                **settings.upstreams,
                "openframe": settings.upstreams["openframe"].model_copy(
                    update={"base_url": "http://127.0.0.1:9"}
                ),
            }
        }
    )
    async with (
        MeshAdapter(dead, tracer_provider=tracer_provider) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await devices_pb2_grpc.DeviceServiceStub(ch).ListDevices(
                devices_pb2.ListDevicesRequest(), timeout=10
            )
    assert info.value.code() == C.UNAVAILABLE
    assert _details(info.value)["ErrorInfo"].reason == "UPSTREAM_CONNECT_FAILED"  # type: ignore[attr-defined]


async def test_deadline_cancels_the_upstream_request(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.faults.add(Fault(vendor="openframe", route=LIST, latency=5.0))
    started = asyncio.get_running_loop().time()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(devices_pb2_grpc.DeviceServiceStub).ListDevices(
            devices_pb2.ListDevicesRequest(), timeout=0.5
        )
    elapsed = asyncio.get_running_loop().time() - started
    assert info.value.code() == C.DEADLINE_EXCEEDED
    assert elapsed < 2.0
    # The upstream saw its client go away well before its 5 s answer.
    await simulator.wait_for(
        lambda: any(r.cancelled for r in simulator.find_requests(route=LIST)), timeout_s=3.0
    )
    [record] = simulator.find_requests(route=LIST)
    assert record.cancelled


async def test_response_size_cap(simulator: Simulator, tracer_provider) -> None:  # type: ignore[no-untyped-def]
    settings = adapter_settings(simulator)
    small = settings.model_copy(
        update={
            "upstreams": {
                **settings.upstreams,
                "openframe": settings.upstreams["openframe"].model_copy(update={"max_response_bytes": 2048}),
            }
        }
    )
    async with (
        MeshAdapter(small, tracer_provider=tracer_provider) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await devices_pb2_grpc.DeviceServiceStub(ch).ListDevices(
                devices_pb2.ListDevicesRequest(page_size=50), timeout=10
            )
    assert info.value.code() == C.RESOURCE_EXHAUSTED
    assert _details(info.value)["ErrorInfo"].reason == "UPSTREAM_RESPONSE_TOO_LARGE"  # type: ignore[attr-defined]


async def test_an_outage_logs_one_line_per_method_and_code_not_one_per_call(
    stub, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """telemetry.failure_log_interval_seconds (10 s): every call gets its status, the
    log gets the first failure of each kind (and later a line with a count)."""
    caplog.set_level(logging.INFO, logger="adapter.server.handlers")
    simulator.faults.add(Fault(vendor="openframe", route=LIST, status=503))
    codes = [(await _list_devices_error(stub)).code() for _ in range(20)]
    assert codes == [C.UNAVAILABLE] * 20
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub(devices_pb2_grpc.DeviceServiceStub).GetDevice(
            devices_pb2.GetDeviceRequest(device_id="no-such-device"), timeout=10
        )
    assert missing.value.code() == C.NOT_FOUND
    lines = [r.getMessage() for r in caplog.records if r.name == "adapter.server.handlers"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("/openframe.v1.DeviceService/ListDevices -> UNAVAILABLE: ")
    assert lines[1].startswith("/openframe.v1.DeviceService/GetDevice -> NOT_FOUND: ")


async def test_the_outage_lines_held_back_are_logged_when_the_adapter_stops(
    simulator: Simulator, tracer_provider, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """A burst of failures that ends inside the interval is not swallowed by a shutdown:
    the last line held back goes out, with how many like it there were."""
    caplog.set_level(logging.INFO, logger="adapter.server.handlers")
    simulator.faults.add(Fault(vendor="openframe", route=LIST, status=503))
    async with (
        MeshAdapter(adapter_settings(simulator), tracer_provider=tracer_provider) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch,
    ):
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await devices_pb2_grpc.DeviceServiceStub(ch).ListDevices(
                    devices_pb2.ListDevicesRequest(), timeout=10
                )
            assert info.value.code() == C.UNAVAILABLE
        assert len([r for r in caplog.records if r.name == "adapter.server.handlers"]) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "adapter.server.handlers"]
    assert len(lines) == 2, lines
    assert lines[1].startswith("/openframe.v1.DeviceService/ListDevices -> UNAVAILABLE: ")
    assert re.search(r" \(the last of 4 like it held back in the last \d+ s\)$", lines[1]), lines[1]
