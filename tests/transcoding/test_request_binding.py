"""Table tests: request message -> upstream method, URL, query, body, headers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from google.protobuf.message import Message
from octospine.v1 import (
    automations_pb2,
    common_pb2,
    integrations_pb2,
    pipelines_pb2,
    system_pb2,
    tasks_pb2,
    webhooks_pb2,
)
from openframe.v1 import alerts_pb2, devices_pb2

from adapter.transcoding.errors import BindingError

# (rpc, request, method, path, query, body (None = no body), extra headers)
CASES: list[tuple[str, Message, str, str, list[tuple[str, str]], Any, dict[str, str]]] = [
    (
        "/openframe.v1.DeviceService/ListDevices",
        devices_pb2.ListDevicesRequest(),
        "GET",
        "/v1/devices",
        [("page", "1"), ("per_page", "50")],
        None,
        {},
    ),
    (
        "/openframe.v1.DeviceService/ListDevices",
        devices_pb2.ListDevicesRequest(
            page_size=10,
            status=devices_pb2.DEVICE_STATUS_ONLINE,
            type=devices_pb2.DEVICE_TYPE_VIRTUAL_MACHINE,
        ),
        "GET",
        "/v1/devices",
        [("status", "online"), ("type", "virtual_machine"), ("page", "1"), ("per_page", "10")],
        None,
        {},
    ),
    (
        "/openframe.v1.DeviceService/ListDevices",
        devices_pb2.ListDevicesRequest(page_size=1000),  # clamped to max_page_size
        "GET",
        "/v1/devices",
        [("page", "1"), ("per_page", "100")],
        None,
        {},
    ),
    (
        "/openframe.v1.DeviceService/GetDevice",
        devices_pb2.GetDeviceRequest(device_id="dev 1/ä?"),
        "GET",
        "/v1/devices/dev%201%2F%C3%A4%3F",
        [],
        None,
        {},
    ),
    (
        "/openframe.v1.AlertService/CreateAlert",
        alerts_pb2.CreateAlertRequest(
            alert=alerts_pb2.Alert(
                title="Disk full",
                severity=alerts_pb2.SEVERITY_CRITICAL,
                device_id="dev_001",
                description="C: 99%",
            ),
            request_id="req-42",
        ),
        "POST",
        "/v1/alerts",
        [],
        {"title": "Disk full", "severity": "critical", "device_id": "dev_001", "description": "C: 99%"},
        {"idempotency-key": "req-42", "content-type": "application/json"},
    ),
    (
        "/openframe.v1.AlertService/ListAlerts",
        alerts_pb2.ListAlertsRequest(status=alerts_pb2.ALERT_STATUS_OPEN, severity=alerts_pb2.SEVERITY_HIGH),
        "GET",
        "/v1/alerts",
        [("status", "open"), ("severity", "high"), ("page", "1"), ("per_page", "50")],
        None,
        {},
    ),
    (
        "/openframe.v1.AlertService/GetAlert",
        alerts_pb2.GetAlertRequest(alert_id="alt_0001"),
        "GET",
        "/v1/alerts/alt_0001",
        [],
        None,
        {},
    ),
    (
        "/openframe.v1.AlertService/UpdateAlert",
        alerts_pb2.UpdateAlertRequest(
            alert=alerts_pb2.Alert(id="alt_0001", status=alerts_pb2.ALERT_STATUS_RESOLVED, title="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        "PATCH",
        "/v1/alerts/alt_0001",
        [],
        {"status": "resolved"},
        {},
    ),
    (
        "/openframe.v1.AlertService/UpdateAlert",  # masked but unset = cleared (merge-patch null)
        alerts_pb2.UpdateAlertRequest(
            alert=alerts_pb2.Alert(id="alt_0001"), update_mask=field_mask_pb2.FieldMask(paths=["description"])
        ),
        "PATCH",
        "/v1/alerts/alt_0001",
        [],
        {"description": None},
        {},
    ),
    (
        "/openframe.v1.AlertService/UpdateAlert",  # no mask: every field set
        alerts_pb2.UpdateAlertRequest(
            alert=alerts_pb2.Alert(id="alt_0001", status=alerts_pb2.ALERT_STATUS_ACKNOWLEDGED)
        ),
        "PATCH",
        "/v1/alerts/alt_0001",
        [],
        {"id": "alt_0001", "status": "acknowledged"},
        {},
    ),
    (
        "/octospine.v1.SystemService/GetHealth",
        system_pb2.GetHealthRequest(),
        "GET",
        "/api/health",
        [],
        None,
        {},
    ),
    (
        "/octospine.v1.PipelineService/CreatePipeline",
        pipelines_pb2.CreatePipelineRequest(
            pipeline=pipelines_pb2.Pipeline(
                name="External Data Pipeline",
                source=pipelines_pb2.PipelineSource(
                    type="api",
                    endpoint="https://your-api.com/data",
                    authentication=common_pb2.Authentication(type="bearer", token="tok"),
                ),
                transformations=[
                    pipelines_pb2.Transformation(type="clean", parameters={"removeNulls": True}),
                    pipelines_pb2.Transformation(type="validate", parameters={"schema": "your-schema"}),
                ],
                destination=pipelines_pb2.PipelineDestination(type="database", table="processed_data"),
            )
        ),
        "POST",
        "/api/pipelines",
        [],
        {
            "name": "External Data Pipeline",
            "source": {
                "type": "api",
                "endpoint": "https://your-api.com/data",
                "authentication": {"type": "bearer", "token": "tok"},
            },
            "transformations": [
                {"type": "clean", "parameters": {"removeNulls": True}},
                {"type": "validate", "parameters": {"schema": "your-schema"}},
            ],
            "destination": {"type": "database", "table": "processed_data"},
        },
        {},
    ),
    (
        "/octospine.v1.PipelineService/DeletePipeline",
        pipelines_pb2.DeletePipelineRequest(pipeline_id="pip_1"),
        "DELETE",
        "/api/pipelines/pip_1",
        [],
        None,
        {},
    ),
    (
        "/octospine.v1.PipelineService/ListPipelines",
        pipelines_pb2.ListPipelinesRequest(status=pipelines_pb2.PIPELINE_STATUS_PAUSED, page_size=5),
        "GET",
        "/api/pipelines",
        [("status", "paused"), ("page", "1"), ("per_page", "5")],
        None,
        {},
    ),
    (
        "/octospine.v1.AutomationService/UpdateAutomation",
        automations_pb2.UpdateAutomationRequest(
            automation=automations_pb2.Automation(
                id="aut_1", status=automations_pb2.AUTOMATION_STATUS_DISABLED
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        "PATCH",
        "/api/automations/aut_1",
        [],
        {"status": "disabled"},
        {},
    ),
    (
        "/octospine.v1.IntegrationService/CreateIntegration",
        integrations_pb2.CreateIntegrationRequest(
            integration=integrations_pb2.Integration(
                type="database",
                name="External Database",
                configuration={"type": "postgresql", "host": "db", "port": 5432, "password": "pw"},
            )
        ),
        "POST",
        "/api/integrations",
        [],
        {
            "type": "database",
            "name": "External Database",
            "configuration": {"type": "postgresql", "host": "db", "port": 5432, "password": "pw"},
        },
        {},
    ),
    (
        "/octospine.v1.TaskService/CreateTask",
        tasks_pb2.CreateTaskRequest(
            task=tasks_pb2.Task(
                name="Database Sync",
                type="data_sync",
                parameters={"query": "SELECT 1"},
                schedule=common_pb2.Schedule(
                    type=common_pb2.SCHEDULE_TYPE_INTERVAL, value=struct_pb2.Value(number_value=3600)
                ),
            )
        ),
        "POST",
        "/api/tasks",
        [],
        {
            "name": "Database Sync",
            "type": "data_sync",
            "parameters": {"query": "SELECT 1"},
            "schedule": {"type": "interval", "value": 3600},
        },
        {},
    ),
    (
        "/octospine.v1.TaskService/CancelTask",  # body "*": path fields stay out of the body
        tasks_pb2.CancelTaskRequest(task_id="tsk_9", reason="superseded"),
        "POST",
        "/api/tasks/tsk_9/cancel",
        [],
        {"reason": "superseded"},
        {},
    ),
    (
        "/octospine.v1.TaskService/ListTasks",
        tasks_pb2.ListTasksRequest(type="data_sync", status=tasks_pb2.TASK_STATUS_RUNNING),
        "GET",
        "/api/tasks",
        [("status", "running"), ("type", "data_sync"), ("page", "1"), ("per_page", "50")],
        None,
        {},
    ),
    (
        "/octospine.v1.WebhookService/CreateWebhook",
        webhooks_pb2.CreateWebhookRequest(
            webhook=webhooks_pb2.Webhook(
                name="Notify",
                type=webhooks_pb2.WEBHOOK_TYPE_OUTGOING,
                url="https://x/y",
                events=["task.completed", "alert.new"],
                headers={"Authorization": "Bearer t"},
                active=True,
            )
        ),
        "POST",
        "/api/webhooks",
        [],
        {
            "name": "Notify",
            "type": "outgoing",
            "url": "https://x/y",
            "events": ["task.completed", "alert.new"],
            "headers": {"Authorization": "Bearer t"},
            "active": True,
        },
        {},
    ),
    (  # a well-known type as the body: its JSON form, not its fields
        "/octospine.v1.WebhookService/FireIncomingWebhook",
        webhooks_pb2.FireIncomingWebhookRequest(
            endpoint="external-event",
            payload=struct_pb2.Struct(fields={"external_id": struct_pb2.Value(string_value="e1")}),
        ),
        "POST",
        "/webhooks/external-event",
        [],
        {"external_id": "e1"},
        {},
    ),
    (  # a multi-segment path variable keeps its slashes
        "/octospine.v1.WebhookService/FireIncomingWebhook",
        webhooks_pb2.FireIncomingWebhookRequest(endpoint="partners/acme"),
        "POST",
        "/webhooks/partners/acme",
        [],
        {},
        {},
    ),
]


@pytest.mark.parametrize(
    ("rpc", "message", "method", "path", "query", "body", "headers"),
    CASES,
    ids=[f"{c[0].rsplit('/', 1)[1]}-{i}" for i, c in enumerate(CASES)],
)
def test_binding(transcoder, rpc, message, method, path, query, body, headers) -> None:  # type: ignore[no-untyped-def]
    bound = transcoder(rpc).bind(message).request
    assert bound.method == method
    assert bound.path == path
    assert list(bound.query) == query
    if body is None:
        assert bound.body is None
    else:
        assert bound.body is not None
        assert orjson.loads(bound.body) == body
    sent = dict(bound.headers)
    for name, value in headers.items():
        assert sent[name] == value


def test_timestamps_in_bodies_are_rfc3339(transcoder) -> None:  # type: ignore[no-untyped-def]
    # Output-only in practice, but the codec must still spell them the vendors' way.
    moment = dt.datetime(2026, 11, 25, 12, 0, 0, 250000, tzinfo=dt.UTC)
    req = alerts_pb2.UpdateAlertRequest(alert=alerts_pb2.Alert(id="a", created_at=moment))
    body = orjson.loads(transcoder("/openframe.v1.AlertService/UpdateAlert").bind(req).request.body)
    assert body["created_at"] == "2026-11-25T12:00:00.25Z"


def test_idempotency_key_makes_post_retryable(transcoder) -> None:  # type: ignore[no-untyped-def]
    t = transcoder("/openframe.v1.AlertService/CreateAlert")
    assert not t.bind(alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(title="x"))).request.idempotent
    keyed = t.bind(alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(title="x"), request_id="k")).request
    assert keyed.idempotent
    assert keyed.idempotency_key == "k"
    assert "request_id" not in orjson.loads(keyed.body or b"{}")


BAD: list[tuple[str, Message, str]] = [
    ("/openframe.v1.DeviceService/GetDevice", devices_pb2.GetDeviceRequest(), "device_id"),
    ("/openframe.v1.AlertService/UpdateAlert", alerts_pb2.UpdateAlertRequest(), "alert.id"),
    (
        "/openframe.v1.AlertService/UpdateAlert",
        alerts_pb2.UpdateAlertRequest(
            alert=alerts_pb2.Alert(id="a"), update_mask=field_mask_pb2.FieldMask(paths=["nope"])
        ),
        "update_mask",
    ),
    ("/openframe.v1.DeviceService/ListDevices", devices_pb2.ListDevicesRequest(page_size=-1), "page_size"),
    (
        "/openframe.v1.DeviceService/ListDevices",
        devices_pb2.ListDevicesRequest(page_token="garbage!"),
        "page_token",
    ),
]


@pytest.mark.parametrize(("rpc", "message", "field"), BAD)
def test_bad_requests_name_the_field(transcoder, rpc, message, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BindingError) as info:
        transcoder(rpc).bind(message)
    assert info.value.field == field


def _one_map_in_two_orders() -> tuple[alerts_pb2.CreateAlertRequest, alerts_pb2.CreateAlertRequest]:
    """The same request parsed from its map entries forward and backward, such that the
    two maps iterate in different orders. protobuf (upb) iterates a map in its hash
    table's order, seeded per process: with 20 keys about one process in 150 iterates
    both alike (measured), so larger maps are tried until the orders differ."""
    for size in (20, 64, 256, 1024):
        entries = []
        for i in range(size):
            one = alerts_pb2.CreateAlertRequest(alert=alerts_pb2.Alert(metadata={f"k{i}": i}))
            entries.append(one.SerializeToString())
        forward = alerts_pb2.CreateAlertRequest.FromString(b"".join(entries))
        backward = alerts_pb2.CreateAlertRequest.FromString(b"".join(reversed(entries)))
        if list(forward.alert.metadata.keys()) != list(backward.alert.metadata.keys()):
            return forward, backward
    raise AssertionError("no map of up to 1024 keys iterated in two orders: the premise does not hold")


def test_same_request_same_bytes_whatever_the_map_order(transcoder) -> None:  # type: ignore[no-untyped-def]
    # A Go client marshals maps in random order; a retried create under one
    # Idempotency-Key must still send byte-identical bodies.
    forward, backward = _one_map_in_two_orders()
    assert list(forward.alert.metadata.keys()) != list(backward.alert.metadata.keys())  # the premise
    assert forward == backward
    t = transcoder("/openframe.v1.AlertService/CreateAlert")
    assert t.bind(forward).request.body == t.bind(backward).request.body
