"""What an operator scrapes: a MeshAdapter (events on, real Kafka, simulator) under
a little of every kind of traffic, then ``/metrics`` on its operator port must hold
every family docs/operations.md promises, with values that match the traffic; and
a JSON log line carries the trace id of the call that wrote it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshadapter.v1 import events_pb2, events_pb2_grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc, devices_pb2, devices_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from adapter.runtime import MeshAdapter
from adapter.telemetry.logs import configure_logging
from simulator import Fault, Simulator

from ..events.kafka_fixtures import BOOTSTRAP, consume_all, wait_until
from ..events.mesh_fixtures import mesh_settings

pytestmark = pytest.mark.kafka

#: Every family the operator's view promises (docs/operations.md), Prometheus names.
FAMILIES = {
    "rpc_server_duration_milliseconds",
    "http_client_request_duration_seconds",
    "meshadapter_upstream_retries",
    "meshadapter_upstream_rate_limit_remaining",
    "meshadapter_upstream_circuit_breaker_state",
    "meshadapter_upstream_cache_lookups",
    "meshadapter_spool_depth",
    "meshadapter_spool_bytes",
    "meshadapter_spool_oldest_age_seconds",
    "meshadapter_delivery_delivered",
    "meshadapter_delivery_retried",
    "meshadapter_delivery_dead_lettered",
    "meshadapter_delivery_failed_rounds",
    "meshadapter_delivery_failing_for_seconds",
    "meshadapter_kafka_producer_rebuilds",
    "meshadapter_events_accepted",
    "meshadapter_events_dead_lettered",
    "meshadapter_websocket_state",
    "meshadapter_websocket_reconnects",
    "meshadapter_websocket_crashes",
    "meshadapter_websocket_frames",
    "meshadapter_websocket_backfill_failures",
    "meshadapter_webhook_deliveries",
    "meshadapter_webhook_connections",
    "meshadapter_webhook_connection_refusals",
    "meshadapter_subscribe_streams",
    "meshadapter_subscribe_sent",
    "meshadapter_subscribe_kafka_unreachable",
    "meshadapter_large_payloads",
    "meshadapter_large_payloads_waiting",
    "meshadapter_health_watchers",
    "messaging_client_sent_messages",
    "messaging_client_consumed_messages",
}

#: Documented families a counter only exports once it first counts, which the
#: traffic below does not cause.
LATER = {
    "meshadapter_upstream_rate_limit_throttled",  # once the quota first makes a call wait
    "meshadapter_health_watch_refusals",  # once the first Watch is refused
    "meshadapter_upstream_retry_stopped",  # once a call stops retrying
    "meshadapter_events_duplicates",  # once a vendor event arrives twice
}

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "mesh-adapter.json"


def test_the_dashboard_reads_only_exported_families() -> None:
    """docs/grafana/mesh-adapter.json queries nothing the adapter does not export
    (the throttled counter appears once the quota first makes a call wait, the Watch
    refusals once the first Watch is refused, the stopped retries once a call stops retrying)."""
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(count|bucket|total)$", "", name)
        for expr in exprs
        for name in re.findall(r"([a-z_]+)\{", expr)
    }
    assert used <= FAMILIES | LATER, used - FAMILIES
    assert len(used) >= 15


def test_the_documented_families_are_the_checked_ones() -> None:
    """docs/operations.md's metrics table names exactly FAMILIES and LATER, so a family
    added to the code and the docs is checked here, and one dropped leaves no row.
    A row may name siblings by suffix: `meshadapter_spool_depth` / `_bytes`."""
    text = OPERATIONS.read_text()
    table = text[text.index("## Metrics") :]
    table = table[: table.index("\n## ", 1)]
    documented = set()
    for row in re.findall(r"^\| (`[^|]+)\|", table, re.M):
        first, *siblings = (re.sub(r"_total$", "", name) for name in re.findall(r"`([^`]+)`", row))
        stem = first.rsplit("_", 1)[0]
        documented |= {first, *(stem + sibling for sibling in siblings)}
    assert documented == FAMILIES | LATER, (
        f"documented, not checked: {sorted(documented - FAMILIES - LATER)}; "
        f"checked, not documented: {sorted((FAMILIES | LATER) - documented)}"
    )


@pytest_asyncio.fixture
async def operated(
    simulator: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> AsyncIterator[MeshAdapter]:
    adapter = MeshAdapter(mesh_settings(simulator, tmp_path, prefix), tracer_provider=tracer_provider)
    await adapter.start()
    assert adapter.events is not None and adapter.ops is not None
    for source in adapter.events.sources.values():
        await asyncio.wait_for(source.streaming.wait(), 10)
    try:
        yield adapter
    finally:
        await adapter.stop(0)


async def _scrape(port: int) -> dict[str, list[Sample]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as answer:
        assert answer.status == 200
        text = await answer.text()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(samples: list[Sample], suffix: str = "", **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_every_family_is_exported_with_values_that_match_the_traffic(
    operated: MeshAdapter, simulator: Simulator, prefix: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{operated.port}") as channel:
        devices = devices_pb2_grpc.DeviceServiceStub(channel)
        for _ in range(3):  # one miss, then cache hits
            await devices.ListDevices(devices_pb2.ListDevicesRequest(page_size=5), timeout=10)
        simulator.faults.add(Fault(vendor="openframe", route="/v1/alerts/{alert_id}", status=503, times=1))
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await alerts_pb2_grpc.AlertServiceStub(channel).GetAlert(
                alerts_pb2.GetAlertRequest(alert_id="alt_missing_metrics"), timeout=10
            )
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND  # after one retried 503
        created = await simulator.generate_events("openframe", "alert", count=3)
        await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=len(created))
        simulator.hubs["openframe"].publish("alerts", "alert_snoozed", {"id": "alt_x"})  # nobody routes it
        await consume_all(BOOTSTRAP, f"{prefix}meshadapter.deadletter", expected=1)
        assert operated.events is not None and operated.events.webhook is not None
        async with (
            aiohttp.ClientSession() as web,
            web.post(  # an unsigned delivery: refused
                f"http://127.0.0.1:{operated.events.webhook.port}/webhooks/octospine", data=b"{}"
            ) as refused,
        ):
            assert refused.status == 401
        stream = events_pb2_grpc.EventServiceStub(channel).Subscribe(
            events_pb2.SubscribeRequest(
                topics=[f"{prefix}openframe.alerts"], start_from=events_pb2.START_FROM_EARLIEST
            )
        )
        first = await stream.read()
        assert first.key
        large = alerts_pb2.CreateAlertRequest(
            alert=alerts_pb2.Alert(title="large", severity=alerts_pb2.SEVERITY_LOW, description="x" * 70_000)
        )  # bound on the worker, and so is its answer, which echoes it
        await alerts_pb2_grpc.AlertServiceStub(channel).CreateAlert(large, timeout=10)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        await watch.read()
        assert operated.ops is not None
        metrics = await _scrape(operated.ops.port)
        stream.cancel()
        watch.cancel()

    missing_families = FAMILIES - set(metrics)
    assert not missing_families, f"not exported: {sorted(missing_families)}; have {sorted(metrics)}"
    undocumented = set(metrics) - FAMILIES - LATER - {"target_info"}  # the resource, by the SDK
    assert not undocumented, f"exported, not in docs/operations.md: {sorted(undocumented)}"

    rpcs = metrics["rpc_server_duration_milliseconds"]
    assert _value(rpcs, "_count", rpc_method="ListDevices", rpc_grpc_status_code="0") == 3
    assert _value(rpcs, "_count", rpc_method="GetAlert", rpc_grpc_status_code="5") == 1
    http = metrics["http_client_request_duration_seconds"]
    assert _value(http, "_count", url_template="/v1/alerts/{alert_id}", http_response_status_code="503") == 1
    assert _value(http, "_count", url_template="/v1/alerts/{alert_id}", http_response_status_code="404") == 1
    assert _value(http, "_count", url_template="/v1/devices") == 1  # the other two were cache hits
    assert _value(metrics["meshadapter_upstream_cache_lookups"], "_total", result="hit") == 2
    assert _value(metrics["meshadapter_upstream_retries"], "_total") == 1
    assert _value(metrics["meshadapter_events_accepted"], "_total") >= 3
    dead = metrics["meshadapter_events_dead_lettered"]
    assert _value(dead, "_total", source="openframe", reason="UNKNOWN_EVENT_TYPE") == 1
    assert _value(metrics["meshadapter_webhook_deliveries"], "_total") == 1
    assert _value(metrics["meshadapter_webhook_connection_refusals"], "_total") == 0
    assert _value(metrics["meshadapter_webhook_connections"]) == 0  # the delivery's ended
    assert _value(metrics["meshadapter_delivery_delivered"], "_total") >= 3
    assert _value(metrics["messaging_client_sent_messages"], "_total", messaging_system="kafka") >= 3
    assert _value(metrics["messaging_client_consumed_messages"], "_total") >= 1
    assert _value(metrics["meshadapter_subscribe_streams"]) == 1
    assert _value(metrics["meshadapter_subscribe_kafka_unreachable"], "_total") == 0
    assert _value(metrics["meshadapter_large_payloads"], "_total", kind="request") == 1
    assert _value(metrics["meshadapter_large_payloads"], "_total", kind="answer") == 1
    assert _value(metrics["meshadapter_large_payloads_waiting"]) == 0
    assert _value(metrics["meshadapter_health_watchers"]) == 1
    assert _value(metrics["meshadapter_websocket_state"], upstream="openframe", state="streaming") == 1
    assert _value(metrics["meshadapter_websocket_state"], upstream="openframe", state="failed") == 0
    assert _value(metrics["meshadapter_spool_depth"]) >= 0
    assert _value(metrics["meshadapter_upstream_rate_limit_remaining"], upstream="openframe") > 0


async def test_readyz_follows_health_and_healthz_stays_alive(
    operated: MeshAdapter, simulator: Simulator
) -> None:
    assert operated.ops is not None and operated.events is not None
    base = f"http://127.0.0.1:{operated.ops.port}"
    stream = operated.events.sources["openframe"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/readyz") as ready:
            assert ready.status == 200
        # The vendor revokes the key: the stream reconnects, is refused, and stays FAILED.
        simulator.faults.add(Fault(vendor="openframe", route="/v1/ws", status=401))
        simulator.ws_drop("openframe")
        await wait_until(lambda: stream.state.value == "failed", within=10, what="the stream to fail")
        async with http.get(f"{base}/readyz") as ready:
            assert ready.status == 503
            body = await ready.json()
            reason = body["parts"]["meshadapter.events.openframe"]
            assert reason.startswith("not serving: ") and "401" in reason, reason
            assert body["parts"]["meshadapter.events.octospine"] == "serving"
        async with http.get(f"{base}/healthz") as alive:
            assert alive.status == 200


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)  # the root handlers are restored by tests/conftest.py
    yield out


async def test_a_json_log_line_carries_the_trace_of_the_call_that_wrote_it(
    adapter: MeshAdapter, span_exporter: InMemorySpanExporter, json_logs: io.StringIO
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{adapter.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await alerts_pb2_grpc.AlertServiceStub(channel).GetAlert(
                alerts_pb2.GetAlertRequest(alert_id="alt_missing_logs"), timeout=10
            )
    [server] = [s for s in span_exporter.get_finished_spans() if s.name.endswith("/GetAlert")]
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    [line] = [entry for entry in lines if "GetAlert -> NOT_FOUND" in entry["message"]]
    assert line["trace_id"] == format(server.context.trace_id, "032x")
    assert line["span_id"] == format(server.context.span_id, "016x")
    assert line["level"] == "INFO" and line["logger"].startswith("adapter.")
    logging.getLogger("adapter").info("no span here")
    outside = json.loads(json_logs.getvalue().splitlines()[-1])
    assert not outside.get("trace_id")
