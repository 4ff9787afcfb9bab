"""The loop ``python -m adapter`` serves on: uvloop by default, asyncio's own when
chosen, asyncio's with one WARNING where uvloop cannot be imported. Checked on the
loop that runs (in this process), then on ``python -m adapter`` itself: which loop
its process has loaded (/proc/<pid>/maps), and that it answers calls on it."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import grpc
import pytest
from openframe.v1 import devices_pb2, devices_pb2_grpc

from adapter.event_loop import EventLoopChoice, run
from simulator import Simulator

from .adapter_process import against, listen_port, log_tail, spawn, terminate, wait_serving

uvloop = pytest.importorskip("uvloop")


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize(("choice", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio.unix_events")])
def test_run_serves_on_the_chosen_loop(choice: EventLoopChoice, module: str) -> None:
    assert run(_loop_type(), choice) == module


def test_without_uvloop_asyncio_serves_after_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    with caplog.at_level(logging.WARNING, logger="adapter.event_loop"):
        assert run(_loop_type(), "uvloop") == "asyncio.unix_events"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'set event_loop = "asyncio"' in warnings[0], warnings


def _uvloop_loaded(pid: int) -> bool:
    return "uvloop/loop.cpython" in Path(f"/proc/{pid}/maps").read_text()


def _get_device(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = devices_pb2_grpc.DeviceServiceStub(channel)
        return stub.GetDevice(devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=10).id


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps")
@pytest.mark.parametrize(("choice", "loaded"), [(None, True), ("asyncio", False)])
async def test_python_m_adapter_serves_on_its_loop(
    simulator: Simulator, tmp_path: Path, choice: str | None, loaded: bool
) -> None:
    port, log = listen_port(), tmp_path / "adapter.log"
    process = spawn(against(simulator, port, MESH_WORKERS="1", MESH_EVENT_LOOP=choice), log)
    try:
        await wait_serving(port, process=process, log=log)
        assert await asyncio.to_thread(_get_device, port) == "dev_001"
        assert _uvloop_loaded(process.pid) is loaded, log_tail(log)
        assert f"event loop: {'uvloop' if loaded else 'asyncio'}" in log.read_text(), log_tail(log)
    finally:
        terminate(process)
