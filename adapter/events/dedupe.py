"""The spool's memory of accepted events, for dropping duplicates.

Vendors redeliver (a webhook retried after a timeout, a WebSocket replaying after a
reconnect). The spool keeps the newest ``window`` accepted identities
(:attr:`OutboundRecord.identity`: topic + CloudEvents id, so an event fanned out to
several topics is kept once per topic) in a SQLite table and claims them inside the
same transaction that stores the records, so "accepted" and "remembered" cannot
disagree after a crash.

Runs on the spool's SQLite thread, inside a transaction the caller owns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .sql_shapes import MAX_ROWS, insert_rows

__all__ = ["SEEN_SCHEMA", "SeenIds"]

# ids grow by one per insert (max + 1) and pruning drops only the lowest, so
# ``max(id) - window`` is the cut-off without counting rows. The ``ce_id`` column
# holds identities (topic + ce_id) since fan-out; the name stays for existing files.
SEEN_SCHEMA = "CREATE TABLE IF NOT EXISTS seen (id INTEGER PRIMARY KEY, ce_id TEXT NOT NULL UNIQUE);"


class SeenIds:
    """Claims identities in the ``seen`` table; ``window=0`` disables deduplication."""

    def __init__(self, window: int) -> None:
        if window < 0:
            raise ValueError("dedupe window must not be negative")
        self.window = window
        # Pruning costs two statements: done once per 1/16 of the window of new claims, so
        # up to window + window // 16 identities are remembered (exactly window below 16).
        self._slack = window // 16
        self._since_prune = 0

    def claim(self, db: sqlite3.Connection, identities: Sequence[str]) -> list[bool]:
        """Remembers each identity; True where it was new (the first of repeats within the call wins)."""
        if not self.window:
            return [True] * len(identities)
        fresh: list[bool] = []
        for i in range(0, len(identities), MAX_ROWS):
            chunk = identities[i : i + MAX_ROWS]
            # One step for the whole chunk: no RETURNING, which steps once per row (the
            # GIL_STEPS note in spool_store.py). ids are max + 1 per inserted row, so the
            # rows this statement inserted are the last ``inserted`` ids.
            before = db.total_changes
            last = db.execute(  # padded to a cached shape (sql_shapes.py)
                *insert_rows("INSERT INTO seen (ce_id)", list(chunk), 1, "ON CONFLICT (ce_id) DO NOTHING")
            ).lastrowid
            inserted = db.total_changes - before
            self._since_prune += inserted
            if inserted == len(chunk):
                fresh += [True] * inserted  # the common case: every one new
                continue
            claimed: set[str] = set()
            if inserted and last is not None:
                claimed.update(
                    row[0]
                    for row in db.execute(
                        "SELECT ce_id FROM seen WHERE id BETWEEN ? AND ?", (last - inserted + 1, last)
                    )
                )
            for identity in chunk:
                fresh.append(identity in claimed)
                claimed.discard(identity)  # the first of repeats within the call wins
        return fresh

    def prune(self, db: sqlite3.Connection) -> None:
        """Forgets all but the newest ``window`` identities (once the slack is used up)."""
        if self.window and self._since_prune > self._slack:
            self._since_prune = 0
            (top,) = db.execute("SELECT max(id) FROM seen").fetchone()
            if top is not None and top > self.window:
                db.execute("DELETE FROM seen WHERE id <= ?", (top - self.window,))
