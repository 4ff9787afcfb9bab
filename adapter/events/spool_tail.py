"""The newest pending records of the spool, kept in memory as they are committed.

The drainer reads records moments after a source appended them. Reading them back
from SQLite cost a query and a header decode per record (~8 µs, a quarter of the
spool's CPU per event, docs/benchmarks.md); the objects the source handed over are
still in memory, so the spool keeps a bounded copy of its newest pending records and
answers :meth:`EventSpool.pending` from it whenever it can. SQLite stays the truth:
what does not fit here, and everything a previous process left, is read from disk.

The invariant that makes an answer from here identical to the query: the tail holds
*every* pending record numbered :attr:`PendingTail.start` or above, in order. Appends
extend it at the right; trimming to the bounds drops at the left and moves ``start``
up; acknowledged records leave it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from .records import OutboundRecord

__all__ = ["PendingTail"]


class PendingTail:
    """A bounded, ordered in-memory copy of the newest pending spool records."""

    def __init__(self, *, max_records: int = 10_000, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        # Parallel lists with a moving head: popping at the left is O(1), and the
        # sequence numbers stay sorted for bisect.
        self._seqs: list[int] = []
        self._records: list[OutboundRecord] = []
        self._sizes: list[int] = []
        self._head = 0
        self._bytes = 0
        #: Every pending record numbered this or above is held here.
        self.start = 1

    def __len__(self) -> int:
        return len(self._seqs) - self._head

    def reset(self, next_seq: int) -> None:
        """Forgets everything; only records numbered ``next_seq`` or above will be held."""
        self._seqs, self._records, self._sizes = [], [], []
        self._head = self._bytes = 0
        self.start = next_seq

    def extend(self, stored: Iterable[tuple[int, OutboundRecord, int]]) -> None:
        """Adds freshly committed ``(seq, record, size)``, numbered above everything held."""
        stored = list(stored)
        if stored:
            seqs, records, sizes = zip(*stored, strict=True)
            self._seqs += seqs
            self._records += records
            self._sizes += sizes
            self._bytes += sum(sizes)
        while len(self) and (len(self) > self.max_records or self._bytes > self.max_bytes):
            self._bytes -= self._sizes[self._head]
            self._head += 1
            self.start = self._seqs[self._head] if len(self) else self._seqs[-1] + 1
        self._compact()

    def covers(self, after: int) -> bool:
        """Whether the records numbered above ``after`` can be answered from here."""
        return after >= self.start - 1

    def after(self, after: int, limit: int) -> list[tuple[int, OutboundRecord]]:
        """Up to ``limit`` held records numbered above ``after``, oldest first."""
        first = bisect.bisect_right(self._seqs, after, lo=self._head)
        last = min(first + limit, len(self._seqs))
        return list(zip(self._seqs[first:last], self._records[first:last], strict=True))

    def remove(self, seqs: Sequence[int]) -> None:
        """Drops records that left the queue (acknowledged or dead-lettered)."""
        if self._drop_oldest_run(seqs):
            return
        gone = set(seqs)
        while len(self) and self._seqs[self._head] in gone:  # the oldest records first
            gone.discard(self._seqs[self._head])
            self._bytes -= self._sizes[self._head]
            self._head += 1
        if len(self) and gone and max(gone) >= self._seqs[self._head]:
            keep = [i for i in range(self._head, len(self._seqs)) if self._seqs[i] not in gone]
            self._seqs = [self._seqs[i] for i in keep]
            self._records = [self._records[i] for i in keep]
            self._sizes = [self._sizes[i] for i in keep]
            self._head = 0
            self._bytes = sum(self._sizes)
        self._compact()

    def _drop_oldest_run(self, seqs: Sequence[int]) -> bool:
        """The drainer's usual acknowledgement: the oldest records held, in order, as a
        run of numbers. Dropped with slices instead of a set test per record."""
        count, head = len(seqs), self._head
        if not count or len(self) < count or seqs[0] != self._seqs[head]:
            return False
        if seqs[-1] - seqs[0] != count - 1 or self._seqs[head + count - 1] != seqs[-1]:
            return False
        # Held numbers are distinct and ascending, so the first ``count`` of them, from
        # seqs[0] to seqs[-1], are exactly that run; ``seqs`` itself must be the same run.
        if seqs != self._seqs[head : head + count]:
            return False
        self._bytes -= sum(self._sizes[head : head + count])
        self._head = head + count
        self._compact()
        return True

    def _compact(self) -> None:
        if self._head > 4096 and self._head * 2 > len(self._seqs):
            del self._seqs[: self._head], self._records[: self._head], self._sizes[: self._head]
            self._head = 0
