"""Vendor event envelope -> typed protobuf message -> Kafka records with
CloudEvents headers (Kafka protocol binding, binary mode).

Headers of every record::

    ce_specversion  1.0
    ce_id           vendor event id, or the route's content-derived id
    ce_source       the upstream's URI, e.g. https://api.openframe.io
    ce_type         route ce_type + "." + action, e.g. io.openframe.alert.created
    ce_time         RFC 3339
    ce_subject      the record key (entity id)
    content-type    application/protobuf; proto=<message full name>
                    (application/json; proto=<...> for topics configured as JSON)
    traceparent     W3C trace context of the span that received the event

What cannot be decoded or routed becomes a dead-letter record instead (see
:meth:`EventEncoder.dead_letter`), never an exception that stops a source: the
encoder is a boundary that must not fail, so *any* failure while building one
event's message is that event's problem (``UnroutableEventError``), whatever its
type (``RecursionError`` from a 700-level object, ``OverflowError`` from a date
before year 1 once in UTC...). Payloads nested deeper than ``max_depth`` are
refused before a message is built, and a built message that protobuf could not
parse back (past its 100-level limit) is refused too: no consumer could read it.
Dead-letter payloads are redacted (:mod:`adapter.telemetry.redaction`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError, Message
from opentelemetry import propagate, trace
from opentelemetry.context import Context

from adapter.descriptors.access import descriptor_of, field_of
from adapter.descriptors.loader import import_generated_modules
from adapter.descriptors.wire_names import enum_wire_names
from adapter.telemetry.redaction import redact_raw_json, redacted_wire_names
from adapter.transcoding.json_codec import JsonCodec, MalformedPayloadError, format_timestamp
from adapter.transcoding.json_limits import DEFAULT_MAX_DEPTH, check_json_depth

from .records import OutboundRecord
from .routing import EventRoute, EventRouter, FieldPath

__all__ = ["EventEncoder", "UnroutableEventError", "VendorEvent", "envelope_problem"]

#: Envelope strings longer than this are not an event type, id, action or time.
MAX_ENVELOPE_TEXT = 1024


@dataclass(frozen=True, slots=True)
class VendorEvent:
    """One event as a vendor sent it, before routing."""

    source: str
    type: str
    id: str = ""
    action: str = ""
    timestamp: str = ""
    data: Any = None
    #: "websocket", "webhook" or "backfill".
    channel: str = "websocket"
    raw: bytes = b""
    #: Why the source could not read the envelope itself ("" = it could): such an
    #: event goes to the dead-letter topic as MALFORMED_FRAME.
    malformed: str = ""


def envelope_problem(fields: dict[str, Any]) -> str:
    """Why a vendor envelope's ``type``/``id``/``action``/``timestamp`` values are not
    usable ("" when they are): each is absent, or a short string or integer."""
    bad = [
        name
        for name, value in fields.items()
        if not (value is None or (isinstance(value, str | int) and not isinstance(value, bool)))
        or len(str(value)) > MAX_ENVELOPE_TEXT
    ]
    return f"envelope field(s) {', '.join(bad)} not a short string" if bad else ""


class UnroutableEventError(ValueError):
    """An event the adapter cannot publish; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _value_at(message: Message, path: FieldPath) -> Any:
    value: Any = message
    for name in path:
        field_desc = value.DESCRIPTOR.fields_by_name[name]
        value = getattr(value, name)
    if isinstance(value, timestamp_pb2.Timestamp):
        return format_timestamp(value) if value.seconds or value.nanos else ""
    if field_desc.enum_type is not None:
        return enum_wire_names(field_desc.enum_type).get(value, str(value)) if value else ""
    return value


class EventEncoder:
    """Builds Kafka records from vendor events; built once at start-up."""

    def __init__(
        self,
        router: EventRouter,
        codec: JsonCodec,
        *,
        source_uris: dict[str, str],
        json_topics: frozenset[str] = frozenset(),
        dead_letter_topic: str = "meshadapter.deadletter",
        max_depth: int = DEFAULT_MAX_DEPTH,
        redacted_keys: frozenset[str] | None = None,
    ) -> None:
        """``redacted_keys``: JSON keys masked in dead-letter payloads (default: the
        wire names of every debug_redact field in the generated protos)."""
        self.router = router
        self._codec = codec
        self._source_uris = source_uris
        self._json_topics = json_topics
        self.dead_letter_topic = dead_letter_topic
        self.max_depth = max_depth
        # A dead letter may be of a type nobody routes, so its schema is unknown: mask
        # the wire name of every debug_redact field of the protos, anywhere in it.
        if redacted_keys is None:
            redacted_keys = redacted_wire_names(import_generated_modules())
        self._redacted_keys = redacted_keys

    def message(self, event: VendorEvent) -> tuple[EventRoute, Message]:
        """The typed message of ``event``; raises UnroutableEventError (only)."""
        if event.malformed:
            raise UnroutableEventError("MALFORMED_FRAME", event.malformed)
        route = self.router.route(event.source, event.type)
        if route is None:
            raise UnroutableEventError(
                "UNKNOWN_EVENT_TYPE", f"{event.source} sent unrouted type {event.type!r:.200}"
            )
        descriptor = descriptor_of(route.message_type)
        try:
            check_json_depth(event.data, self.max_depth, "data")
            if route.payload_field:
                kwargs = self._codec.decode_kwargs(descriptor, {route.payload_field: event.data})
            else:
                kwargs = self._codec.decode_kwargs(descriptor, event.data)
            if route.has_event_id and event.id:
                kwargs["event_id"] = event.id
            if route.has_action and event.action:
                kwargs["action"] = event.action
            if route.has_time and event.timestamp:
                kwargs["time"] = self._codec.field_decoder(field_of(descriptor, "time"))(
                    event.timestamp, "timestamp"
                )
            message = self._codec.build(route.message_type, kwargs)
            serialized = message.SerializeToString(deterministic=True)
        except MalformedPayloadError as exc:
            raise UnroutableEventError("MALFORMED_EVENT", f"{event.type}: {exc}") from exc
        except Exception as exc:  # any failure here is this event's, never the stream's
            raise UnroutableEventError(
                "MALFORMED_EVENT", f"{event.type}: {type(exc).__name__}: {exc}"[:1000]
            ) from exc
        try:
            route.message_type.FromString(serialized)
        except DecodeError as exc:
            raise UnroutableEventError(
                "MALFORMED_EVENT",
                f"{event.type}: nesting depth exceeds what protobuf parsers read back ({exc}); "
                "no consumer could decode the record",
            ) from exc
        return route, message

    def records(self, event: VendorEvent, *, context: Context | None = None) -> list[OutboundRecord]:
        """One record per topic of the event's route; raises UnroutableEventError (only)."""
        route, message = self.message(event)
        try:
            return self.records_for(route, message, event, context=context)
        except Exception as exc:  # headers from hostile values (ids, keys) must not stop a stream
            raise UnroutableEventError(
                "MALFORMED_EVENT", f"{event.type}: {type(exc).__name__}: {exc}"[:1000]
            ) from exc

    def records_for(
        self, route: EventRoute, message: Message, event: VendorEvent, *, context: Context | None = None
    ) -> list[OutboundRecord]:
        ce_id = self._ce_id(route, message, event)
        key_value = str(_value_at(message, route.key_field)) if route.key_field else route.source
        action = event.action
        ce_type = f"{route.ce_type}.{action}" if action else route.ce_type
        when = event.timestamp or dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=context)
        # The context the traceparent header was made from, kept beside it (OutboundRecord.creation).
        creation = trace.get_current_span(context).get_span_context() if "traceparent" in carrier else None
        common = [
            ("ce_specversion", b"1.0"),
            ("ce_id", ce_id.encode()),
            ("ce_source", self._source_uris.get(route.source, route.source).encode()),
            ("ce_type", ce_type.encode()),
            ("ce_time", when.encode()),
            ("ce_subject", key_value.encode()),
            *((k, v.encode()) for k, v in carrier.items()),
        ]
        key = key_value.encode() if key_value else None
        out = []
        for topic in route.topics:
            if topic in self._json_topics:
                value = orjson.dumps(self._codec.encode(message))
                content_type = f"application/json; proto={route.full_name}"
            else:
                value = message.SerializeToString(deterministic=True)
                content_type = f"application/protobuf; proto={route.full_name}"
            headers = (*common, ("content-type", content_type.encode()))
            out.append(
                OutboundRecord(
                    topic=topic, key=key, value=value, headers=headers, ce_id=ce_id, creation=creation
                )
            )
        return out

    def dead_letter(
        self, event: VendorEvent | None, *, raw: bytes, source: str, channel: str, reason: str, detail: str
    ) -> OutboundRecord:
        """A record for ``meshadapter.deadletter``: the raw payload, redacted, as
        value, the cause in headers, and ``traceparent`` of the current (receipt)
        span. Its id is the payload's hash, so a redelivered bad webhook is
        dead-lettered once. Never raises."""
        digest = hashlib.sha256(raw).hexdigest()
        raw = redact_raw_json(raw, self._redacted_keys)
        headers = [
            ("dlq_reason", reason.encode()),
            ("dlq_detail", detail[:1000].encode("utf-8", "replace")),
            ("dlq_source", source.encode()),
            ("dlq_channel", channel.encode()),
            ("dlq_received_at", dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z").encode()),
            ("ce_specversion", b"1.0"),
            ("ce_id", f"dlq:{digest}".encode()),
            ("ce_source", self._source_uris.get(source, source).encode()),
            ("ce_type", b"dev.mesh-adapter.deadletter"),
        ]
        if event is not None and event.type:
            headers.append(("dlq_event_type", event.type[:200].encode("utf-8", "replace")))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the span that received the event, when one is current
        headers.extend((k, v.encode()) for k, v in carrier.items())
        headers.append(("content-type", b"application/octet-stream"))
        return OutboundRecord(
            topic=self.dead_letter_topic, key=None, value=raw, headers=tuple(headers), ce_id=f"dlq:{digest}"
        )

    @staticmethod
    def _ce_id(route: EventRoute, message: Message, event: VendorEvent) -> str:
        if route.id_fields:
            parts = [str(_value_at(message, path)) for path in route.id_fields]
            if all(parts):
                return f"{route.source}:{event.type}:" + ":".join(parts)
        if event.id:
            return f"{route.source}:{event.id}"
        # No vendor id and no content id: hash the payload, stable for the same content.
        digest = hashlib.sha256(orjson.dumps(event.data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
        return f"{route.source}:{event.type}:sha256:{digest}"
