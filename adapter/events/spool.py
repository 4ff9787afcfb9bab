"""Durable local spool of outbound records, between the sources and Kafka.

A source appends records here *before* it acknowledges them to the vendor; the
drainer (:mod:`adapter.events.delivery`) removes them only after Kafka
acknowledged them. So an event the adapter accepted survives a Kafka outage and a
crash of the adapter (``kill -9`` included), and is delivered at least once.

Storage is SQLite (stdlib ``sqlite3``) in WAL mode, not a hand-written log: a
well-kept library with years of crash testing beats our own framing, checksums
and recovery code. Durability per ``synchronous`` setting:

* ``"normal"``: a commit is in the OS page cache when ``append`` returns, so it
  survives the process dying (``kill -9``, OOM); the last commits can be lost if
  the *machine* loses power.
* ``"full"``: the WAL is fsynced at every commit, so it also survives power loss,
  at a throughput cost (see ``docs/delivery.md`` for measured figures).

All SQLite work runs on one dedicated thread (:mod:`.spool_writer`; the event
loop never blocks on disk) and is therefore serialised. Appends that arrive
while a commit is in progress share the next transaction (group commit). The
WAL is checkpointed into the database by a second thread
(:mod:`.wal_checkpointer`), so no commit waits for a checkpoint's sync of the
database file.

Exceptions::

    SpoolError
    ├── SpoolFull     the batch does not fit (carries depth and bytes)
    ├── SpoolClosed   used before start() or after stop()
    └── SpoolLocked   another process has this spool open
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

from .delivery_claims import DeliveryClaim
from .records import OutboundRecord
from .spool_errors import SpoolClosed, SpoolError, SpoolFull, SpoolLocked
from .spool_files import acquire_lock
from .spool_store import AppendOutcome, SpoolSnapshot, SpoolStore
from .spool_tail import PendingTail
from .spool_writer import SpoolWriter
from .wal_checkpointer import WalCheckpointer

__all__ = ["EventSpool", "SpoolClosed", "SpoolError", "SpoolFull", "SpoolLocked"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
MiB = 1024 * 1024


class EventSpool:
    """The durable queue of records waiting for Kafka.

    Example::

        async with EventSpool(Path("var/spool/events.db")) as spool:
            accepted = await spool.append(records)   # durable when it returns
            for seq, record in await spool.pending(500):
                ...
            await spool.ack(delivered_seqs)

    Sequence numbers are assigned at append time, ascend in append order and are
    never reused, so ``pending`` is the order the sources accepted the events in.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_records: int = 100_000,
        max_bytes: int = 256 * MiB,
        synchronous: Literal["normal", "full"] = "normal",
        dedupe_window: int = 200_000,
        clock: Callable[[], float] = time.time,
        tail_records: int = 10_000,
        tail_bytes: int = 16 * MiB,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        """``tail_records`` / ``tail_bytes`` bound the in-memory copy of the newest
        pending records that :meth:`pending` answers from (:mod:`.spool_tail`).
        ``on_failure(why)`` hears that the spool can no longer store anything (its
        writer thread died), for health."""
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        if max_records < 1 or max_bytes < 1 or dedupe_window < 0:
            raise ValueError("max_records and max_bytes must be positive, dedupe_window not negative")
        self.path = Path(path)
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.synchronous = synchronous
        self.dedupe_window = dedupe_window
        self._clock = clock
        self._store = SpoolStore(self.path, synchronous=synchronous, dedupe_window=dedupe_window, clock=clock)
        self._writer = SpoolWriter(
            f"spool-{self.path.name}",
            commit=lambda groups, delivered: self._store.append_groups(
                groups, self.max_records, self.max_bytes, delivered
            ),
            committed=self._committed,
            remove=lambda seqs: self._store.remove(seqs, None),
            died=on_failure,
        )
        self._lock_fd: int | None = None
        self._state: Literal["new", "open", "closing", "closed"] = "new"
        self._snapshot = SpoolSnapshot(depth=0, bytes=0, oldest_at=None, dead_letters=0)
        self._has_records = asyncio.Event()
        self._has_room = asyncio.Event()
        self._appended = asyncio.Event()
        self._tail = PendingTail(max_records=tail_records, max_bytes=tail_bytes)
        self._checkpointer = WalCheckpointer(self.path)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Opens (or creates) the spool and recovers what a previous process left.

        Raises :class:`SpoolLocked` when another process has it open.
        """
        if self._state == "open":
            return
        if self._state != "new":
            raise SpoolClosed("a stopped EventSpool cannot be restarted; make a new one")
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = acquire_lock(self.path.with_name(self.path.name + ".lock"))
        self._writer.start()
        try:
            self._apply(await self._run(self._store.open))
            self._tail.reset(self._snapshot.last_seq + 1)  # what is on disk is read from disk
        except BaseException:
            await self._release()
            self._state = "closed"
            raise
        self._state = "open"
        self._checkpointer.start()
        snap = self._snapshot
        if snap.depth:
            logger.info(
                "spool %s recovered %d pending events (%d bytes) from a previous run; they will be delivered",
                self.path,
                snap.depth,
                snap.bytes,
            )
        else:
            logger.info("spool %s opened (empty, synchronous=%s)", self.path, self.synchronous)

    async def stop(self) -> None:
        """Commits appends already queued, then closes the database. Idempotent."""
        if self._state in ("closing", "closed"):
            return
        if self._state == "new":
            self._state = "closed"
            return
        self._state = "closing"
        await self._release()  # the writer commits the appends queued before it closes
        self._state = "closed"
        logger.info("spool %s closed with %d events pending", self.path, self._snapshot.depth)

    async def __aenter__(self) -> EventSpool:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- state -------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Records waiting for Kafka."""
        return self._snapshot.depth

    @property
    def bytes(self) -> int:
        """Payload bytes (``OutboundRecord.size``) waiting for Kafka; not the file size."""
        return self._snapshot.bytes

    @property
    def dead_letters(self) -> int:
        """Records set aside by :meth:`dead_letter` (kept in the database, never delivered)."""
        return self._snapshot.dead_letters

    @property
    def oldest_pending_age(self) -> float:
        """Seconds the oldest pending record has waited (0.0 when empty)."""
        oldest = self._snapshot.oldest_at
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    def now(self) -> float:
        """The spool's clock (the one its records' enqueue times are read on)."""
        return self._clock()

    def delivered_through(self, moment: float) -> bool:
        """Whether no record enqueued at or before ``moment`` (:meth:`now`) still waits
        for Kafka: every one was delivered (or set aside as a dead letter)."""
        oldest = self._snapshot.oldest_at
        return oldest is None or oldest > moment

    @property
    def has_room(self) -> bool:
        """Below both limits (a batch may still not fit)."""
        return self._has_room.is_set()

    async def wait_for_room(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (the API)
        """Waits until the spool is below both limits; False when ``timeout`` passed first."""
        return await _wait_event(self._has_room, timeout)

    @property
    def last_seq(self) -> int:
        """The highest sequence number stored so far (records above a number exist
        while this is larger)."""
        return self._snapshot.last_seq

    async def wait_for_records_after(self, seq: int) -> None:
        """Waits until a record numbered above ``seq`` has been stored."""
        while self._snapshot.last_seq <= seq:
            self._appended.clear()
            await self._appended.wait()

    async def wait_for_records(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Waits until at least one record is pending; False when ``timeout`` passed first.

        The drainer's way to sleep while idle without polling.
        """
        return await _wait_event(self._has_records, timeout)

    # -- operations --------------------------------------------------------------------------

    async def append(
        self, records: Sequence[OutboundRecord], *, claim: DeliveryClaim | None = None
    ) -> list[bool]:
        """Stores ``records`` durably, all or nothing; returns per record whether it was new.

        False means its :attr:`~OutboundRecord.identity` (topic + ``ce_id``) was accepted
        before (within the dedupe window, or earlier in this batch): the source may
        acknowledge it, it is not stored twice. With ``claim`` (a webhook delivery id,
        see :mod:`adapter.events.delivery_claims`), an id claimed before and not yet
        expired makes every record a duplicate; the claim commits with the records.
        Raises :class:`SpoolFull` when the new records do not fit (nothing is stored).
        """
        self._check_open()
        if not records:
            return []
        return await self._writer.append(list(records), claim)

    async def remember(self, identities: Sequence[str]) -> int:
        """Makes later appends of these :attr:`~OutboundRecord.identity` values duplicates
        (within the dedupe window): events Kafka already has from another replica.
        Returns how many were not known yet."""
        self._check_open()
        if not identities:
            return 0
        return await self._run(self._store.remember, list(identities))

    async def pending(self, limit: int, *, after: int = 0) -> list[tuple[int, OutboundRecord]]:
        """Up to ``limit`` records waiting for Kafka, oldest first, with their sequence
        numbers; only those numbered above ``after`` (records already in flight are skipped)."""
        self._check_open()
        if self._tail.covers(after):
            return self._tail.after(after, limit)
        return await self._run(self._store.pending, limit, after)

    async def ack(self, seqs: Sequence[int]) -> None:
        """Removes delivered records. Unknown sequence numbers are ignored (acks are idempotent)."""
        self._check_open()
        if seqs:
            await self._remove(list(seqs), None)

    async def dead_letter(self, seqs: Sequence[int], reason: str) -> None:
        """Moves records Kafka can never accept (too large, invalid topic) out of the queue.

        They stay in the database (table ``dead_letters``, with ``reason``) for an
        operator to inspect; they are not lost, only no longer retried.
        """
        self._check_open()
        if seqs:
            await self._remove(list(seqs), reason)

    # -- internals ---------------------------------------------------------------------------

    def _committed(self, outcome: AppendOutcome) -> None:
        """On the loop, as each group commit lands, before its appends return."""
        self._apply(outcome.snapshot)
        self._tail.extend(outcome.stored)
        self._checkpointer.appended(sum(size for _, _, size in outcome.stored))

    async def _remove(self, seqs: list[int], dead_letter_reason: str | None) -> None:
        # Out of the tail first, so pending() cannot hand out a record being removed.
        self._tail.remove(seqs)
        try:
            if dead_letter_reason is None:
                snapshot = await self._writer.ack(seqs)  # merged with the other acks waiting
            else:
                snapshot = await self._run(self._store.remove, seqs, dead_letter_reason)
        except BaseException:
            # Still on disk, no longer in the tail: read from disk until the tail refills.
            self._tail.reset(self._snapshot.last_seq + 1)
            raise
        self._apply(snapshot)

    def _apply(self, snapshot: SpoolSnapshot) -> None:
        if snapshot.version < self._snapshot.version:
            return  # an older one that came back late (a commit's comes back one loop step sooner)
        if snapshot.last_seq > self._snapshot.last_seq:
            self._appended.set()
        self._snapshot = snapshot
        _toggle(self._has_records, snapshot.depth > 0)
        _toggle(self._has_room, snapshot.depth < self.max_records and snapshot.bytes < self.max_bytes)

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        return await self._writer.call(fn, *args)

    async def _release(self) -> None:
        await asyncio.to_thread(self._checkpointer.stop)
        try:
            if self._writer.alive:  # a dead writer's connection dies with the process
                await self._run(self._store.close)
        finally:
            await self._writer.stop()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _check_open(self) -> None:
        if self._state != "open":
            raise SpoolClosed(f"spool {self.path} is {self._state}")


def _toggle(event: asyncio.Event, value: bool) -> None:
    if value:
        event.set()
    else:
        event.clear()


async def _wait_event(event: asyncio.Event, timeout: float | None) -> bool:  # noqa: ASYNC109
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
