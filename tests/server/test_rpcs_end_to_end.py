"""Every RPC of every service, through a real gRPC channel, the adapter and the
simulator over HTTP, against both simulator profiles (documented and drifted:
X-API-Key auth and cursor paging). Answers are compared with the simulator's
own state."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from octospine.v1 import (
    automations_pb2,
    automations_pb2_grpc,
    common_pb2,
    integrations_pb2,
    integrations_pb2_grpc,
    pipelines_pb2,
    pipelines_pb2_grpc,
    system_pb2,
    system_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)
from openframe.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    devices_pb2,
    devices_pb2_grpc,
    security_events_pb2,
    security_events_pb2_grpc,
)

from simulator import Simulator

pytestmark = pytest.mark.usefixtures("profile")
TIMEOUT = 10


async def _all_pages(call: Any, request_cls: Any, field: str, **filters: Any) -> list[Any]:
    items: list[Any] = []
    token = ""
    for _ in range(100):
        page = await call(request_cls(page_size=7, page_token=token, **filters), timeout=TIMEOUT)
        items.extend(getattr(page, field))
        token = page.next_page_token
        if not token:
            return items
    raise AssertionError("paging did not end")


async def test_devices(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    devices = stub(devices_pb2_grpc.DeviceServiceStub)
    listed = await _all_pages(devices.ListDevices, devices_pb2.ListDevicesRequest, "devices")
    assert sorted(d.id for d in listed) == sorted(r["id"] for r in simulator.state.openframe.devices)
    assert len({d.id for d in listed}) == len(listed)  # no page overlap

    online = await _all_pages(
        devices.ListDevices,
        devices_pb2.ListDevicesRequest,
        "devices",
        status=devices_pb2.DEVICE_STATUS_ONLINE,
    )
    assert online and all(d.status == devices_pb2.DEVICE_STATUS_ONLINE for d in online)

    one = await devices.GetDevice(devices_pb2.GetDeviceRequest(device_id=listed[0].id), timeout=TIMEOUT)
    truth = simulator.state.openframe.devices.get(listed[0].id)
    assert one.id == listed[0].id and one.hostname == truth["hostname"]


async def test_alert_lifecycle(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    alerts = stub(alerts_pb2_grpc.AlertServiceStub)
    created = await alerts.CreateAlert(
        alerts_pb2.CreateAlertRequest(
            alert=alerts_pb2.Alert(
                title="Disk almost full",
                severity=alerts_pb2.SEVERITY_HIGH,
                device_id="dev_001",
                description="C: 97%",
            )
        ),
        timeout=TIMEOUT,
    )
    assert created.id and created.status == alerts_pb2.ALERT_STATUS_OPEN
    assert created.created_at.seconds > 0
    assert simulator.state.openframe.alerts.get(created.id)["title"] == "Disk almost full"

    got = await alerts.GetAlert(alerts_pb2.GetAlertRequest(alert_id=created.id), timeout=TIMEOUT)
    assert got == created

    updated = await alerts.UpdateAlert(
        alerts_pb2.UpdateAlertRequest(
            alert=alerts_pb2.Alert(id=created.id, status=alerts_pb2.ALERT_STATUS_RESOLVED, title="not sent"),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        timeout=TIMEOUT,
    )
    assert updated.status == alerts_pb2.ALERT_STATUS_RESOLVED
    assert updated.title == "Disk almost full"  # unmasked fields untouched

    open_alerts = await _all_pages(
        alerts.ListAlerts, alerts_pb2.ListAlertsRequest, "alerts", status=alerts_pb2.ALERT_STATUS_OPEN
    )
    truth = {a["id"] for a in simulator.state.openframe.alerts if a["status"] == "open"}
    assert {a.id for a in open_alerts} == truth
    assert created.id not in truth


async def test_security_events(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    events = stub(security_events_pb2_grpc.SecurityEventServiceStub)
    listed = await _all_pages(
        events.ListSecurityEvents, security_events_pb2.ListSecurityEventsRequest, "security_events"
    )
    assert sorted(e.id for e in listed) == sorted(r["id"] for r in simulator.state.openframe.security_events)


async def test_health(stub) -> None:  # type: ignore[no-untyped-def]
    health = await stub(system_pb2_grpc.SystemServiceStub).GetHealth(
        system_pb2.GetHealthRequest(), timeout=TIMEOUT
    )
    assert health.status != system_pb2.HEALTH_STATUS_UNSPECIFIED
    assert health.components and health.version


async def test_pipeline_crud(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    pipelines = stub(pipelines_pb2_grpc.PipelineServiceStub)
    created = await pipelines.CreatePipeline(
        pipelines_pb2.CreatePipelineRequest(
            pipeline=pipelines_pb2.Pipeline(
                name="External Data Pipeline",
                source=pipelines_pb2.PipelineSource(
                    type="api",
                    endpoint="https://your-api.com/data",
                    authentication=common_pb2.Authentication(type="bearer", token="your-external-api-token"),
                ),
                transformations=[
                    pipelines_pb2.Transformation(type="clean", parameters={"removeNulls": True}),
                    pipelines_pb2.Transformation(type="enrich", parameters={"enrichments": ["geolocation"]}),
                ],
                destination=pipelines_pb2.PipelineDestination(type="database", table="processed_data"),
            )
        ),
        timeout=TIMEOUT,
    )
    assert created.id
    assert [t.type for t in created.transformations] == ["clean", "enrich"]
    assert created.transformations[1].parameters["enrichments"][0] == "geolocation"
    got = await pipelines.GetPipeline(
        pipelines_pb2.GetPipelineRequest(pipeline_id=created.id), timeout=TIMEOUT
    )
    assert got.destination.table == "processed_data"
    paused = await pipelines.UpdatePipeline(
        pipelines_pb2.UpdatePipelineRequest(
            pipeline=pipelines_pb2.Pipeline(id=created.id, status=pipelines_pb2.PIPELINE_STATUS_PAUSED),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        timeout=TIMEOUT,
    )
    assert paused.status == pipelines_pb2.PIPELINE_STATUS_PAUSED
    listed = await _all_pages(pipelines.ListPipelines, pipelines_pb2.ListPipelinesRequest, "pipelines")
    assert {p.id for p in listed} == {r["id"] for r in simulator.state.octospine.pipelines}
    await pipelines.DeletePipeline(
        pipelines_pb2.DeletePipelineRequest(pipeline_id=created.id), timeout=TIMEOUT
    )
    assert created.id not in simulator.state.octospine.pipelines


async def test_automation_crud(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    automations = stub(automations_pb2_grpc.AutomationServiceStub)
    created = await automations.CreateAutomation(
        automations_pb2.CreateAutomationRequest(
            automation=automations_pb2.Automation(
                name="External Event Handler",
                triggers=[
                    automations_pb2.Trigger(
                        type="webhook", endpoint="/webhooks/external-event", method="POST"
                    )
                ],
                steps=[
                    automations_pb2.Step(
                        name="process_event",
                        type="transform",
                        parameters={"mapping": {"external_id": "internal_id"}},
                    ),
                    automations_pb2.Step(
                        name="create_task", type="task", parameters={"template": "data_processing"}
                    ),
                ],
            )
        ),
        timeout=TIMEOUT,
    )
    assert [s.name for s in created.steps] == ["process_event", "create_task"]
    got = await automations.GetAutomation(
        automations_pb2.GetAutomationRequest(automation_id=created.id), timeout=TIMEOUT
    )
    assert got.triggers[0].endpoint == "/webhooks/external-event"
    disabled = await automations.UpdateAutomation(
        automations_pb2.UpdateAutomationRequest(
            automation=automations_pb2.Automation(
                id=created.id, status=automations_pb2.AUTOMATION_STATUS_DISABLED
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        timeout=TIMEOUT,
    )
    assert disabled.status == automations_pb2.AUTOMATION_STATUS_DISABLED
    listed = await _all_pages(
        automations.ListAutomations, automations_pb2.ListAutomationsRequest, "automations"
    )
    assert {a.id for a in listed} == {r["id"] for r in simulator.state.octospine.automations}
    await automations.DeleteAutomation(
        automations_pb2.DeleteAutomationRequest(automation_id=created.id), timeout=TIMEOUT
    )
    assert created.id not in simulator.state.octospine.automations


async def test_integration_crud(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    integrations = stub(integrations_pb2_grpc.IntegrationServiceStub)
    config = struct_pb2.Struct()
    config.update({"type": "postgresql", "host": "db.example", "port": 5432, "password": "s3cret"})
    created = await integrations.CreateIntegration(
        integrations_pb2.CreateIntegrationRequest(
            integration=integrations_pb2.Integration(
                type="database", name="External Database", configuration=config
            )
        ),
        timeout=TIMEOUT,
    )
    assert created.id and created.configuration["port"] == 5432
    got = await integrations.GetIntegration(
        integrations_pb2.GetIntegrationRequest(integration_id=created.id), timeout=TIMEOUT
    )
    assert got.name == "External Database"
    renamed = await integrations.UpdateIntegration(
        integrations_pb2.UpdateIntegrationRequest(
            integration=integrations_pb2.Integration(id=created.id, name="Warehouse"),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        ),
        timeout=TIMEOUT,
    )
    assert renamed.name == "Warehouse" and renamed.type == "database"
    listed = await _all_pages(
        integrations.ListIntegrations,
        integrations_pb2.ListIntegrationsRequest,
        "integrations",
        type="database",
    )
    assert created.id in {i.id for i in listed} and all(i.type == "database" for i in listed)
    await integrations.DeleteIntegration(
        integrations_pb2.DeleteIntegrationRequest(integration_id=created.id), timeout=TIMEOUT
    )
    assert created.id not in simulator.state.octospine.integrations


async def test_task_lifecycle(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    tasks = stub(tasks_pb2_grpc.TaskServiceStub)
    created = await tasks.CreateTask(
        tasks_pb2.CreateTaskRequest(
            task=tasks_pb2.Task(
                name="Database Sync",
                type="data_sync",
                parameters={"query": "SELECT * FROM external_table"},
                schedule=common_pb2.Schedule(
                    type=common_pb2.SCHEDULE_TYPE_INTERVAL, value=struct_pb2.Value(number_value=3600)
                ),
            )
        ),
        timeout=TIMEOUT,
    )
    assert created.schedule.value.number_value == 3600
    cancelled = await tasks.CancelTask(
        tasks_pb2.CancelTaskRequest(task_id=created.id, reason="superseded"), timeout=TIMEOUT
    )
    assert cancelled.status == tasks_pb2.TASK_STATUS_CANCELLED
    got = await tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=created.id), timeout=TIMEOUT)
    assert got.status == tasks_pb2.TASK_STATUS_CANCELLED
    listed = await _all_pages(tasks.ListTasks, tasks_pb2.ListTasksRequest, "tasks", type="data_sync")
    assert created.id in {t.id for t in listed}
    await tasks.DeleteTask(tasks_pb2.DeleteTaskRequest(task_id=created.id), timeout=TIMEOUT)
    assert created.id not in simulator.state.octospine.tasks


async def test_webhook_crud(stub, simulator: Simulator) -> None:  # type: ignore[no-untyped-def]
    webhooks = stub(webhooks_pb2_grpc.WebhookServiceStub)
    created = await webhooks.CreateWebhook(
        webhooks_pb2.CreateWebhookRequest(
            webhook=webhooks_pb2.Webhook(
                name="Notify External System",
                type=webhooks_pb2.WEBHOOK_TYPE_OUTGOING,
                url="http://127.0.0.1:9/hook",
                events=["task.completed", "alert.new"],
                authentication=common_pb2.Authentication(type="hmac", secret="whsec"),
                active=True,
            )
        ),
        timeout=TIMEOUT,
    )
    assert list(created.events) == ["task.completed", "alert.new"]
    got = await webhooks.GetWebhook(webhooks_pb2.GetWebhookRequest(webhook_id=created.id), timeout=TIMEOUT)
    assert got.type == webhooks_pb2.WEBHOOK_TYPE_OUTGOING
    quiet = await webhooks.UpdateWebhook(
        webhooks_pb2.UpdateWebhookRequest(
            webhook=webhooks_pb2.Webhook(id=created.id, active=False),
            update_mask=field_mask_pb2.FieldMask(paths=["active"]),
        ),
        timeout=TIMEOUT,
    )
    assert quiet.active is False
    listed = await _all_pages(webhooks.ListWebhooks, webhooks_pb2.ListWebhooksRequest, "webhooks")
    assert {w.id for w in listed} == {r["id"] for r in simulator.state.octospine.webhooks}
    await webhooks.DeleteWebhook(webhooks_pb2.DeleteWebhookRequest(webhook_id=created.id), timeout=TIMEOUT)
    assert created.id not in simulator.state.octospine.webhooks
