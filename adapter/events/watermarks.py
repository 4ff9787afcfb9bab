"""How far each event stream has been durably read, kept across restarts.

A watermark moves only after the events before it are in the spool, so a
restart backfills from a point nothing after which was lost. Small JSON file,
replaced atomically (write to a temporary file, fsync, rename).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Protocol

__all__ = ["WatermarkStore", "Watermarks", "capped", "event_time"]

logger = logging.getLogger(__name__)


def event_time(timestamp: str) -> dt.datetime | None:
    """``timestamp`` (RFC 3339) as an aware UTC time; None when it is unreadable or out
    of range (a mark then does not move). Every store's :meth:`Watermarks.advance`
    reads vendor times through this."""
    try:
        when = dt.datetime.fromisoformat(timestamp)
        when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None
    return when


def capped(when: dt.datetime, ceiling: dt.datetime | None) -> dt.datetime:
    """``when``, but never past ``ceiling`` (a mark never runs ahead of what was read)."""
    return when if ceiling is None or when <= ceiling else ceiling


class Watermarks(Protocol):
    """What a stream needs from a watermark store (this file, or the replicas' shared
    one in :mod:`adapter.coordination.shared_watermarks`)."""

    def get(self, source: str) -> dt.datetime | None: ...

    def advance(self, source: str, timestamp: str, *, ceiling: dt.datetime | None = None) -> None: ...

    def advance_to(self, source: str, when: dt.datetime, *, ceiling: dt.datetime | None = None) -> None: ...

    def flush(self) -> None: ...


class WatermarkStore:
    """Per-source high-water marks (vendor event times)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._marks: dict[str, dt.datetime] = {}
        self._dirty = False
        try:
            raw = json.loads(path.read_text())
            self._marks = {k: dt.datetime.fromisoformat(v) for k, v in raw.items()}
        except FileNotFoundError:
            pass
        except (ValueError, AttributeError, TypeError) as exc:
            logger.warning("ignoring unreadable watermark file %s: %s", path, exc)

    def get(self, source: str) -> dt.datetime | None:
        return self._marks.get(source)

    def advance(self, source: str, timestamp: str, *, ceiling: dt.datetime | None = None) -> None:
        """Moves ``source``'s mark forward to ``timestamp`` (RFC 3339), never back and
        never past ``ceiling``. Unreadable or out-of-range times are ignored."""
        when = event_time(timestamp)
        if when is not None:
            self.advance_to(source, when, ceiling=ceiling)

    def advance_to(self, source: str, when: dt.datetime, *, ceiling: dt.datetime | None = None) -> None:
        """Moves ``source``'s mark forward to ``when`` (aware), never back and never past ``ceiling``."""
        when = capped(when, ceiling)
        current = self._marks.get(source)
        if current is None or when > current:
            self._marks[source] = when
            self._dirty = True

    def flush(self) -> None:
        if not self._dirty:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            json.dump({k: v.isoformat() for k, v in self._marks.items()}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self._path)
        self._dirty = False
