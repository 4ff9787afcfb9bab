"""The spool's memory of accepted events, for dropping duplicates.

Vendors redeliver (a webhook retried after a timeout, a WebSocket replaying after a
reconnect). The spool keeps the newest ``window`` accepted identities
(:attr:`OutboundRecord.identity`: topic + CloudEvents id, so an event fanned out to
several topics is kept once per topic) in a SQLite table written inside the same
transaction that stores the records, so "accepted" and "remembered" cannot
disagree after a crash.

The table is a log (``seen_log``: numbered rows, no index on the identity) and the
lookups are in memory, in a set loaded from it at open. The table had been the
lookup itself, with a unique index: but vendors' ids are unrelated to each other,
so each new one landed on a page of its own in that index, and at a full window
(200,000) a record cost 16,400 bytes written and 42 µs of the store's CPU; with
the log, 1,860 bytes and 16 µs (``python -m bench.spool_store_cost``). The price is
memory: ~170 bytes an identity, ~33 MB for a full default window.

A spool from before the log has a ``seen`` table (unique identities): its rows are
moved into the log at open, and the emptied table is left, so an older adapter can
still open the file (it then remembers only what it accepts itself).

Runs on the spool's SQLite thread, inside a transaction the caller owns: claims
take effect in memory when the caller reports the commit (:meth:`SeenIds.committed`),
and are forgotten if it reports a rollback.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence

from .sql_shapes import MAX_ROWS, insert_rows

__all__ = ["SEEN_SCHEMA", "SeenIds"]

# ids grow by one per insert (max + 1) and pruning drops only the lowest, so the
# ids in the table are consecutive, in the order of the identities in memory.
SEEN_SCHEMA = "CREATE TABLE IF NOT EXISTS seen_log (id INTEGER PRIMARY KEY, identity TEXT NOT NULL);"


class SeenIds:
    """Claims identities against the newest ``window`` accepted; ``window=0`` disables deduplication."""

    def __init__(self, window: int) -> None:
        if window < 0:
            raise ValueError("dedupe window must not be negative")
        self.window = window
        # Pruning is a statement, so it waits for window // 256 new claims (up to window +
        # window // 256 identities are remembered; exactly window below 256). Not more: the
        # commit that prunes does that much more work, holding up the appends behind it.
        # With 1/16 of the default window (12,500), that commit took ~10.6 ms against
        # ~0.8 (half of it forgetting the identities in Python, the GIL held), about once a
        # second at 12,000 events/s: a stall right at the events' p99. With 782, 1.5 ms.
        self._slack = window // 256
        self._known: set[str] = set()
        self._order: deque[str] = deque()  # as in the table, oldest first
        self._next_id = 1  # the id the table gives the next identity
        # The open transaction's claims, and the ids below which its prune forgets.
        self._claimed: list[str] = []
        self._claimed_set: set[str] = set()
        self._cut = 0

    def load(self, db: sqlite3.Connection) -> None:
        """Reads the log (moving an older spool's ``seen`` rows into it); in the caller's transaction."""
        self.rolled_back()
        self._known.clear()
        self._order.clear()
        last = 0
        for row_id, identity in db.execute("SELECT id, identity FROM seen_log ORDER BY id"):
            self._known.add(identity)
            self._order.append(identity)
            last = row_id
        self._next_id = last + 1
        legacy = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seen'").fetchone()
        if legacy is not None:
            moved = [identity for (identity,) in db.execute("SELECT ce_id FROM seen ORDER BY id")]
            self.claim(db, moved)
            db.execute("DELETE FROM seen")
        self.prune(db)
        self.committed()  # the caller commits (or fails the open)

    def claim(self, db: sqlite3.Connection, identities: Sequence[str]) -> list[bool]:
        """Remembers each identity; True where it was new (the first of repeats within
        the transaction wins)."""
        if not self.window:
            return [True] * len(identities)
        fresh: list[bool] = []
        new: list[str] = []
        known, claimed = self._known, self._claimed_set
        for identity in identities:
            if identity in known or identity in claimed:
                fresh.append(False)
            else:
                claimed.add(identity)
                new.append(identity)
                fresh.append(True)
        for i in range(0, len(new), MAX_ROWS):
            chunk: list[object] = list(new[i : i + MAX_ROWS])
            last = db.execute(*insert_rows("INSERT INTO seen_log (identity)", chunk, 1)).lastrowid
            assert last is not None
            self._next_id = last + 1
        self._claimed += new
        return fresh

    def mark(self) -> int:
        """Where the transaction's claims stand, for :meth:`undo` after a rolled-back savepoint."""
        return len(self._claimed)

    def undo(self, mark: int) -> None:
        """Forgets the claims made since ``mark`` (their rows were rolled back)."""
        undone = self._claimed[mark:]
        del self._claimed[mark:]
        self._claimed_set.difference_update(undone)
        self._next_id -= len(undone)

    def prune(self, db: sqlite3.Connection) -> None:
        """Forgets all but the newest ``window`` identities (once the slack is used up)."""
        remembered = len(self._order) + len(self._claimed)
        if self.window and remembered > self.window + self._slack:
            self._cut = self._next_id - 1 - self.window
            db.execute("DELETE FROM seen_log WHERE id <= ?", (self._cut,))

    def committed(self) -> None:
        """The caller's transaction committed: its claims and prune take effect."""
        self._known.update(self._claimed)
        self._order.extend(self._claimed)
        self._claimed.clear()
        self._claimed_set.clear()
        first_id = self._next_id - len(self._order)
        while first_id <= self._cut and self._order:
            self._known.discard(self._order.popleft())
            first_id += 1
        self._cut = 0

    def rolled_back(self) -> None:
        """The caller's transaction rolled back: its claims and prune never happened."""
        self.undo(0)
        self._cut = 0
