"""Prints docs/asyncapi.yaml: the Kafka side of mesh-adapter as AsyncAPI 3.0.

Everything comes from the protos: the topics, keys, CloudEvents types and
payload messages from the ``(meshadapter.options.v1.event)`` options (read by the
adapter's own router, so the document says what the adapter does), the payload
schemas as .proto text (``application/vnd.google.protobuf;version=3``) with the
comments of generated/mesh_adapter.binpb, and the dead-letter topic from the
settings' default. Topic names are the defaults, before the configured prefix
and renames. Run by scripts/codegen.sh; validated by `make check`
(scripts/asyncapi/validate.mjs, @asyncapi/parser).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor_pb2

from adapter.config.settings import EventsSettings
from adapter.events.routing import EventRoute, load_event_routes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proto_source import ProtoIndex, render_closure

ROOT = Path(__file__).resolve().parent.parent
KAFKA_BINDING = "0.5.0"
PROTO3 = "application/vnd.google.protobuf;version=3"
TRACEPARENT = "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


def _string(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **more}


def _escape(text: str) -> str:
    return text.replace(".", "\\.")


def event_headers(route: EventRoute) -> dict[str, Any]:
    """CloudEvents Kafka binding, binary mode (adapter/events/encoding.py)."""
    key = ".".join(route.key_field) or f'"{route.source}" (no key field)'
    ids = ", ".join(".".join(p) for p in route.id_fields) or "the vendor's event id"
    action = ", plus `.<action>` when the event has one." if route.has_action else "."
    name = route.full_name
    return {
        "type": "object",
        "required": [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_subject",
            "content-type",
            "traceparent",
        ],
        "properties": {
            "ce_specversion": _string("CloudEvents version.", const="1.0"),
            "ce_id": _string(
                f"Event id, derived from {ids}: the same change seen twice (live and backfilled,"
                " WebSocket and webhook) has the same id; consumers deduplicate on it.",
                pattern=f"^{_escape(route.source)}:",
            ),
            "ce_source": _string(f"URI of the {route.source} upstream (its base URL).", format="uri"),
            "ce_type": _string(
                f"`{route.ce_type}`{action}",
                pattern=f"^{_escape(route.ce_type)}" + (r"(\.[a-z_]+)?$" if route.has_action else "$"),
            ),
            "ce_time": _string("When the vendor emitted the event (RFC 3339).", format="date-time"),
            "ce_subject": _string(f"The record key: {key}."),
            "content-type": _string(
                "Encoding of the value: binary protobuf, or proto3 JSON for topics configured in"
                " `events.json_topics`.",
                enum=[f"application/protobuf; proto={name}", f"application/json; proto={name}"],
            ),
            "traceparent": _string("W3C trace context of the span that received it.", pattern=TRACEPARENT),
        },
    }


def dead_letter_message() -> dict[str, Any]:
    return {
        "name": "DeadLetter",
        "title": "Dead-lettered vendor event",
        "summary": "A vendor event the adapter could not route or decode, kept as it arrived (redacted).",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": [
                "dlq_reason",
                "dlq_detail",
                "dlq_source",
                "dlq_channel",
                "dlq_received_at",
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "content-type",
            ],
            "properties": {
                "dlq_reason": _string(
                    "Why, e.g. `UNKNOWN_EVENT_TYPE`, `MALFORMED_EVENT`, `MALFORMED_FRAME`."
                ),
                "dlq_detail": _string("What exactly (at most 1000 characters).", maxLength=1000),
                "dlq_source": _string("Upstream that sent it.", enum=["openframe", "octospine"]),
                "dlq_channel": _string("How it arrived.", enum=["websocket", "webhook", "backfill"]),
                "dlq_received_at": _string("When the adapter gave up on it.", format="date-time"),
                "dlq_event_type": _string("The vendor's event type, when it had one.", maxLength=200),
                "ce_specversion": _string("CloudEvents version.", const="1.0"),
                "ce_id": _string(
                    "`dlq:<sha256 of the payload as received>`: a redelivered bad webhook is one record.",
                    pattern="^dlq:[0-9a-f]{64}$",
                ),
                "ce_source": _string("URI of the upstream.", format="uri"),
                "ce_type": _string("Always this type.", const="dev.mesh-adapter.deadletter"),
                "content-type": _string("The payload is opaque bytes.", const="application/octet-stream"),
            },
        },
        "payload": {
            "type": "string",
            "format": "binary",
            "description": "The WebSocket frame or webhook body as received, secret fields masked.",
        },
        "bindings": {
            "kafka": {"key": {"type": "null", "description": "No key."}, "bindingVersion": KAFKA_BINDING}
        },
    }


def event_message(route: EventRoute, index: ProtoIndex) -> dict[str, Any]:
    file, path = index.top[route.full_name][0], index.path_of[route.full_name]
    summary = index.comments.get((file.name, path), "").strip().replace("\n", " ")
    key = ".".join(route.key_field)
    return {
        "name": route.message_type.DESCRIPTOR.name,
        "title": route.full_name,
        "summary": summary,
        "contentType": f"application/protobuf; proto={route.full_name}",
        "headers": event_headers(route),
        "payload": {"schemaFormat": PROTO3, "schema": render_closure(index, route.full_name)},
        "correlationId": {"description": "W3C trace context", "location": "$message.header#/traceparent"},
        "bindings": {
            "kafka": {
                "key": _string(
                    f"`{key}` of the event: one entity's events share a partition, in order."
                    if key
                    else f'Always "{route.source}" (one stream).'
                ),
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "x-protobuf-message": route.full_name,
        "x-key-field": key,
        "x-vendor-events": [f"{route.source}:{t}" for t in route.source_types],
    }


def document() -> dict[str, Any]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    settings = EventsSettings()
    routes = load_event_routes(settings)
    index = ProtoIndex(
        descriptor_pb2.FileDescriptorSet.FromString((ROOT / "generated" / "mesh_adapter.binpb").read_bytes())
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for route in sorted(routes, key=lambda r: r.full_name):
        messages[route.full_name] = event_message(route, index)
    by_topic: dict[str, list[EventRoute]] = {}
    for route in routes:
        for topic in route.topics:
            by_topic.setdefault(topic, []).append(route)
    dead = settings.dead_letter_topic
    messages["DeadLetter"] = dead_letter_message()
    for topic in sorted([*by_topic, dead]):
        names = [r.full_name for r in by_topic.get(topic, [])] or ["DeadLetter"]
        channels[topic] = {
            "address": topic,
            "description": (
                "Events the adapter could not route or decode; nothing is dropped silently."
                if topic == dead
                else f"{', '.join(names)} records, one per change, keyed by entity."
            ),
            "messages": {n.rsplit(".", 1)[-1]: {"$ref": f"#/components/messages/{n}"} for n in names},
            "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING}},
        }
        operations["publish." + topic] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{topic}"},
            "summary": f"mesh-adapter publishes to {topic}.",
            "messages": [{"$ref": f"#/channels/{topic}/messages/{n.rsplit('.', 1)[-1]}"} for n in names],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "mesh-adapter events",
            "version": project["version"],
            "description": (
                "Vendor WebSocket pushes and signed webhooks of OpenFrame and OCTOSPINE, published on Kafka"
                " as CloudEvents (Kafka protocol binding, binary mode) with typed protobuf values.\n\n"
                "Generated from protos/ by scripts/asyncapi.py (`make codegen`); do not edit. Topic names are"
                " the defaults: `events.topic_prefix` and `events.topic_renames` change them"
                " (docs/configuration.md). The payload schemas are the protobuf messages; the descriptor"
                " set generated/mesh_adapter.binpb holds them with all their imports."
            ),
        },
        "defaultContentType": "application/protobuf",
        "servers": {
            "kafka": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The brokers of `events.kafka.bootstrap_servers` (here: `make run`'s).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the .proto texts stay readable)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def main() -> None:
    sys.stdout.write("# Generated by scripts/asyncapi.py (make codegen) from protos/: do not edit.\n")
    sys.stdout.write(yaml.dump(document(), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True))


if __name__ == "__main__":
    main()
