"""The event encoder most tests use: the documented routes, the JSON codec, no source URIs."""

from __future__ import annotations

from adapter.config.settings import EventsSettings
from adapter.events.encoding import EventEncoder
from adapter.events.routing import EventRouter, load_event_routes
from adapter.transcoding.json_codec import JsonCodec


def default_encoder() -> EventEncoder:
    return EventEncoder(EventRouter(load_event_routes(EventsSettings())), JsonCodec(), source_uris={})
