"""An upstream's event sources as its protos declare them: the WebSocket stream
(``(meshadapter.options.v1.websocket)``) and the webhook deliveries
(``(meshadapter.options.v1.webhook)``), file options of any of its proto files.

They are read once at start-up into frozen values and checked against the
services (backfill RPCs and their fields) and the event routes (backfilled types),
so a mistake in a declaration stops the start with a message naming it instead
of dead-lettering every event later. Nothing here names a vendor: a new one is
protos plus configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from google.protobuf import descriptor as _d
from google.protobuf import timestamp_pb2
from meshadapter.options.v1 import options_pb2

from adapter.descriptors.access import descriptor_of
from adapter.descriptors.loader import ServiceSpec
from adapter.descriptors.method_spec import MethodSpec

from .routing import EventRoute

__all__ = [
    "BackfillQuery",
    "DeclarationError",
    "Envelope",
    "EventSourceDeclarations",
    "SignatureScheme",
    "StreamDeclaration",
    "WebhookDeclaration",
    "load_event_sources",
]

Json = dict[str, Any]

#: The JSON string in a subscribe frame that stands for the subscription list.
SUBSCRIPTIONS_PLACEHOLDER = "$subscriptions"

_ALGORITHMS = {
    options_pb2.SIGNATURE_ALGORITHM_UNSPECIFIED: "sha256",
    options_pb2.SIGNATURE_ALGORITHM_HMAC_SHA256: "sha256",
    options_pb2.SIGNATURE_ALGORITHM_HMAC_SHA512: "sha512",
    options_pb2.SIGNATURE_ALGORITHM_HMAC_SHA1: "sha1",
}
_ENCODINGS: dict[int, Literal["hex", "base64"]] = {
    options_pb2.SIGNATURE_ENCODING_UNSPECIFIED: "hex",
    options_pb2.SIGNATURE_ENCODING_HEX: "hex",
    options_pb2.SIGNATURE_ENCODING_BASE64: "base64",
}


class DeclarationError(ValueError):
    """A ``(websocket)`` or ``(webhook)`` option is incomplete or inconsistent."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """Field names of an event envelope (frame or webhook body)."""

    type_field: str = "type"
    data_field: str = "data"
    id_field: str = "id"
    action_field: str = "action"
    time_field: str = "timestamp"

    @classmethod
    def of(cls, option: options_pb2.EnvelopeFields, *, type_field: str) -> Envelope:
        return cls(
            type_field=option.type_field or type_field,
            data_field=option.data_field or "data",
            id_field=option.id_field or "id",
            action_field=option.action_field or "action",
            time_field=option.time_field or "timestamp",
        )


@dataclass(frozen=True, slots=True)
class BackfillQuery:
    """A REST read that returns what changed since a time, as events."""

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
    action: str = ""
    created_action: str = ""
    created_field: str = ""
    #: (event data field, item field path); empty = the item is the data.
    data_fields: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def action_of(self, item: Json) -> str:
        """The event's action: ``created_action`` for an item unchanged since created."""
        if self.created_action and item.get(self.created_field) == item.get(self.time_field):
            return self.created_action
        return self.action

    def data_of(self, item: Json) -> Any:
        """The event's data: the item, or the declared fields of it (absent ones left out)."""
        if not self.data_fields:
            return item
        data: Json = {}
        for name, path in self.data_fields:
            value: Any = item
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                data[name] = value
        return data


@dataclass(frozen=True, slots=True)
class StreamDeclaration:
    """One upstream's WebSocket stream."""

    source: str
    path: str
    #: The subscribe frame with the placeholder in it; None = nothing to send.
    subscribe_template: Json | None = None
    #: Subscribed to when the configuration names nothing.
    subscriptions: tuple[str, ...] = ()
    #: Frame type acknowledging the subscription ("" = none to wait for).
    subscribed_type: str = ""
    frame: Envelope = field(default_factory=Envelope)
    #: Frame types that are protocol chatter, not events.
    control_types: frozenset[str] = frozenset()
    #: Control type reporting an error (logged).
    error_type: str = ""
    backfill: tuple[BackfillQuery, ...] = ()

    def subscribe_frame(self, names: Sequence[str]) -> Json | None:
        """The subscribe frame for ``names`` (None when the stream needs none)."""
        if self.subscribe_template is None:
            return None
        filled = _fill(self.subscribe_template, list(names))
        assert isinstance(filled, dict)
        return filled


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """How a vendor signs deliveries: a keyed hash of the raw body in one header."""

    header: str
    #: hashlib name: "sha256", "sha512", "sha1".
    algorithm: str = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class WebhookDeclaration:
    """One upstream's webhook deliveries."""

    source: str
    body: Envelope = field(default_factory=lambda: Envelope(type_field="event"))
    #: Header with the delivery id when the body has none ("" = none).
    id_header: str = ""
    signature: SignatureScheme | None = None


@dataclass(frozen=True, slots=True)
class EventSourceDeclarations:
    streams: dict[str, StreamDeclaration]
    webhooks: dict[str, WebhookDeclaration]


def load_event_sources(
    files: Iterable[_d.FileDescriptor], *, specs: Sequence[ServiceSpec], routes: Sequence[EventRoute]
) -> EventSourceDeclarations:
    """Every declared stream and webhook of ``files``; raises DeclarationError naming each mistake."""
    methods = {m.descriptor.full_name: m for s in specs for m in s.methods}
    routed = {(r.source, t) for r in routes for t in r.source_types}
    streams: dict[str, StreamDeclaration] = {}
    webhooks: dict[str, WebhookDeclaration] = {}
    errors: list[str] = []
    for file in files:
        opts = file.GetOptions()
        if opts.HasExtension(options_pb2.websocket):
            try:
                stream = _stream(opts.Extensions[options_pb2.websocket], methods, routed)
                if stream.source in streams:
                    raise DeclarationError(f"a second WebSocket stream for {stream.source!r}")
                streams[stream.source] = stream
            except DeclarationError as exc:
                errors.append(f"{file.name}: (meshadapter.options.v1.websocket): {exc}")
        if opts.HasExtension(options_pb2.webhook):
            try:
                hook = _webhook(opts.Extensions[options_pb2.webhook])
                if hook.source in webhooks:
                    raise DeclarationError(f"a second webhook declaration for {hook.source!r}")
                webhooks[hook.source] = hook
            except DeclarationError as exc:
                errors.append(f"{file.name}: (meshadapter.options.v1.webhook): {exc}")
    if errors:
        raise DeclarationError("invalid event source declarations:\n  " + "\n  ".join(errors))
    return EventSourceDeclarations(streams=streams, webhooks=webhooks)


def _stream(
    option: options_pb2.WebSocketStream, methods: dict[str, MethodSpec], routed: set[tuple[str, str]]
) -> StreamDeclaration:
    if not option.source:
        raise DeclarationError("no source (the upstream's name)")
    if not option.path.startswith("/"):
        raise DeclarationError(f"path {option.path!r} must start with '/'")
    template: Json | None = None
    if option.subscribe_frame:
        try:
            parsed = orjson.loads(option.subscribe_frame)
        except orjson.JSONDecodeError as exc:
            raise DeclarationError(f"subscribe_frame is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise DeclarationError("subscribe_frame must be a JSON object")
        template = parsed
    backfill = tuple(_backfill(option.source, b, methods, routed) for b in option.backfill)
    control = frozenset(option.control_types)
    extra = {option.subscribed_type, option.error_type} - {""} - control
    return StreamDeclaration(
        source=option.source,
        path=option.path,
        subscribe_template=template,
        subscriptions=tuple(option.subscriptions),
        subscribed_type=option.subscribed_type,
        frame=Envelope.of(option.frame, type_field="type"),
        # The acknowledgement and the error frame are protocol chatter too.
        control_types=control | extra,
        error_type=option.error_type,
        backfill=backfill,
    )


def _backfill(
    source: str,
    option: options_pb2.Backfill,
    methods: dict[str, MethodSpec],
    routed: set[tuple[str, str]],
) -> BackfillQuery:
    spec = methods.get(option.method)
    where = f"backfill {option.method or '(no method)'}"
    if spec is None:
        raise DeclarationError(f"{where}: no such RPC with a google.api.http rule")
    if spec.upstream != source:
        raise DeclarationError(f"{where}: the RPC is served by {spec.upstream!r}, not {source!r}")
    if spec.graphql is not None:
        raise DeclarationError(f"{where}: backfill reads over REST; the RPC is bound to GraphQL")
    inp, out = descriptor_of(spec.input_type), descriptor_of(spec.output_type)
    if option.since_field:
        since = inp.fields_by_name.get(option.since_field)
        if (
            since is None
            or since.message_type is None
            or (since.message_type.full_name != timestamp_pb2.Timestamp.DESCRIPTOR.full_name)
        ):
            raise DeclarationError(f"{where}: since_field {option.since_field!r} is not a Timestamp field")
    if option.items_field:
        items = out.fields_by_name.get(option.items_field)
        if items is None or not items.is_repeated:
            raise DeclarationError(f"{where}: items_field {option.items_field!r} is not a repeated field")
    if (source, option.event_type) not in routed:
        raise DeclarationError(f"{where}: no event message routes {source} type {option.event_type!r}")
    if not option.time_field:
        raise DeclarationError(f"{where}: no time_field (the items' change time)")
    if option.created_action and not option.created_field:
        raise DeclarationError(f"{where}: created_action needs created_field")
    if any(not d.name or not d.item_field for d in option.data):
        raise DeclarationError(f"{where}: every data entry needs a name and an item_field")
    return BackfillQuery(
        rpc=spec.path,
        since_field=option.since_field,
        items_field=option.items_field,
        event_type=option.event_type,
        time_field=option.time_field,
        action=option.action,
        created_action=option.created_action,
        created_field=option.created_field,
        data_fields=tuple((d.name, tuple(d.item_field.split("."))) for d in option.data),
    )


def _webhook(option: options_pb2.WebhookSource) -> WebhookDeclaration:
    if not option.source:
        raise DeclarationError("no source (the upstream's name)")
    signature = None
    if option.HasField("signature"):
        if not option.signature.header:
            raise DeclarationError("signature without a header")
        signature = SignatureScheme(
            header=option.signature.header.lower(),
            algorithm=_ALGORITHMS.get(option.signature.algorithm, "sha256"),
            encoding=_ENCODINGS.get(option.signature.encoding, "hex"),
            prefix=option.signature.prefix,
        )
    return WebhookDeclaration(
        source=option.source,
        body=Envelope.of(option.body, type_field="event"),
        id_header=option.id_header.lower(),
        signature=signature,
    )


def _fill(template: Any, names: list[str]) -> Any:
    if template == SUBSCRIPTIONS_PLACEHOLDER:
        return names
    if isinstance(template, dict):
        return {k: _fill(v, names) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, names) for v in template]
    return template
