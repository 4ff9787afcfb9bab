"""What differs between the vendors' WebSocket streams, as data: the path, the
subscribe message, which frames are control frames, and how to read over REST
what a dropped connection missed (backfill).

Everything else (connecting, heartbeats, reconnects, spooling) is shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["STREAMS", "BackfillQuery", "VendorStream"]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BackfillQuery:
    """A REST list that returns what changed since a time, as events."""

    #: gRPC method whose upstream call is reused, e.g. "/openframe.v1.AlertService/ListAlerts".
    rpc: str
    #: Request field taking the lower time bound ("" = not filterable: a snapshot).
    since_field: str
    #: Response field holding the items ("" = the response is the item).
    items_field: str
    #: Vendor event type the items become.
    event_type: str
    #: Item field holding its change time (the event's timestamp and the watermark).
    time_field: str
    #: Item JSON -> event ``data``.
    to_data: Callable[[Json], Json] = lambda item: item
    #: Item JSON -> event ``action``.
    action: Callable[[Json], str] = lambda item: ""


@dataclass(frozen=True, slots=True)
class VendorStream:
    source: str
    path: str
    #: Subscribed to when the configuration names nothing.
    default_subscriptions: tuple[str, ...]
    #: Builds the subscribe frame from the subscription list.
    subscribe: Callable[[list[str]], Json]
    #: ``type`` values that are protocol chatter, not events.
    control_types: frozenset[str]
    backfill: tuple[BackfillQuery, ...] = ()


def _created_or_updated(item: Json) -> str:
    return "created" if item.get("created_at") == item.get("updated_at") else "updated"


def _task_progress(task: Json) -> Json:
    return {"task_id": task.get("id"), "status": task.get("status"), "progress": task.get("progress", 0)}


OPENFRAME = VendorStream(
    source="openframe",
    path="/v1/ws",
    default_subscriptions=("devices", "alerts", "security_events"),
    subscribe=lambda topics: {"type": "subscribe", "topics": topics},
    control_types=frozenset({"connected", "subscribed", "unsubscribed", "pong", "error"}),
    backfill=(
        BackfillQuery(
            rpc="/openframe.v1.AlertService/ListAlerts",
            since_field="updated_after",
            items_field="alerts",
            event_type="alert",
            time_field="updated_at",
            action=_created_or_updated,
        ),
        BackfillQuery(
            rpc="/openframe.v1.DeviceService/ListDevices",
            since_field="updated_after",
            items_field="devices",
            event_type="device",
            time_field="updated_at",
            action=lambda item: "updated",
        ),
        BackfillQuery(
            rpc="/openframe.v1.SecurityEventService/ListSecurityEvents",
            since_field="detected_after",
            items_field="security_events",
            event_type="security_event",
            time_field="detected_at",
            action=lambda item: "detected",
        ),
    ),
)

OCTOSPINE = VendorStream(
    source="octospine",
    path="/ws",
    # task.completed and automation.triggered arrive as webhooks.
    default_subscriptions=("system.status", "task.progress", "alert.new"),
    subscribe=lambda events: {"action": "subscribe", "events": events},
    control_types=frozenset({"connected", "subscribed", "unsubscribed", "pong", "error"}),
    backfill=(
        BackfillQuery(
            rpc="/octospine.v1.TaskService/ListTasks",
            since_field="updated_after",
            items_field="tasks",
            event_type="task.progress",
            time_field="updated_at",
            to_data=_task_progress,
        ),
        BackfillQuery(
            rpc="/octospine.v1.SystemService/GetHealth",
            since_field="",
            items_field="",
            event_type="system.status",
            time_field="timestamp",
        ),
    ),
)

STREAMS: dict[str, VendorStream] = {s.source: s for s in (OPENFRAME, OCTOSPINE)}
