"""``make run SECURE=1``'s pieces (scripts/demo_secure.py): its certificates and
policy give reader, writer and outsider what the README says they have."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc

from adapter.runtime import MeshAdapter
from simulator import Simulator
from tests.conftest import adapter_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_secure(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # as when scripts/demo.py runs
    return importlib.import_module("demo_secure")


async def code_of(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


async def test_reader_writer_outsider(demo_secure: ModuleType, simulator: Simulator, tmp_path: Path) -> None:
    security = demo_secure.prepare(tmp_path)
    assert (tmp_path / "var" / "dev-certs" / "outsider-key.pem").stat().st_mode & 0o077 == 0
    create = alerts_pb2.CreateAlertRequest(
        alert=alerts_pb2.Alert(title="Disk full", severity=alerts_pb2.SEVERITY_HIGH, device_id="dev_001")
    )
    codes: dict[tuple[str, str], str] = {}
    async with MeshAdapter(adapter_settings(simulator, security=security)) as adapter:
        for who in ("reader", "writer", "outsider"):
            async with demo_secure.secure_channel(tmp_path, adapter.port, who) as channel:
                devices = devices_pb2_grpc.DeviceServiceStub(channel)
                alerts = alerts_pb2_grpc.AlertServiceStub(channel)
                codes[who, "list"] = await code_of(devices.ListDevices(devices_pb2.ListDevicesRequest()))
                codes[who, "create"] = await code_of(alerts.CreateAlert(create))
                reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])
                )
                codes[who, "reflection"] = await code_of(reflection.read())
    assert codes == {
        ("reader", "list"): "OK",
        ("reader", "create"): "PERMISSION_DENIED",
        ("reader", "reflection"): "OK",
        ("writer", "list"): "OK",
        ("writer", "create"): "OK",
        ("writer", "reflection"): "OK",
        ("outsider", "list"): "PERMISSION_DENIED",
        ("outsider", "create"): "PERMISSION_DENIED",
        ("outsider", "reflection"): "PERMISSION_DENIED",
    }
