"""The resource schemas of both vendors, field for field as in `protos/`."""

from __future__ import annotations

from urllib.parse import urlsplit

from simulator.errors import FieldIssue
from simulator.validation import AUTHENTICATION, SCHEDULE, Field, Schema
from simulator.wire import JsonObject

SEVERITIES = ("low", "medium", "high", "critical")
ALERT_STATUSES = ("open", "acknowledged", "resolved")
DEVICE_STATUSES = ("online", "offline", "maintenance")
DEVICE_TYPES = ("workstation", "server", "network", "mobile", "virtual_machine")
PIPELINE_STATUSES = ("active", "paused", "failed")
AUTOMATION_STATUSES = ("enabled", "disabled")
INTEGRATION_STATUSES = ("active", "inactive", "error")
TASK_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
WEBHOOK_TYPES = ("incoming", "outgoing")

_CREATED = Field("created_at", "string", output_only=True)
_UPDATED = Field("updated_at", "string", output_only=True)

# --- OpenFrame -----------------------------------------------------------------------------

ALERT = Schema(
    "alert",
    (
        Field("title", "string", required=True),
        Field("severity", "enum", required=True, choices=SEVERITIES),
        Field("device_id", "string"),
        Field("description", "string"),
        Field("status", "enum", choices=ALERT_STATUSES),
        _CREATED,
        _UPDATED,
        Field("metadata", "struct"),
    ),
)

DEVICE = Schema(
    "device",
    (
        Field("hostname", "string"),
        Field("type", "enum", choices=DEVICE_TYPES),
        Field("status", "enum", choices=DEVICE_STATUSES),
        Field("os", "string"),
        Field("ip_address", "string"),
        Field("organization_id", "string"),
        Field("tags", "string_list"),
        Field("last_seen", "string"),
        _CREATED,
        Field("metadata", "struct"),
        _UPDATED,
    ),
)

SECURITY_EVENT = Schema(
    "security event",
    (
        Field("device_id", "string", required=True),
        Field("severity", "enum", required=True, choices=SEVERITIES),
        Field("category", "string", required=True),
        Field("description", "string"),
        Field("detected_at", "string", output_only=True),
        Field("details", "struct"),
    ),
)

# --- OCTOSPINE -----------------------------------------------------------------------------

_SOURCE = Schema(
    "source",
    (
        Field("type", "string"),
        Field("endpoint", "string"),
        Field("authentication", "message", message=AUTHENTICATION),
        Field("query", "string"),
        Field("connection_id", "string"),
        Field("parameters", "struct"),
    ),
)
_TRANSFORMATION = Schema(
    "transformation",
    (Field("type", "string", required=True), Field("parameters", "struct")),
)
_DESTINATION = Schema(
    "destination",
    (
        Field("type", "string"),
        Field("table", "string"),
        Field("endpoint", "string"),
        Field("parameters", "struct"),
    ),
)

PIPELINE = Schema(
    "pipeline",
    (
        Field("name", "string", required=True),
        Field("description", "string"),
        Field("source", "message", message=_SOURCE),
        Field("transformations", "message_list", message=_TRANSFORMATION),
        Field("destination", "message", message=_DESTINATION),
        Field("status", "enum", choices=PIPELINE_STATUSES),
        Field("schedule", "message", message=SCHEDULE),
        _CREATED,
        _UPDATED,
    ),
)

_TRIGGER = Schema(
    "trigger",
    (
        Field("type", "string", required=True),
        Field("endpoint", "string"),
        Field("method", "string"),
        Field("integration_id", "string"),
        Field("event", "string"),
        Field("schedule", "message", message=SCHEDULE),
    ),
)
_STEP = Schema(
    "step",
    (
        Field("name", "string"),
        Field("type", "string", required=True),
        Field("parameters", "struct"),
    ),
)

AUTOMATION = Schema(
    "automation",
    (
        Field("name", "string", required=True),
        Field("description", "string"),
        Field("triggers", "message_list", message=_TRIGGER),
        Field("steps", "message_list", message=_STEP),
        Field("status", "enum", choices=AUTOMATION_STATUSES),
        _CREATED,
        _UPDATED,
    ),
)

INTEGRATION = Schema(
    "integration",
    (
        Field("type", "string", required=True),
        Field("name", "string", required=True),
        Field("configuration", "struct"),
        Field("status", "enum", choices=INTEGRATION_STATUSES),
        _CREATED,
        _UPDATED,
    ),
)

TASK = Schema(
    "task",
    (
        Field("name", "string", required=True),
        Field("type", "string", required=True),
        Field("parameters", "struct"),
        Field("schedule", "message", message=SCHEDULE),
        Field("status", "enum", choices=TASK_STATUSES, output_only=True),
        Field("progress", "number", output_only=True),
        Field("result", "struct", output_only=True),
        Field("error", "string", output_only=True),
        _CREATED,
        _UPDATED,
        Field("started_at", "string", output_only=True),
        Field("completed_at", "string", output_only=True),
    ),
)


def _outgoing_needs_url(webhook: JsonObject) -> list[FieldIssue]:
    if webhook.get("type") != "outgoing":
        return []
    url = webhook.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return [FieldIssue("url", "must be an http(s) URL for an outgoing webhook")]
    return []


def _events_are_names(webhook: JsonObject) -> list[FieldIssue]:
    events = webhook.get("events") or []
    if any(not e or "." not in e for e in events):
        return [FieldIssue("events", "must be event names such as 'task.completed'")]
    return []


WEBHOOK = Schema(
    "webhook",
    (
        Field("name", "string", required=True),
        Field("type", "enum", choices=WEBHOOK_TYPES),
        Field("endpoint", "string"),
        Field("url", "string"),
        Field("events", "string_list"),
        Field("authentication", "message", message=AUTHENTICATION),
        Field("headers", "string_map"),
        Field("active", "bool"),
        _CREATED,
    ),
    rules=(_outgoing_needs_url, _events_are_names),
)
