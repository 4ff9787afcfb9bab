"""The (websocket) and (webhook) declarations: what the built-in protos declare (the
values vendor_streams.py and the webhook receiver used to hard-code), and the
mistakes start-up refuses, as a table."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from google.protobuf import descriptor_pb2
from meshadapter.options.v1 import options_pb2

from adapter.config.settings import EventsSettings
from adapter.descriptors.loader import load_service_specs
from adapter.events.declarations import (
    BackfillQuery,
    DeclarationError,
    Envelope,
    SignatureScheme,
    load_event_sources,
)
from adapter.events.routing import load_event_routes

from .mesh_fixtures import declared


def test_openframe_stream_as_before() -> None:
    stream = declared().streams["openframe"]
    assert stream.path == "/v1/ws"
    assert stream.subscriptions == ("devices", "alerts", "security_events")
    assert stream.subscribe_frame(["alerts"]) == {"type": "subscribe", "topics": ["alerts"]}
    assert stream.subscribed_type == "subscribed"
    assert stream.control_types == {"connected", "subscribed", "unsubscribed", "pong", "error"}
    assert stream.error_type == "error"
    assert stream.frame == Envelope("type", "data", "id", "action", "timestamp")
    assert [(q.rpc, q.since_field, q.items_field, q.event_type, q.time_field) for q in stream.backfill] == [
        ("/openframe.v1.AlertService/ListAlerts", "updated_after", "alerts", "alert", "updated_at"),
        ("/openframe.v1.DeviceService/ListDevices", "updated_after", "devices", "device", "updated_at"),
        (
            "/openframe.v1.SecurityEventService/ListSecurityEvents",
            "detected_after",
            "security_events",
            "security_event",
            "detected_at",
        ),
    ]
    alerts, devices, security = stream.backfill
    same = {"id": "a", "created_at": "t1", "updated_at": "t1"}
    changed = {"id": "a", "created_at": "t1", "updated_at": "t2"}
    assert (alerts.action_of(same), alerts.action_of(changed)) == ("created", "updated")
    assert (devices.action_of(same), security.action_of(changed)) == ("updated", "detected")
    assert alerts.data_of(changed) is changed  # the item itself


def test_octospine_stream_and_webhook_as_before() -> None:
    stream = declared().streams["octospine"]
    assert stream.path == "/ws"
    assert stream.subscriptions == ("system.status", "task.progress", "alert.new")
    assert stream.subscribe_frame(["task.progress"]) == {"action": "subscribe", "events": ["task.progress"]}
    tasks, health = stream.backfill
    assert tasks.data_of({"id": "tsk_1", "status": "running", "progress": 40, "name": "x"}) == {
        "task_id": "tsk_1",
        "status": "running",
        "progress": 40,
    }
    assert tasks.action_of({"id": "tsk_1"}) == ""
    assert (health.rpc, health.since_field, health.items_field) == (
        "/octospine.v1.SystemService/GetHealth",
        "",
        "",
    )
    hook = declared().webhooks["octospine"]
    assert hook.body == Envelope("event", "data", "id", "action", "timestamp")
    assert hook.id_header == "x-octospine-delivery"
    assert hook.signature == SignatureScheme("x-octospine-signature", "sha256", "hex", "sha256=")
    assert set(declared().webhooks) == {"octospine"}  # OpenFrame documents no webhooks


@dataclass
class FakeFile:
    """A proto file as load_event_sources sees it: a name and its options."""

    name: str
    options: descriptor_pb2.FileOptions

    def GetOptions(self) -> descriptor_pb2.FileOptions:
        return self.options


def stream_file(**fields: object) -> FakeFile:
    option = options_pb2.WebSocketStream(**{"source": "openframe", "path": "/v1/ws", **fields})  # type: ignore[arg-type]
    options = descriptor_pb2.FileOptions()
    options.Extensions[options_pb2.websocket].CopyFrom(option)
    return FakeFile("bad/v1/events.proto", options)


def backfill(**fields: str) -> options_pb2.Backfill:
    base = {
        "method": "openframe.v1.AlertService.ListAlerts",
        "since_field": "updated_after",
        "items_field": "alerts",
        "event_type": "alert",
        "time_field": "updated_at",
    }
    return options_pb2.Backfill(**{**base, **fields})


MISTAKES = [
    ("no source", stream_file(source=""), "no source"),
    ("relative path", stream_file(path="ws"), "must start with '/'"),
    ("subscribe frame not JSON", stream_file(subscribe_frame="{nope"), "not JSON"),
    ("subscribe frame not an object", stream_file(subscribe_frame="[1]"), "JSON object"),
    ("unknown RPC", stream_file(backfill=[backfill(method="openframe.v1.AlertService.Nope")]), "no such RPC"),
    (
        "RPC of another upstream",
        stream_file(backfill=[backfill(method="octospine.v1.TaskService.ListTasks", items_field="tasks")]),
        "served by 'octospine'",
    ),
    (
        "a GraphQL RPC",
        stream_file(
            source="octospine",
            backfill=[backfill(method="octospine.v1.TaskService.SearchTasks", event_type="task.progress")],
        ),
        "bound to GraphQL",
    ),
    ("since not a Timestamp", stream_file(backfill=[backfill(since_field="status")]), "not a Timestamp"),
    ("items not repeated", stream_file(backfill=[backfill(items_field="next_page_token")]), "not a repeated"),
    ("unrouted event type", stream_file(backfill=[backfill(event_type="alert_snoozed")]), "no event message"),
    ("no time field", stream_file(backfill=[backfill(time_field="")]), "no time_field"),
    ("created_action alone", stream_file(backfill=[backfill(created_action="created")]), "created_field"),
]


@pytest.mark.parametrize(("case", "file", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistakes_stop_the_start(case: str, file: FakeFile, message: str) -> None:
    with pytest.raises(DeclarationError) as info:
        load_event_sources(
            [file],  # type: ignore[list-item]
            specs=load_service_specs(),
            routes=load_event_routes(EventsSettings()),
        )
    assert message in str(info.value) and "bad/v1/events.proto" in str(info.value)


def test_a_second_stream_for_one_upstream_is_refused() -> None:
    with pytest.raises(DeclarationError, match="second WebSocket stream"):
        load_event_sources(
            [stream_file(), stream_file()],  # type: ignore[list-item]
            specs=load_service_specs(),
            routes=load_event_routes(EventsSettings()),
        )


def test_a_webhook_signature_needs_a_header() -> None:
    options = descriptor_pb2.FileOptions()
    options.Extensions[options_pb2.webhook].CopyFrom(
        options_pb2.WebhookSource(source="acme", signature=options_pb2.WebhookSignature(prefix="x="))
    )
    with pytest.raises(DeclarationError, match="signature without a header"):
        load_event_sources([FakeFile("a.proto", options)], specs=[], routes=[])  # type: ignore[list-item]


def test_backfill_data_fields_follow_dotted_paths() -> None:
    query = BackfillQuery(
        rpc="/x.v1.S/M",
        since_field="",
        items_field="",
        event_type="t",
        time_field="at",
        data_fields=(("owner", ("owner", "id")), ("missing", ("nope",))),
    )
    assert query.data_of({"owner": {"id": "u1"}}) == {"owner": "u1"}
