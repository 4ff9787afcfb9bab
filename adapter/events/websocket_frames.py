"""A vendor stream's WebSocket frames read as events, as its ``(websocket)`` option
declares them (type, id, action, time and data fields; control frame types).

Frames are the vendor's input, or a third party's: :meth:`FrameReader.parse` never
raises. A frame that cannot be read becomes a malformed event the intake
dead-letters, a control frame is counted and dropped.
"""

from __future__ import annotations

import logging
from collections import Counter

import orjson

from adapter.telemetry.repeated_lines import RepeatedLines

from .declarations import StreamDeclaration
from .encoding import VendorEvent, envelope_problem

__all__ = ["FrameReader"]

logger = logging.getLogger(__name__)


class FrameReader:
    """Reads one stream's frames; counts what it saw in ``counts`` (the source's)."""

    def __init__(self, stream: StreamDeclaration, counts: Counter[str]) -> None:
        self._stream = stream
        self._counts = counts
        # A vendor that answers every frame with an error frame would write a line each.
        self._error_lines = RepeatedLines(logger)

    def is_acknowledgement(self, frame: str | bytes) -> bool:
        """The frame answers the subscribe frame (the type the stream declares for it)."""
        try:
            doc = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return False
        return (
            isinstance(doc, dict) and doc.get(self._stream.frame.type_field) == self._stream.subscribed_type
        )

    def parse(self, frame: str | bytes) -> VendorEvent | None:
        """The frame as an event (one the intake dead-letters when it is unreadable),
        or None for control frames. Never raises."""
        raw = frame.encode("utf-8", "surrogateescape") if isinstance(frame, str) else frame
        try:
            return self._envelope(raw)
        except Exception as exc:  # a frame is the vendor's (or a third party's) input
            self._counts["unknown"] += 1
            return self._malformed(raw, f"unreadable frame ({type(exc).__name__}: {exc})"[:500])

    def _malformed(self, raw: bytes, why: str) -> VendorEvent:
        return VendorEvent(source=self._stream.source, type="", raw=raw, channel="websocket", malformed=why)

    def _envelope(self, raw: bytes) -> VendorEvent | None:
        names = self._stream.frame
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._counts["unknown"] += 1
            return self._malformed(raw, f"frame is not JSON ({exc})")
        kind = doc.get(names.type_field) if isinstance(doc, dict) else None
        if not isinstance(kind, str) or not kind:
            self._counts["unknown"] += 1
            return self._malformed(raw, f"frame is not a JSON object with a string {names.type_field!r}")
        if kind in self._stream.control_types:
            self._counts[f"control.{kind}"] += 1
            if kind == self._stream.error_type:
                self._error_lines.log(
                    logging.WARNING,
                    kind,
                    "%s stream error frame: %.500s",
                    self._stream.source,
                    raw[:2000].decode("utf-8", "replace"),  # a frame may be 4 MiB; 500 characters go out
                )
            return None
        envelope = {
            names.type_field: kind,
            names.id_field: doc.get(names.id_field),
            names.action_field: doc.get(names.action_field),
            names.time_field: doc.get(names.time_field),
        }
        problem = envelope_problem(envelope)
        if problem:
            self._counts["unknown"] += 1
            return self._malformed(raw, problem)
        return VendorEvent(
            source=self._stream.source,
            type=kind,
            id=str(envelope[names.id_field] or ""),
            action=str(envelope[names.action_field] or ""),
            timestamp=str(envelope[names.time_field] or ""),
            data=doc.get(names.data_field),
            channel="websocket",
            raw=raw,
        )
