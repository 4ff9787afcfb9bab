"""The spool's statements in a few cached shapes: padding that changes nothing it
stores or removes, and a bounded number of statement texts whatever the batches."""

from __future__ import annotations

import random
import re
import sqlite3
import time
from pathlib import Path

import pytest

from adapter.events.records import OutboundRecord
from adapter.events.spool_store import SpoolStore
from adapter.events.sql_shapes import MAX_ROWS, insert_rows, key_marks, padded_keys, shape

_BOUND = re.compile(r"[xX]'[0-9A-Fa-f]*'|'(?:[^']|'')*'|\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b|\bNULL\b")
SHAPES = [(1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (100, 128), (129, 256), (511, 512), (512, 512)]


@pytest.mark.parametrize(("rows", "padded"), SHAPES)
def test_a_batch_is_padded_to_the_next_power_of_two(rows: int, padded: int) -> None:
    assert shape(rows) == padded
    assert len(padded_keys(list(range(7, 7 + rows)))) == padded
    assert key_marks(rows).count("?") == padded


@pytest.mark.parametrize("rows", [0, MAX_ROWS + 1])
def test_a_batch_out_of_range_is_refused(rows: int) -> None:
    with pytest.raises(ValueError, match="1 to 512 rows"):
        shape(rows)


def test_padded_inserts_store_exactly_the_real_rows_in_order() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, n INTEGER)")
    expected: list[tuple[int, str, int | None]] = []
    for rows in [1, 3, 5, 17, 64, 65, 200]:
        batch = [(f"r{len(expected) + i}", None if i % 3 == 0 else i) for i in range(rows)]
        values: list[object] = [value for row in batch for value in row]
        last = db.execute(*insert_rows("INSERT INTO t (name, n)", values, 2)).lastrowid
        expected += [(len(expected) + i + 1, name, n) for i, (name, n) in enumerate(batch)]
        assert last == len(expected)  # the last real row: consecutive numbers, in order
    assert db.execute("SELECT seq, name, n FROM t ORDER BY seq").fetchall() == expected


def test_padded_keys_select_the_same_rows() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY)")
    db.execute(*insert_rows("INSERT INTO t (seq)", list(range(1, 101)), 1))
    for keys in ([5], [9, 2, 77], list(range(10, 43))):
        padded = padded_keys(keys)
        (count,) = db.execute(
            f"SELECT count(*) FROM t WHERE seq IN ({key_marks(len(keys))})", padded
        ).fetchone()
        assert count == len(keys)


def record(n: int) -> OutboundRecord:
    return OutboundRecord(
        "mesh.events", b"k%d" % (n % 7), b"v" * (n % 50), (("ce_id", b"e-%d" % n),), f"e-{n}"
    )


def test_the_store_uses_a_bounded_set_of_statement_texts_and_counts_right(tmp_path: Path) -> None:
    """Groups of every size from 1 to 300 and acknowledgements in runs, out of order,
    repeated and already removed: few distinct statements, and the in-memory counts
    agree with the file's after each round and after a reopen."""
    rnd = random.Random(7)
    store = SpoolStore(tmp_path / "s.db", synchronous="normal", dedupe_window=1_000, clock=time.time)
    store.open()
    texts: set[str] = set()
    store._conn().set_trace_callback(texts.add)  # the store's own connection: what it prepares
    pending: list[int] = []
    removed: list[int] = []
    n = 0
    sizes = list(range(1, 301))
    rnd.shuffle(sizes)
    try:
        for size in sizes:
            if pending and rnd.random() < 0.5:  # a run in spool order
                delivered = pending[: rnd.randint(1, len(pending))]
                pending = pending[len(delivered) :]
            else:  # scattered, shuffled, with a repeat and one removed before
                delivered = rnd.sample(pending, k=min(len(pending), rnd.randint(0, 40)))
                pending = [seq for seq in pending if seq not in delivered]
                removed += delivered
                delivered += delivered[:1] + removed[:1]
            group = [record(n + i) for i in range(size)]
            n += size
            outcome = store.append_groups([(group, None)], 10**9, 2**40, delivered)
            pending += [seq for seq, _, _ in outcome.stored]
            assert outcome.snapshot.depth == len(pending)
        last = outcome.snapshot
        if pending:
            store.remove(pending[::3], "a reason")  # dead-lettered, not a run
    finally:
        store.close()
    # The trace has the values bound in: each one back to a placeholder gives the text.
    statements = {_BOUND.sub("?", text) for text in texts}
    assert len(statements) <= 60, sorted(s[:80] for s in statements)
    reopened = SpoolStore(tmp_path / "s.db", synchronous="normal", dedupe_window=1_000, clock=time.time)
    snapshot = reopened.open()
    try:
        kept = [seq for seq in pending if seq not in pending[::3]]
        assert [seq for seq, _ in reopened.pending(10**6, 0)] == kept
        assert (snapshot.depth, snapshot.dead_letters, snapshot.last_seq) == (len(kept), len(pending[::3]), n)
        assert snapshot.bytes == sum(r.size for seq, r in reopened.pending(10**6, 0))
        assert last.depth == len(pending)
    finally:
        reopened.close()
