"""Telemetry's last flush at shutdown: everything reaches a working collector, and a
collector that refuses or never answers holds shutdown no longer than
``telemetry.flush_timeout_seconds`` (it used to hold a SIGTERM for ~35 s)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from openframe.v1 import devices_pb2, devices_pb2_grpc

from adapter.config.settings import TelemetrySettings
from adapter.telemetry.metrics import build_meter_provider
from adapter.telemetry.shutdown import shut_down_telemetry
from adapter.telemetry.tracing import build_tracer_provider
from simulator import Simulator

from ..adapter_process import listen_port, log_tail, wait_serving
from ..conftest import OCTOSPINE_KEY, OPENFRAME_KEY
from .otlp_collector import Collector

ROOT = Path(__file__).resolve().parents[2]
SPANS = 1500  # three export batches of 512: more than one export is left at shutdown


@pytest.fixture(params=["refusing", "silent"])
def dead_collector(request: pytest.FixtureRequest) -> Iterator[str]:
    """An endpoint that refuses connections, or one whose listener never answers
    (connections queue in the backlog; an export waits for its whole timeout)."""
    if request.param == "refusing":
        yield f"http://127.0.0.1:{listen_port()}"
        return
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"
    finally:
        silent.close()


def export_to(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    # The OTLP exporters read their endpoint and timeout from the standard variables.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")  # longer than any bound below


def make_spans(settings: TelemetrySettings) -> tuple[Any, set[bytes]]:
    provider = build_tracer_provider(settings, set_global=False)
    tracer = provider.get_tracer("test")
    ids = set()
    for n in range(SPANS):
        with tracer.start_as_current_span(f"call {n}") as span:
            ids.add(span.get_span_context().span_id.to_bytes(8, "big"))
    return provider, ids


def test_a_working_collector_gets_every_span_at_shutdown(
    collector: tuple[Collector, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer, port = collector
    export_to(monkeypatch, f"http://127.0.0.1:{port}")
    provider, ids = make_spans(TelemetrySettings(otlp_enabled=True, flush_timeout_seconds=10))
    shut_down_telemetry(provider, None, timeout_s=10)
    assert sorted(servicer.span_ids()) == sorted(ids)


def test_a_dead_collector_holds_shutdown_no_longer_than_the_flush_timeout(
    dead_collector: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    export_to(monkeypatch, dead_collector)
    settings = TelemetrySettings(otlp_enabled=True, ops_enabled=False, flush_timeout_seconds=1.0)
    tracer_provider, _ = make_spans(settings)
    meter_provider, _ = build_meter_provider(settings)
    assert meter_provider is not None
    meter_provider.get_meter("test").create_counter("calls").add(1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        shut_down_telemetry(tracer_provider, meter_provider, timeout_s=1.0)
    took = time.monotonic() - started
    # The bound is the flush timeout plus ~1 s for the exporter to drop what is left;
    # without it, this took 7-30 s a batch of spans.
    assert took < 4.0, f"shutdown took {took:.1f} s"
    assert "telemetry.flush_timeout_seconds" in caplog.text
    # One warning says the spans are dropped; the exporter does not add one per batch.
    assert "already shutdown" not in caplog.text, caplog.text


def start_adapter(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "adapter"], cwd=ROOT, env=env, stdout=out, stderr=out)


async def test_sigterm_with_the_collector_down_ends_the_adapter_promptly(
    simulator: Simulator, dead_collector: str, tmp_path: Path
) -> None:
    port = listen_port()
    log = tmp_path / "adapter.log"
    env = {
        **os.environ,
        "MESH_LOG_FORMAT": "text",
        "MESH_WORKERS": "1",
        "MESH_GRPC__PORT": str(port),
        "MESH_GRPC__DRAIN_SECONDS": "0",
        "MESH_TELEMETRY__OPS_PORT": "0",
        "MESH_TELEMETRY__FLUSH_TIMEOUT_SECONDS": "1",
        "MESH_EVENTS__ENABLED": "false",
        "MESH_UPSTREAMS__OPENFRAME__BASE_URL": simulator.openframe_url,
        "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY": OPENFRAME_KEY,
        "MESH_UPSTREAMS__OCTOSPINE__BASE_URL": simulator.octospine_url,
        "MESH_UPSTREAMS__OCTOSPINE__AUTH__API_KEY": OCTOSPINE_KEY,
        "OTEL_EXPORTER_OTLP_ENDPOINT": dead_collector,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "30",
    }
    process = start_adapter(env, log)
    try:
        await wait_serving(port, process=process, log=log)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = devices_pb2_grpc.DeviceServiceStub(channel)
            for _ in range(20):  # spans and metrics left to export at SIGTERM
                await stub.ListDevices(devices_pb2.ListDevicesRequest(page_size=1), timeout=10)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.to_thread(process.wait, 30)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, log_tail(log)
    assert took < 8.0, f"SIGTERM took {took:.1f} s to end the adapter:\n{log_tail(log)}"
