"""Which message a vendor event becomes and which topics it goes to, read from
the ``(meshadapter.options.v1.event)`` options of the generated event messages.

Adding an event type is a proto change plus ``make codegen``; topic names can be
prefixed and renamed in configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf import descriptor as _d
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from meshadapter.options.v1 import options_pb2

from adapter.config.settings import EventsSettings
from adapter.descriptors.loader import import_generated_modules

__all__ = ["EventRoute", "EventRouter", "load_event_routes"]

FieldPath = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventRoute:
    """How one vendor event type is published."""

    message_type: type[Message]
    source: str
    source_types: tuple[str, ...]
    payload_field: str
    ce_type: str
    #: Final topic names (prefix and renames applied).
    topics: tuple[str, ...]
    key_field: FieldPath
    id_fields: tuple[FieldPath, ...]
    #: Which envelope fields the message can take.
    has_event_id: bool
    has_action: bool
    has_time: bool

    @property
    def full_name(self) -> str:
        return str(self.message_type.DESCRIPTOR.full_name)


def _path(dotted: str) -> FieldPath:
    return tuple(dotted.split(".")) if dotted else ()


def _check_path(descriptor: _d.Descriptor, path: FieldPath, where: str) -> None:
    current: _d.Descriptor | None = descriptor
    for name in path:
        if current is None or name not in current.fields_by_name:
            raise ValueError(f"{where}: no field {'.'.join(path)!r}")
        current = current.fields_by_name[name].message_type


def topic_name(default: str, settings: EventsSettings) -> str:
    return settings.topic_prefix + settings.topic_renames.get(default, default)


def _topics(defaults: Iterable[str], settings: EventsSettings) -> tuple[str, ...]:
    names: list[str] = []
    for default in defaults:
        for name in (default, *settings.extra_topics.get(default, ())):
            if topic_name(name, settings) not in names:
                names.append(topic_name(name, settings))
    return tuple(names)


def load_event_routes(
    settings: EventsSettings, files: Sequence[_d.FileDescriptor] | None = None
) -> list[EventRoute]:
    """Every event message of ``files`` (default: the generated protos), as a route."""
    routes: list[EventRoute] = []
    pool = descriptor_pool.Default()
    for file in import_generated_modules() if files is None else files:
        for message in pool.FindFileByName(file.name).message_types_by_name.values():
            opts = message.GetOptions()
            if not opts.HasExtension(options_pb2.event):
                continue
            option = opts.Extensions[options_pb2.event]
            where = message.full_name
            if not option.source or not option.source_types or not option.topics:
                raise ValueError(f"{where}: an event route needs source, source_types and topics")
            key = _path(option.key_field)
            ids = tuple(_path(p) for p in option.id_fields)
            for path in (key, *ids, _path(option.payload_field)):
                _check_path(message, path, where)
            fields = message.fields_by_name
            routes.append(
                EventRoute(
                    message_type=message_factory.GetMessageClass(message),
                    source=option.source,
                    source_types=tuple(option.source_types),
                    payload_field=option.payload_field,
                    ce_type=option.ce_type or f"{option.source}.{option.source_types[0]}",
                    topics=_topics(option.topics, settings),
                    key_field=key,
                    id_fields=ids,
                    has_event_id="event_id" in fields,
                    has_action="action" in fields,
                    has_time="time" in fields,
                )
            )
    return routes


class EventRouter:
    """Looks up the route of ``(source, vendor event type)``."""

    def __init__(self, routes: list[EventRoute]) -> None:
        self.routes = routes
        self._by_type: dict[tuple[str, str], EventRoute] = {}
        for route in routes:
            for source_type in route.source_types:
                key = (route.source, source_type)
                if key in self._by_type:
                    raise ValueError(f"{source_type!r} of {route.source} is routed twice")
                self._by_type[key] = route

    def route(self, source: str, source_type: str) -> EventRoute | None:
        return self._by_type.get((source, source_type))

    def source_types(self, source: str) -> list[str]:
        """Vendor event types routed for ``source`` (what to subscribe to)."""
        return sorted(t for s, t in self._by_type if s == source)

    def topics(self) -> list[str]:
        return sorted({t for r in self.routes for t in r.topics})
