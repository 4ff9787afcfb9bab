"""The SQLite side of the event spool: schema, transactions, header codec and the
process lock. Everything here runs on the spool's one dedicated thread; the
asyncio side is :class:`adapter.events.spool.EventSpool`."""

from __future__ import annotations

import logging
import sqlite3
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .dedupe import SEEN_SCHEMA, SeenIds
from .delivery_claims import CLAIMS_SCHEMA, DeliveryClaim, claim_delivery, prune_claims
from .records import OutboundRecord
from .spool_errors import SpoolClosed, SpoolError, SpoolFull
from .spool_files import restrict_to_owner
from .sql_shapes import MAX_ROWS, insert_rows, key_marks, padded_keys
from .wal_checkpointer import BACKSTOP_PAGES

__all__ = ["AppendOutcome", "SpoolSnapshot", "SpoolStore"]

logger = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: never reused, even when emptied
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers BLOB NOT NULL,
    ce_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    enqueued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers BLOB NOT NULL,
    ce_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    failed_at REAL NOT NULL,
    reason TEXT NOT NULL
);
"""
_COLUMNS = "seq, topic, key, value, headers, ce_id, size, enqueued_at"
_CLAIMS_PRUNE_SECONDS = 1.0  # expired delivery claims are garbage: forgotten once a second
# GIL_STEPS: the sqlite3 module gives the GIL up around every sqlite3_step (one per row
# of executemany, one per row a RETURNING clause yields) and must win it back from the
# event loop's thread each time. A commit of 160 records stepped row by row took 63-518 ms
# instead of 2-3 ms while another thread ran Python (a 0.5-5 ms switch interval per
# step), so the statements here insert, claim and delete many rows in one step each.
# Each statement also gives the GIL up at its reset (a SELECT once more, stepping past
# its last row): a commit's statements are kept few, and it ends with
# ``Connection.commit()``, which prepares, steps and finalizes ``COMMIT`` in one
# release, where an executed ``"COMMIT"`` gives it up twice.
# SQL_SHAPES: each batch padded to one of a few sizes, so its text is a prepared
# statement the connection has cached (sql_shapes.py).
# Header codec: (name length u16, value length u32) then both, per header.
_HEADER = struct.Struct(">HI")


@dataclass(frozen=True, slots=True)
class SpoolSnapshot:
    depth: int
    bytes: int
    oldest_at: float | None
    dead_letters: int
    #: The highest sequence number ever stored (0 for a new spool).
    last_seq: int = 0
    #: Counts the snapshots the store took, in order: results reach the event loop
    #: by different paths, so a late older snapshot must not overwrite a newer one.
    version: int = 0


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    #: Per append of the group: its per-record flags, or why it stored nothing.
    results: list[list[bool] | Exception]
    snapshot: SpoolSnapshot
    #: What the group stored, ``(seq, record, size)`` in sequence order.
    stored: list[tuple[int, OutboundRecord, int]]


class SpoolStore:
    def __init__(
        self, path: Path, *, synchronous: str, dedupe_window: int, clock: Callable[[], float]
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._seen = SeenIds(dedupe_window)
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._depth = 0
        self._bytes = 0
        self._oldest_at: float | None = None
        self._dead = 0
        self._last_seq = 0
        self._snapshots = 0
        self._claims_pruned_at = float("-inf")

    def open(self) -> SpoolSnapshot:
        restrict_to_owner(self._path)
        db = sqlite3.connect(self._path, isolation_level=None)  # transactions are explicit
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolError(f"{self._path}: SQLite refused WAL mode (got {mode!r})")
            db.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
            db.execute("PRAGMA journal_size_limit=67108864")  # truncate a WAL grown during an outage
            # Checkpoints run beside the writer (wal_checkpointer.py); its own is the backstop.
            db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise SpoolError(f"{self._path} has schema {version}, newer than this adapter's")
            db.executescript(_SCHEMA + SEEN_SCHEMA + CLAIMS_SCHEMA)
            db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            db.execute("BEGIN IMMEDIATE")  # an older spool's dedupe rows move in one step
            self._seen.load(db)
            db.commit()  # GIL_STEPS
            self._depth, self._bytes = db.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM records"
            ).fetchone()
            self._dead = db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
            self._last_seq = 0 if row is None else int(row[0])
        except BaseException:
            db.close()
            raise
        self._db = db
        self._oldest_at = self._query_oldest()
        return self._snapshot()

    def close(self) -> None:
        if self._db is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None

    def append_groups(
        self,
        groups: list[tuple[list[OutboundRecord], DeliveryClaim | None]],
        max_records: int,
        max_bytes: int,
        delivered: Sequence[int] = (),
    ) -> AppendOutcome:
        """One transaction: first removes the ``delivered`` records (acks waiting beside
        the appends: one commit instead of two, see spool_writer.py), then appends."""
        # Sized before the removal: a group that fits only thanks to it goes one by one.
        sized = self._sized_if_together(groups, max_records, max_bytes)
        if sized is not None:
            try:
                return self._transaction(
                    lambda db, stored: self._append_together(db, groups, sized, stored), delivered
                )
            except Exception as exc:  # each append gets its own outcome, one by one
                logger.debug("spool %s: appending a group at once failed (%r); one by one", self._path, exc)
        return self._transaction(
            lambda db, stored: [
                self._append_one(db, records, claim, max_records, max_bytes, stored)
                for records, claim in groups
            ],
            delivered,
        )

    def _transaction(
        self,
        work: Callable[
            [sqlite3.Connection, list[tuple[int, OutboundRecord, int]]], list[list[bool] | Exception]
        ],
        delivered: Sequence[int],
    ) -> AppendOutcome:
        db = self._conn()
        before = (self._depth, self._bytes, self._oldest_at, self._last_seq, self._dead)
        db.execute("BEGIN IMMEDIATE")
        stored: list[tuple[int, OutboundRecord, int]] = []
        try:
            if delivered:
                self._delete(db, delivered, None)
            now = self._clock()
            if now - self._claims_pruned_at >= _CLAIMS_PRUNE_SECONDS:
                prune_claims(db, now)
                self._claims_pruned_at = now
            results = work(db, stored)
            self._seen.prune(db)
            db.commit()  # GIL_STEPS
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._depth, self._bytes, self._oldest_at, self._last_seq, self._dead = before
            self._seen.rolled_back()
            raise
        self._seen.committed()
        return AppendOutcome(results, self._snapshot(), stored)

    def remember(self, identities: list[str]) -> int:
        """Marks identities as accepted (records another replica delivered); returns how
        many were new."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh = sum(self._seen.claim(db, identities))
            self._seen.prune(db)
            db.commit()  # GIL_STEPS
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._seen.rolled_back()
            raise
        self._seen.committed()
        return fresh

    def pending(self, limit: int, after: int) -> list[tuple[int, OutboundRecord]]:
        rows = self._conn().execute(
            "SELECT seq, topic, key, value, headers, ce_id FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [
            (seq, OutboundRecord(topic=topic, key=key, value=value, headers=_decode_headers(h), ce_id=ce_id))
            for seq, topic, key, value, h, ce_id in rows
        ]

    def remove(self, seqs: Sequence[int], dead_letter_reason: str | None) -> SpoolSnapshot:
        db = self._conn()
        before = (self._depth, self._bytes, self._oldest_at, self._dead)
        db.execute("BEGIN IMMEDIATE")
        try:
            self._delete(db, seqs, dead_letter_reason)
            db.commit()  # GIL_STEPS
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._depth, self._bytes, self._oldest_at, self._dead = before
            raise
        return self._snapshot()

    def _delete(self, db: sqlite3.Connection, seqs: Sequence[int], dead_letter_reason: str | None) -> None:
        """Removes ``seqs`` (dead-lettered with a reason) inside the caller's transaction,
        and accounts for them; the caller restores the counts if it rolls back."""
        removed = removed_bytes = dead = 0
        filters = list(_seq_filters(seqs))
        for which, chunk in filters:
            if dead_letter_reason is not None:
                dead += db.execute(
                    f"INSERT OR IGNORE INTO dead_letters SELECT {_COLUMNS}, ?, ? FROM records WHERE {which}",
                    (self._clock(), dead_letter_reason, *chunk),
                ).rowcount
            # Counted, then deleted: two steps, not one per row (GIL_STEPS).
            if which == _RUN:  # the usual case, and then the only filter
                # The records left are those outside the run: the oldest of them is read
                # with the count, one statement a commit less (GIL_STEPS).
                count, size, oldest = db.execute(_COUNT_RUN_AND_OLDEST_LEFT, chunk).fetchone()
                self._oldest_at = None if oldest is None else float(oldest)
            else:
                count, size = db.execute(
                    f"SELECT count(*), coalesce(sum(size), 0) FROM records WHERE {which}", chunk
                ).fetchone()
            db.execute(f"DELETE FROM records WHERE {which}", chunk)
            removed += count
            removed_bytes += size
        self._depth -= removed
        self._bytes -= removed_bytes
        self._dead += dead
        if filters and filters[0][0] != _RUN:
            self._oldest_at = self._query_oldest()

    def _sized_if_together(
        self,
        groups: list[tuple[list[OutboundRecord], DeliveryClaim | None]],
        max_records: int,
        max_bytes: int,
    ) -> list[tuple[OutboundRecord, int]] | None:
        """The group's ``(record, size)`` pairs if it is the usual one: no delivery claims,
        and room for every record even if none is a duplicate, so no append of it can be
        refused alone. None otherwise."""
        if any(claim is not None for _, claim in groups):
            return None
        sized = [(r, r.size) for records, _ in groups for r in records]
        fits = self._depth + len(sized) <= max_records and self._bytes + sum(n for _, n in sized) <= max_bytes
        return sized if fits else None

    def _append_together(
        self,
        db: sqlite3.Connection,
        groups: list[tuple[list[OutboundRecord], DeliveryClaim | None]],
        sized: list[tuple[OutboundRecord, int]],
        stored: list[tuple[int, OutboundRecord, int]],
    ) -> list[list[bool] | Exception]:
        """A group :meth:`_sized_if_together` let through, in a few statements (GIL_STEPS),
        without a savepoint: if it fails, the caller rolls back and appends one by one."""
        # In append order: the first of repeats wins across appends, as one by one.
        fresh = self._seen.claim(db, [r.identity for r, _ in sized])
        new = [entry for entry, is_new in zip(sized, fresh, strict=True) if is_new]
        now = self._clock()
        last = self._insert(db, new, now)
        self._note_stored(new, last, now, stored)
        results: list[list[bool] | Exception] = []
        at = 0
        for batch, _ in groups:
            results.append(fresh[at : at + len(batch)])
            at += len(batch)
        return results

    def _append_one(
        self,
        db: sqlite3.Connection,
        records: list[OutboundRecord],
        claim: DeliveryClaim | None,
        max_records: int,
        max_bytes: int,
        stored: list[tuple[int, OutboundRecord, int]],
    ) -> list[bool] | Exception:
        # A savepoint per append: one that does not fit (or fails) is undone alone,
        # the others of the group still commit.
        db.execute("SAVEPOINT one_append")
        mark = self._seen.mark()
        try:
            if claim is not None and not claim_delivery(db, claim, self._clock()):
                db.execute("RELEASE one_append")
                return [False] * len(records)  # a replayed delivery: nothing stored
            # Per topic: an event fanned out to several topics is one record on each.
            fresh = self._seen.claim(db, [r.identity for r in records])
            new = [(r, r.size) for r, is_new in zip(records, fresh, strict=True) if is_new]
            new_bytes = sum(size for _, size in new)
            if new and (self._depth + len(new) > max_records or self._bytes + new_bytes > max_bytes):
                db.execute("ROLLBACK TO one_append")
                db.execute("RELEASE one_append")
                self._seen.undo(mark)
                return SpoolFull(
                    depth=self._depth,
                    bytes=self._bytes,
                    max_records=max_records,
                    max_bytes=max_bytes,
                    wanted=len(new),
                )
            now = self._clock()
            last = self._insert(db, new, now)
            db.execute("RELEASE one_append")
        except Exception as exc:
            db.execute("ROLLBACK TO one_append")
            db.execute("RELEASE one_append")
            self._seen.undo(mark)
            return exc
        self._note_stored(new, last, now, stored)
        return fresh

    def _insert(self, db: sqlite3.Connection, new: list[tuple[OutboundRecord, int]], now: float) -> int:
        """Inserts ``(record, size)`` rows enqueued ``now``; returns the last sequence number (0: none)."""
        last: int | None = 0
        for i in range(0, len(new), MAX_ROWS):
            rows = new[i : i + MAX_ROWS]
            # One statement for all rows (GIL_STEPS): executemany steps once per row.
            last = db.execute(
                *insert_rows(  # SQL_SHAPES; topic, the first column, is never NULL
                    "INSERT INTO records (topic, key, value, headers, ce_id, size, enqueued_at)",
                    [
                        value
                        for r, size in rows
                        for value in (
                            r.topic,
                            None if r.key is None else _blob(r.key),
                            _blob(r.value),
                            _encode_headers(r.headers),
                            r.ce_id,
                            size,
                            now,
                        )
                    ],
                    7,
                )
            ).lastrowid
        assert last is not None
        return last

    def _note_stored(
        self,
        new: list[tuple[OutboundRecord, int]],
        last: int,
        now: float,
        stored: list[tuple[int, OutboundRecord, int]],
    ) -> None:
        """Accounts for the rows :meth:`_insert` stored (numbered up to ``last``)."""
        if not new:
            return
        # One connection, AUTOINCREMENT, statements in order: the rows got consecutive numbers.
        first = last - len(new) + 1
        stored.extend((first + i, r, size) for i, (r, size) in enumerate(new))
        self._last_seq = last
        self._depth += len(new)
        self._bytes += sum(size for _, size in new)
        if self._oldest_at is None:
            self._oldest_at = now

    def _query_oldest(self) -> float | None:
        row = self._conn().execute("SELECT enqueued_at FROM records ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def _snapshot(self) -> SpoolSnapshot:
        self._snapshots += 1
        return SpoolSnapshot(
            self._depth, self._bytes, self._oldest_at, self._dead, self._last_seq, self._snapshots
        )

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise SpoolClosed(f"spool {self._path} is not open")
        return self._db


#: The filter of one run of sequence numbers (:func:`_seq_filters` yields it alone).
_RUN = "seq BETWEEN ? AND ?"
# A run's count and size, and the oldest record outside it: two rowid seeks, before
# and after the run (the drainer acknowledges from the head, so usually the after).
_COUNT_RUN_AND_OLDEST_LEFT = (
    "SELECT count(*), coalesce(sum(size), 0), coalesce("
    "(SELECT enqueued_at FROM records WHERE seq < ?1 ORDER BY seq LIMIT 1),"
    " (SELECT enqueued_at FROM records WHERE seq > ?2 ORDER BY seq LIMIT 1))"
    " FROM records WHERE seq BETWEEN ?1 AND ?2"
)


def _seq_filters(seqs: Sequence[int]) -> Iterator[tuple[str, list[int]]]:
    """``WHERE`` conditions, with their parameters, that select ``seqs`` between them.

    The drainer acknowledges in spool order, so the records delivered together are
    usually one run of numbers: one range then, which SQLite walks once instead of
    looking up each number of an ``IN`` list (the store's CPU a record went from ~0.82
    to ~0.78 of the unpadded statements', three rounds of ``bench/spool_store_cost.py``'s
    workload). Otherwise ``IN`` lists in cached shapes (SQL_SHAPES).
    """
    if not seqs:
        return
    ordered = sorted(set(seqs))
    if ordered[-1] - ordered[0] == len(ordered) - 1:  # distinct and sorted: one run
        yield _RUN, [ordered[0], ordered[-1]]
        return
    for i in range(0, len(ordered), MAX_ROWS):
        chunk = padded_keys(ordered[i : i + MAX_ROWS])
        yield f"seq IN ({key_marks(len(chunk))})", chunk


#: Blobs are bound as ``bytearray``, at about a third of the cost of ``bytes`` on
#: Python 3.11 (binding, in sql_shapes.py's docstring).
_blob = bytearray
_EMPTY_BLOB = bytearray()


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> bytearray:
    parts: list[bytes] = []
    for name, value in headers:
        raw = name.encode()
        parts += (_HEADER.pack(len(raw), len(value)), raw, value)
    return _EMPTY_BLOB.join(parts)  # (a bytearray: see _blob)


def _decode_headers(blob: bytes) -> tuple[tuple[str, bytes], ...]:
    headers: list[tuple[str, bytes]] = []
    at = 0
    while at < len(blob):
        name_len, value_len = _HEADER.unpack_from(blob, at)
        at += _HEADER.size
        name = blob[at : at + name_len].decode()
        at += name_len
        headers.append((name, blob[at : at + value_len]))
        at += value_len
    return tuple(headers)
