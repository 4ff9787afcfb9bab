"""The event path behind the envoy front, on a real broker: a call answered inside
Envoy makes its vendor event a Kafka record (CloudEvents headers, trace context), and
``EventService/Subscribe``, routed by Envoy to grpc.aio, streams it back; SIGTERM
ends with the spool closed and nothing pending."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import grpc
import pytest
from meshadapter.v1 import events_pb2, events_pb2_grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from simulator import Simulator

from ..adapter_process import against, listen_port, log_tail, spawn, wait_serving
from .kafka_fixtures import BOOTSTRAP, consume_all
from .mesh_fixtures import headers

pytest.importorskip("pyvoy", reason="the envoy extra (make venv installs it)")

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = [pytest.mark.usefixtures("kafka_bootstrap"), pytest.mark.timeout(180)]


async def test_an_event_behind_the_envoy_front(simulator: Simulator, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    port = listen_port()
    log = tmp_path / "adapter.log"
    env = against(
        simulator,
        port,
        MESH_GRPC__FRONT="envoy",
        MESH_GRPC__DRAIN_SECONDS="0",
        MESH_WORKERS="1",
        MESH_EVENTS__ENABLED="true",
        MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS=BOOTSTRAP,
        MESH_EVENTS__SPOOL__PATH=str(tmp_path / "spool" / "events.db"),
        MESH_EVENTS__TOPIC_PREFIX=prefix,
        MESH_EVENTS__WEBHOOK__PORT="0",
    )
    process = spawn(env, log)
    try:
        await wait_serving(port, process=process, log=log, name="adapter behind Envoy", within=60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            alert = await alerts_pb2_grpc.AlertServiceStub(channel).CreateAlert(
                alerts_pb2.CreateAlertRequest(
                    alert=alerts_pb2.Alert(
                        title="Behind Envoy", severity=alerts_pb2.SEVERITY_HIGH, device_id="dev_001"
                    )
                ),
                timeout=10,
            )
            topic = f"{prefix}openframe.alerts"
            records = await consume_all(BOOTSTRAP, topic, expected=1, within=60)
            [record] = [r for r in records if r.key == alert.id.encode()]
            h = headers(record)
            assert h["ce_type"] == "io.openframe.alert.created" and h["ce_subject"] == alert.id
            assert h["traceparent"].startswith("00-")
            stream = events_pb2_grpc.EventServiceStub(channel).Subscribe(
                events_pb2.SubscribeRequest(topics=[topic], start_from=events_pb2.START_FROM_EARLIEST),
                timeout=30,
            )
            event = await stream.read()
            stream.cancel()
            assert isinstance(event, events_pb2.Event)
            assert event.key == alert.id and event.type == "io.openframe.alert.created"
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 60)
        text = log.read_text()
        assert code == 0, log_tail(log)
        assert "closed with 0 events pending" in text and "stopped (exit 0)" in text, log_tail(log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
