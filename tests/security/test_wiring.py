"""The composition root's security wiring: the gate is the first interceptor when a
policy is configured, refused calls never reach the vendor, the caller is in
``current_principal`` below the gate, and the safe defaults stop an unsafe start."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc

from adapter.assembly.security_parts import is_loopback
from adapter.config.settings import ConfigError, Settings
from adapter.runtime import MeshAdapter
from adapter.security.identity import current_principal
from simulator import Simulator
from tests.conftest import adapter_settings

from ..events.kafka_fixtures import wait_until
from .jwt_helpers import AUDIENCE, ISSUER, Issuer

POLICY = """
[[grants]]
principals = ["jwt:reader-*", "jwt:writer"]
permissions = ["openframe.*.read", "octospine.*.read"]

[[grants]]
principals = ["jwt:writer"]
permissions = ["openframe.alerts.write"]
"""


def secured(sim: Simulator, tmp_path: Path, issuer: Issuer, **overrides: Any) -> Settings:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    jwks = issuer.write(tmp_path / "jwks.json")
    security = {
        "policy_file": policy,
        "jwt": {"jwks_file": jwks, "issuer": ISSUER, "audiences": [AUDIENCE]},
        **overrides,
    }
    return adapter_settings(sim, security=security)


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest_asyncio.fixture
async def secured_adapter(simulator: Simulator, tmp_path: Path, issuer: Issuer) -> AsyncIterator[MeshAdapter]:
    adapter = MeshAdapter(secured(simulator, tmp_path, issuer))
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop(0)


@pytest_asyncio.fixture
async def secured_channel(secured_adapter: MeshAdapter) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured_adapter.port}") as channel:
        yield channel


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_gate_is_first_and_decides_before_the_vendor(
    secured_adapter: MeshAdapter, secured_channel: grpc.aio.Channel, simulator: Simulator, issuer: Issuer
) -> None:
    assert secured_adapter.security is not None and secured_adapter.security.authorizer is not None
    assert secured_adapter.server is not None
    assert secured_adapter.server._interceptors[0] is secured_adapter.security.authorizer
    alerts = alerts_pb2_grpc.AlertServiceStub(secured_channel)
    before = len(simulator.requests)

    with pytest.raises(grpc.aio.AioRpcError) as no_token:
        await alerts.ListAlerts(alerts_pb2.ListAlertsRequest())
    assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED

    create = alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(title="x", device_id="dev_1"))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await alerts.CreateAlert(create, metadata=bearer(issuer.token("reader-1")))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    status = rpc_status.from_call(denied.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.metadata["permission"], info.metadata["principal"]) == (
        "PERMISSION_DENIED",
        "openframe.alerts.write",
        "jwt:reader-1",
    )
    assert len(simulator.requests) == before  # neither refused call reached the vendor

    reader = bearer(issuer.token("reader-1"))
    await alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), metadata=reader)
    assert len(simulator.requests) == before + 1


async def test_the_caller_stack_sees_the_principal(
    secured_adapter: MeshAdapter, secured_channel: grpc.aio.Channel, issuer: Issuer
) -> None:
    seen: list[str] = []
    caller = secured_adapter.callers["openframe"]
    send = caller.send

    async def spy(request: Any, **kwargs: Any) -> Any:
        seen.append(current_principal().name)
        return await send(request, **kwargs)

    caller.send = spy  # type: ignore[method-assign]
    devices = devices_pb2_grpc.DeviceServiceStub(secured_channel)
    await devices.ListDevices(devices_pb2.ListDevicesRequest(), metadata=bearer(issuer.token("reader-7")))
    assert seen == ["jwt:reader-7"]


async def test_off_loopback_without_tls_and_policy_refuses_to_start(simulator: Simulator) -> None:
    settings = adapter_settings(simulator, grpc={"host": "0.0.0.0", "port": 0})
    with pytest.raises(ConfigError, match=r"security\.tls and security\.policy_file"):
        await MeshAdapter(settings).start()


async def test_insecure_switch_starts_off_loopback_with_a_warning(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    settings = adapter_settings(simulator, grpc={"host": "0.0.0.0", "port": 0}, security={"insecure": True})
    with caplog.at_level(logging.WARNING):
        async with MeshAdapter(settings) as adapter:
            assert adapter.security is not None
            assert adapter.security.reflection is False  # off loopback: reflection off by default
    assert any("security.insecure is set" in r.getMessage() for r in caplog.records)


async def test_jwt_without_a_policy_is_a_configuration_error(
    simulator: Simulator, tmp_path: Path, issuer: Issuer
) -> None:
    jwks = issuer.write(tmp_path / "jwks.json")
    settings = adapter_settings(
        simulator, security={"jwt": {"jwks_file": jwks, "issuer": ISSUER, "audiences": [AUDIENCE]}}
    )
    with pytest.raises(ConfigError, match="policy_file"):
        await MeshAdapter(settings).start()


async def test_unusable_certificate_files_stop_the_start(simulator: Simulator, tmp_path: Path) -> None:
    from .pki import Pki

    pki = Pki(tmp_path / "certs")
    mismatched = pki.tls_settings(key_file=pki.dir / "reader-key.pem")  # not the certificate's key
    missing = pki.tls_settings(cert_file=pki.dir / "nope.pem")
    for tls in (mismatched, missing):
        settings = adapter_settings(simulator, security={"tls": tls})
        with pytest.raises(ConfigError, match=r"security\.tls: the certificate files are unusable"):
            await MeshAdapter(settings).start()


async def test_audit_lines_for_writes_and_refusals_without_secrets(
    secured_channel: grpc.aio.Channel, simulator: Simulator, issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = alerts_pb2_grpc.AlertServiceStub(secured_channel)
    writer, reader = issuer.token("writer"), issuer.token("reader-2")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = ("traceparent", f"00-{trace}-00f067aa0ba902b7-01")
    create = alerts_pb2.CreateAlertRequest(
        alert=alerts_pb2.Alert(title="Disk full", severity=alerts_pb2.SEVERITY_HIGH, device_id="dev_001")
    )
    with caplog.at_level(logging.INFO, logger="meshadapter.audit"):
        await alerts.CreateAlert(create, metadata=(*bearer(writer), traceparent))
        await alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), metadata=bearer(writer))  # a read: no line
        with pytest.raises(grpc.aio.AioRpcError):
            await alerts.CreateAlert(create, metadata=(*bearer(reader), traceparent))
        with pytest.raises(grpc.aio.AioRpcError):  # allowed, but the request is invalid
            await alerts.UpdateAlert(alerts_pb2.UpdateAlertRequest(), metadata=bearer(writer))
        # The audit line is written as the call ends, which may be just after the
        # caller heard its status.
        await wait_until(
            lambda: sum(r.name == "meshadapter.audit" for r in caplog.records) >= 3,
            within=5,
            what="the third audit line",
        )
    lines = [r.__dict__ for r in caplog.records if r.name == "meshadapter.audit"]
    seen = [(r["audit"], r["principal"], r["method"].rsplit("/", 1)[1], r["outcome"]) for r in lines]
    assert seen == [
        ("call", "jwt:writer", "CreateAlert", "OK"),
        ("refused", "jwt:reader-2", "CreateAlert", "PERMISSION_DENIED"),
        ("call", "jwt:writer", "UpdateAlert", "INVALID_ARGUMENT"),
    ]
    call, refused, _ = lines
    assert (call["upstream_path"], call["audit_trace_id"]) == ("POST /v1/alerts", trace)
    assert (refused["upstream_path"], refused["audit_trace_id"]) == ("", trace)
    everything = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (writer, reader, "test-openframe-key"):
        assert secret not in everything


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("adapter.internal", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
