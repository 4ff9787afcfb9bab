"""Per-vendor event hub: numbers events, keeps a ring of recent ones, fans out to sessions.

Event ids are ``evt_%06d``, monotonic per vendor, so a client can tell what it missed (and
replay it from the ring with `subscribe`'s ``since``).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import orjson

from simulator.config import Vendor
from simulator.wire import JsonObject, now_timestamp

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """A published event: its topic (what sessions subscribe to) and wire message."""

    id: str
    seq: int
    topic: str
    message: JsonObject
    text: str


class Subscriber(Protocol):
    """A WebSocket session, as the hub sees it."""

    def wants(self, topic: str) -> bool:
        """Whether the session subscribed to `topic`."""
        ...

    def deliver(self, text: str) -> None:
        """Queues a message for sending (must not block)."""
        ...


class EventHub:
    """Events of one vendor: `publish` numbers and fans out, `recent` reads the ring."""

    def __init__(self, vendor: Vendor, *, ring_size: int = 1000, documented_frames: bool = False) -> None:
        """``documented_frames``: send the guides' ``{type, data}`` instead of the full
        envelope (the ring keeps the full message, ids included, for ``since``)."""
        self.vendor = vendor
        self._documented = documented_frames
        self._ring: deque[Event] = deque(maxlen=ring_size)
        self._subscribers: set[Subscriber] = set()
        self._seq = 0
        #: Every subscriber ever attached, oldest first (bounded): the session log.
        self.history: deque[Subscriber] = deque(maxlen=10_000)

    def publish(self, topic: str, event_type: str, data: JsonObject, *, action: str = "") -> Event:
        """Publishes ``{"type", ["action"], "id", "timestamp", "data"}`` (or the documented
        ``{"type", "data"}``) on `topic`."""
        self._seq += 1
        event_id = f"evt_{self._seq:06d}"
        message: JsonObject = {"type": event_type}
        if action:
            message["action"] = action
        message.update(id=event_id, timestamp=now_timestamp(), data=data)
        wire = {"type": event_type, "data": data} if self._documented else message
        text = orjson.dumps(wire).decode()
        event = Event(event_id, self._seq, topic, message, text)
        self._ring.append(event)
        delivered = 0
        for subscriber in list(self._subscribers):
            if subscriber.wants(topic):
                subscriber.deliver(text)
                delivered += 1
        logger.debug("%s event %s %s -> %d sessions", self.vendor, event_id, topic, delivered)
        return event

    def recent(self, *, since: str | None = None) -> list[Event]:
        """Events still in the ring, oldest first; with `since`, only those after that id."""
        after = _event_seq(since) if since else 0
        return [e for e in self._ring if e.seq > after]

    def attach(self, subscriber: Subscriber) -> None:
        """Starts fanning events out to `subscriber`."""
        self._subscribers.add(subscriber)
        self.history.append(subscriber)

    def detach(self, subscriber: Subscriber) -> None:
        """Stops fanning events out to `subscriber`."""
        self._subscribers.discard(subscriber)

    @property
    def subscribers(self) -> list[Subscriber]:
        """The attached sessions."""
        return list(self._subscribers)

    def clear(self) -> None:
        """Forgets the ring and the session log (the id sequence keeps growing, so ids
        stay unique)."""
        self._ring.clear()
        self.history.clear()


def _event_seq(event_id: str) -> int:
    try:
        return int(event_id.removeprefix("evt_"))
    except ValueError:
        return 0
