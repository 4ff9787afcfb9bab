"""The simulator against the protos: every HTTP rule is served, every resource parses.

Resources are converted from the wire convention (lower-case enum names without prefix) to
protobuf JSON and parsed with unknown fields rejected, so a field the protos do not have, or a
misspelt one, fails here before it confuses the adapter.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import httpx
import pytest
from google.api import annotations_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from octospine.v1 import (
    automations_pb2,
    events_pb2,
    integrations_pb2,
    pipelines_pb2,
    system_pb2,
    tasks_pb2,
    webhooks_pb2,
)
from openframe.v1 import alerts_pb2, devices_pb2, security_events_pb2
from openframe.v1 import events_pb2 as of_events_pb2

from simulator import Simulator
from tests.simulator.conftest import OF_KEY, OS_KEY

_OPAQUE = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.Timestamp"}


def _http_rules() -> list[tuple[str, str, str]]:
    rules = []
    for package in ("openframe.v1", "octospine.v1"):
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
            if not info.name.endswith("_pb2"):
                continue
            module = importlib.import_module(f"{package}.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                for method in service.methods:
                    if not method.GetOptions().HasExtension(annotations_pb2.http):
                        continue  # a GraphQL operation (tests/simulator/test_graphql.py)
                    rule = method.GetOptions().Extensions[annotations_pb2.http]
                    verb = rule.WhichOneof("pattern")
                    rules.append((package.split(".")[0], verb.upper(), getattr(rule, verb)))
    return rules


RULES = _http_rules()


def test_rules_were_found() -> None:
    assert len(RULES) >= 30
    assert ("octospine", "POST", "/api/tasks/{task_id}/cancel") in RULES


@pytest.mark.parametrize(("vendor", "method", "template"), RULES)
async def test_every_http_rule_is_served(sim: Simulator, vendor: str, method: str, template: str) -> None:
    path, has_id = template, "{" in template
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + "zzz" + path[end + 1 :]
    base = sim.openframe_url if vendor == "openframe" else sim.octospine_url
    key = OF_KEY if vendor == "openframe" else OS_KEY
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        body = {} if method in ("POST", "PATCH") else None
        response = await client.request(method, path, json=body)
    if has_id:  # the route exists and looked the id up (an incoming webhook: its listeners)
        assert response.status_code == 404, response.text
        assert "'zzz' not found" in response.text or "listens on '/webhooks/zzz'" in response.text
    else:
        assert response.status_code in (200, 422), response.text


def _enum_name(field: FieldDescriptor, value: str) -> str:
    enum = field.enum_type
    prefix = next(v.name for v in enum.values if v.number == 0).removesuffix("UNSPECIFIED")
    name = prefix + value.upper()
    assert name in enum.values_by_name, f"{field.full_name}: {value!r} is not a {enum.full_name}"
    return name


def _single(value: Any, field: FieldDescriptor) -> Any:
    if field.enum_type is not None:
        return _enum_name(field, value)
    if field.message_type is not None and field.message_type.full_name not in _OPAQUE:
        return to_proto_json(value, field.message_type)
    return value


def to_proto_json(resource: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """Wire JSON to protobuf JSON; a key the message does not have raises KeyError."""
    out: dict[str, Any] = {}
    for key, value in resource.items():
        field = descriptor.fields_by_name[key]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[key] = {k: _single(v, value_field) for k, v in value.items()}
        elif field.is_repeated:
            out[key] = [_single(v, field) for v in value]
        else:
            out[key] = _single(value, field)
    return out


def assert_parses(resource: dict[str, Any], message: type[Message]) -> None:
    json_format.ParseDict(to_proto_json(resource, message.DESCRIPTOR), message())


async def test_stored_resources_parse_into_their_messages(sim: Simulator) -> None:
    await sim.generate_events("openframe", "security_event", 1)
    await sim.generate_events("octospine", "alert.new", 1)
    state = sim.state
    pairs: list[tuple[list[dict[str, Any]], type[Message]]] = [
        (state.openframe.devices.all(), devices_pb2.Device),
        (state.openframe.alerts.all(), alerts_pb2.Alert),
        (state.openframe.security_events.all(), security_events_pb2.SecurityEvent),
        (state.octospine.pipelines.all(), pipelines_pb2.Pipeline),
        (state.octospine.automations.all(), automations_pb2.Automation),
        (state.octospine.integrations.all(), integrations_pb2.Integration),
        (state.octospine.tasks.all(), tasks_pb2.Task),
        (state.octospine.webhooks.all(), webhooks_pb2.Webhook),
        (state.octospine.alerts.all(), events_pb2.PlatformAlert),
        ([sim.octospine.health.report()], system_pb2.Health),
    ]
    for resources, message in pairs:
        assert resources, message.DESCRIPTOR.full_name
        for resource in resources:
            assert_parses(resource, message)


async def test_event_payloads_parse_into_their_messages(sim: Simulator) -> None:
    for kind in ("alert", "device", "security_event"):
        await sim.generate_events("openframe", kind, 1)
    for kind in ("task", "automation.triggered", "system.status", "alert.new"):
        await sim.generate_events("octospine", kind, 1)
    payload_messages: dict[str, tuple[str, type[Message]]] = {
        "alert": ("alert", of_events_pb2.AlertEvent),
        "device": ("device", of_events_pb2.DeviceEvent),
        "security_event": ("security_event", of_events_pb2.SecurityEventNotice),
        "system.status": ("health", events_pb2.SystemStatusEvent),
        "task.progress": ("", events_pb2.TaskProgressEvent),
        "alert.new": ("alert", events_pb2.AlertNewEvent),
        "automation.triggered": ("", events_pb2.AutomationTriggeredEvent),
    }
    seen = set()
    for vendor in ("openframe", "octospine"):
        for event in sim.events(vendor):  # type: ignore[arg-type]
            payload_field, message = payload_messages[event["type"]]
            data = {payload_field: event["data"]} if payload_field else event["data"]
            assert_parses(data, message)
            seen.add(event["type"])
    assert seen == set(payload_messages)
