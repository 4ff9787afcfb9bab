"""The policy file follows its edits; a broken edit keeps the last good policy in
force (and says so in the log) instead of opening or closing the door."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import grpc
import pytest
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc

from adapter.runtime import MeshAdapter
from adapter.security.policy import PolicyError
from simulator import Simulator
from tests.conftest import adapter_settings

from .jwt_helpers import AUDIENCE, ISSUER, Issuer

READ = '[[grants]]\nprincipals = ["jwt:svc-a"]\npermissions = ["openframe.devices.read"]\n'
READ_AND_ALERTS = READ + '[[grants]]\nprincipals = ["jwt:svc-a"]\npermissions = ["openframe.alerts.read"]\n'
BROKEN = '[[grants]]\nprincipals = ["jwt:svc-a"\npermissions = '  # not TOML
WRONG_SHAPE = '[[grants]]\nprincipal = "jwt:svc-a"\n'  # TOML, but not a policy


def replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.replace(path)


async def code_of(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


async def test_a_broken_policy_keeps_the_last_good_one(
    simulator: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = Issuer()
    policy = tmp_path / "policy.toml"
    policy.write_text(READ)
    settings = adapter_settings(
        simulator,
        security={
            "policy_file": policy,
            "jwt": {
                "jwks_file": issuer.write(tmp_path / "jwks.json"),
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
            },
            "reload_interval_seconds": 0.05,
        },
    )
    metadata = (("authorization", f"Bearer {issuer.token('svc-a')}"),)
    async with (
        MeshAdapter(settings) as adapter,
        grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as channel,
    ):
        assert adapter.security is not None and adapter.security.policy is not None
        reloading = adapter.security.policy
        devices = devices_pb2_grpc.DeviceServiceStub(channel)
        alerts = alerts_pb2_grpc.AlertServiceStub(channel)

        def list_devices() -> object:
            return devices.ListDevices(devices_pb2.ListDevicesRequest(), metadata=metadata)

        def list_alerts() -> object:
            return alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), metadata=metadata)

        assert await code_of(list_devices()) == "OK"
        assert await code_of(list_alerts()) == "PERMISSION_DENIED"

        async def until(condition: object, what: str) -> None:
            deadline = time.monotonic() + 10
            while not condition():  # type: ignore[operator]
                assert time.monotonic() < deadline, f"waited for {what}"
                await code_of(list_devices())  # a call checks the file (at most every 50 ms)
                await asyncio.sleep(0.06)

        for bad in (BROKEN, WRONG_SHAPE):
            failures = reloading.failures
            with caplog.at_level(logging.ERROR, logger="adapter.security.reloading"):
                replace(policy, bad)
                await until(lambda f=failures: reloading.failures > f, "the broken policy to be noticed")
            # The last good policy still decides, both ways.
            assert await code_of(list_devices()) == "OK"
            assert await code_of(list_alerts()) == "PERMISSION_DENIED"
        logged = [r.getMessage() for r in caplog.records if "keeping the last good version" in r.getMessage()]
        assert len(logged) == 2  # once per bad version, not once per call
        assert "not valid TOML" in logged[0] and "unknown key(s) ['principal']" in logged[1]

        replace(policy, READ_AND_ALERTS)  # a good edit is taken
        await until(lambda: reloading.reloads >= 1, "the fixed policy")
        assert await code_of(list_alerts()) == "OK"


async def test_a_broken_policy_at_start_stops_the_start(simulator: Simulator, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("grants: [oops")
    settings = adapter_settings(simulator, security={"policy_file": policy})
    with pytest.raises(PolicyError) as info:
        await MeshAdapter(settings).start()
    assert str(info.value).startswith(
        f"security.policy_file (MESH_SECURITY__POLICY_FILE): {policy}: not valid YAML"
    )
