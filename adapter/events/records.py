"""The unit the event pipeline moves: one Kafka record, fully formed.

Sources (WebSocket, webhooks) build :class:`OutboundRecord` values; the spool
stores them durably; the Kafka sink delivers them. Nothing downstream of the
source re-encodes a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

__all__ = ["OutboundRecord"]


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A record bound for one Kafka topic."""

    topic: str
    #: Entity id (device, alert, task) so one entity's events share a partition.
    key: bytes | None
    value: bytes
    #: CloudEvents binary-mode headers (``ce_*``, ``content-type``) and ``traceparent``.
    headers: tuple[tuple[str, bytes], ...]
    #: CloudEvents id: the identity used to drop duplicates before they are spooled.
    ce_id: str
    #: The span context its ``traceparent`` header names (the span that received the
    #: event), while the record stays in the process that made it: the Kafka send span
    #: links to it without parsing the header again (~2 µs a record). Not stored: a
    #: record read back from the spool has None, and the header is parsed then.
    creation: SpanContext | None = field(default=None, compare=False, repr=False)

    @property
    def identity(self) -> str:
        """What duplicates share: the same event on the same topic (an event fanned
        out to several topics is one record per topic, each kept)."""
        return f"{self.topic}\x00{self.ce_id}"

    @property
    def size(self) -> int:
        """Approximate bytes, for spool accounting."""
        # (A list, not a generator: half the time, once per record on the spool's writer.)
        return len(self.value) + len(self.key or b"") + sum([len(k) + len(v) for k, v in self.headers])
