"""Copies the spool's write-ahead log into its database from a thread of its own.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past its
threshold, and a checkpoint syncs the database file. On this project's machines
that one commit, and every append queued behind it, stalled for 70-600 ms
(``bench.peer.events``: receipt → Kafka ack p99 up to 356 ms at half the maximum
rate; 12-18 ms with no checkpoint at all). WAL mode lets a checkpointer copy older
frames while the writer appends new ones, so here a second connection runs a
PASSIVE checkpoint once ``wal_bytes`` of records were appended since the last one
(the spool reports them: the WAL file's size cannot tell, SQLite reuses the file
from its start after a checkpoint): the writer's commits no longer wait for a sync
of the database file, and an idle spool is left alone. Small (256 KiB) and so
frequent under load: each copy and sync stays short beside the writer.

The writer keeps SQLite's automatic checkpoint, at a larger threshold
(:data:`BACKSTOP_PAGES`), as a backstop: should this thread fall behind or fail
(it logs why), the WAL still stays bounded.

Written here because SQLite has no background checkpointing of its own and the
stdlib ``sqlite3`` module exposes only the pragma.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["BACKSTOP_PAGES", "WalCheckpointer"]

logger = logging.getLogger(__name__)

#: The writer's own automatic checkpoint (pages of 4 KiB: 64 MiB), only reached
#: when the background checkpoints do not keep up.
BACKSTOP_PAGES = 16384


class WalCheckpointer:
    """A daemon thread that checkpoints ``path``'s WAL; ``start()`` / ``stop()``."""

    def __init__(self, path: Path, *, wal_bytes: int = 256 * 1024, interval: float = 0.05) -> None:
        self._path = path
        self._wal_bytes = wal_bytes
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Checkpoints run, and frames they copied (for tests and logs).
        self.checkpoints = 0
        self.frames_copied = 0
        self._failures = 0
        self._appended = 0  # bytes of records appended since the last checkpoint

    def appended(self, size: int) -> None:
        """The spool committed ``size`` more bytes of records (from the event loop's thread)."""
        self._appended += size

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"spool-checkpoint-{self._path.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Waits for a checkpoint in progress to finish. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self._interval):
                if self._appended < self._wal_bytes:
                    continue
                self._appended = 0  # a report racing this reset is lost: harmless, a few bytes
                try:
                    if db is None:
                        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
                    busy, _, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:
                    self._failures += 1
                    # Logged once in a while, not per attempt: the backstop still bounds the WAL.
                    if self._failures in (1, 10) or self._failures % 1000 == 0:
                        logger.warning(
                            "spool %s: background checkpoint failed (%r; %d times); the writer's "
                            "own checkpoint still bounds the WAL",
                            self._path,
                            exc,
                            self._failures,
                        )
                    continue
                if not busy:
                    self.checkpoints += 1
                    self.frames_copied += max(int(copied), 0)
        finally:
            if db is not None:
                db.close()
