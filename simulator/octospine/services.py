"""OCTOSPINE state changes, the WebSocket events they push and the webhooks they send."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.config import SimulatorConfig
from simulator.errors import ApiError
from simulator.events import EventHub
from simulator.octospine.health import HealthModel
from simulator.octospine.task_runner import TaskRunner
from simulator.octospine.webhooks import WebhookDispatcher
from simulator.resources import ResourceService
from simulator.schemas import (
    AUTOMATION,
    AUTOMATION_STATUSES,
    INTEGRATION,
    PIPELINE,
    PIPELINE_STATUSES,
    SEVERITIES,
    TASK,
    TASK_STATUSES,
    WEBHOOK,
)
from simulator.store import ResourceStore
from simulator.wire import JsonObject, now_timestamp

FINISHED_TASK_STATUSES = ("completed", "failed")


@dataclass
class OctospineStores:
    """OCTOSPINE's stores: `sim.state.octospine`."""

    pipelines: ResourceStore
    automations: ResourceStore
    integrations: ResourceStore
    tasks: ResourceStore
    webhooks: ResourceStore
    alerts: ResourceStore

    @classmethod
    def empty(cls) -> OctospineStores:
        """Stores with nothing in them."""
        return cls(
            pipelines=ResourceStore("pip"),
            automations=ResourceStore("aut"),
            integrations=ResourceStore("int"),
            tasks=ResourceStore("tsk"),
            webhooks=ResourceStore("whk"),
            alerts=ResourceStore("oal"),
        )

    def clear(self) -> None:
        """Empties every store."""
        for store in (
            self.pipelines,
            self.automations,
            self.integrations,
            self.tasks,
            self.webhooks,
            self.alerts,
        ):
            store.clear()


class TaskService(ResourceService):
    """Tasks: a create starts a background run; cancel and delete stop it."""

    def __init__(self, store: ResourceStore) -> None:
        super().__init__(
            store=store,
            schema=TASK,
            filters={"status": TASK_STATUSES, "type": ()},
            time_filters={"updated_after": "updated_at"},
        )
        self.runner: TaskRunner | None = None

    def prepare_new(self, resource: JsonObject) -> JsonObject:
        return {**resource, "status": "pending", "progress": 0}

    def on_created(self, resource: JsonObject) -> None:
        if self.runner is not None:
            self.runner.start(resource["id"])

    def on_deleted(self, resource: JsonObject) -> None:
        if self.runner is not None:
            self.runner.stop(resource["id"])

    async def close_runner(self) -> None:
        """Stops every background run (shutdown, reset)."""
        if self.runner is not None:
            await self.runner.close()

    def cancel(self, task_id: str, reason: str = "") -> JsonObject:
        """Cancels a pending or running task (409 when it already finished)."""
        task = self.get(task_id)
        if task["status"] == "cancelled":
            return task
        if task["status"] in FINISHED_TASK_STATUSES:
            raise ApiError(409, f"task {task_id!r} already {task['status']}")
        if self.runner is not None:
            self.runner.stop(task_id)
        now = now_timestamp()
        fields: JsonObject = {"status": "cancelled", "completed_at": now}
        if reason:
            fields["error"] = f"cancelled: {reason}"
        task = self.replace_fields(task_id, fields)
        if self.runner is not None:
            self.runner.announce(task)
        return task


class OctospineAlerts:
    """OCTOSPINE platform alerts: pushed as `alert.new` and sent as an `alert.new` webhook."""

    def __init__(self, store: ResourceStore, hub: EventHub, webhooks: WebhookDispatcher) -> None:
        self.store = store
        self.hub = hub
        self.webhooks = webhooks

    def raise_alert(self, *, title: str, severity: str, source: str, message: str) -> JsonObject:
        """Records a new alert, pushes it and sends the webhook."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}")
        alert: JsonObject = {
            "id": self.store.new_id(),
            "title": title,
            "severity": severity,
            "source": source,
            "message": message,
            "created_at": now_timestamp(),
        }
        self.store.add(alert)
        self.hub.publish("alert.new", "alert.new", alert)
        self.webhooks.emit("alert.new", alert)
        return alert


class OctospineServices:
    """OCTOSPINE's services over its stores: `sim.octospine`."""

    def __init__(
        self,
        stores: OctospineStores,
        hub: EventHub,
        webhooks: WebhookDispatcher,
        config: SimulatorConfig,
    ) -> None:
        self.stores = stores
        self.hub = hub
        self.webhooks = webhooks
        self.health = HealthModel(hub)
        self.pipelines = ResourceService(
            store=stores.pipelines,
            schema=PIPELINE,
            filters={"status": PIPELINE_STATUSES},
            # The lists GraphQL declares non-null ([T!]!) are empty, not missing, when a
            # create leaves them out (the adapter leaves out empty repeated fields).
            defaults={"status": "active", "transformations": []},
        )
        self.automations = ResourceService(
            store=stores.automations,
            schema=AUTOMATION,
            filters={"status": AUTOMATION_STATUSES},
            defaults={"status": "enabled", "triggers": [], "steps": []},
        )
        self.integrations = ResourceService(
            store=stores.integrations,
            schema=INTEGRATION,
            filters={"type": ()},
            defaults={"status": "active"},
        )
        self.webhook_resources = ResourceService(
            store=stores.webhooks,
            schema=WEBHOOK,
            defaults={"type": "incoming", "events": [], "active": True},
        )
        self.tasks = TaskService(stores.tasks)
        self.tasks.runner = TaskRunner(
            self.tasks,
            hub,
            webhooks.emit,
            duration_s=config.task_duration_s,
            steps=config.task_progress_steps,
        )
        self.alerts = OctospineAlerts(stores.alerts, hub, webhooks)

    def trigger_automation(
        self, automation_id: str, payload: JsonObject, *, trigger_type: str = "webhook"
    ) -> JsonObject:
        """Fires an enabled automation: pushes and sends `automation.triggered`."""
        automation = self.automations.get(automation_id)
        if automation.get("status") != "enabled":
            raise ApiError(409, f"automation {automation_id!r} is disabled")
        data: JsonObject = {
            "automation_id": automation_id,
            "trigger_type": trigger_type,
            "payload": payload,
        }
        self.hub.publish("automation.triggered", "automation.triggered", data)
        self.webhooks.emit("automation.triggered", data)
        return data
