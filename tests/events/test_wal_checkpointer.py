"""The spool's WAL is checkpointed beside the writer, not inside its commits.

A commit that crossed SQLite's default threshold (1000 pages) ran the checkpoint
itself and synced the database file: appends stalled 70-600 ms on this machine
kind. The writer's own threshold is now only a backstop (64 MiB of WAL), and a
second connection copies the WAL into the database once 4 MiB of records were
appended since its last checkpoint."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool
from adapter.events.spool_store import SpoolStore
from adapter.events.wal_checkpointer import WalCheckpointer

from .kafka_fixtures import wait_until

MiB = 1024 * 1024


def records(start: int, count: int, size: int = 4000) -> list[OutboundRecord]:
    return [
        OutboundRecord("t", b"k%d" % (i % 7), b"%08d" % i + b"v" * size, (("ce_id", b"%d" % i),), f"id-{i}")
        for i in range(start, start + count)
    ]


async def test_the_wal_is_copied_into_the_database_by_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    async with EventSpool(path, max_bytes=1024 * MiB) as spool:
        for start in range(0, 3000, 100):  # ~12 MiB in 30 commits
            assert all(await spool.append(records(start, 100)))
        # The writer alone would not checkpoint below 64 MiB of WAL (next test): data
        # in the database file means the background checkpoints ran.
        await wait_until(
            lambda: path.stat().st_size > 8 * MiB, within=10, what="the WAL copied into the database"
        )
        assert spool.depth == 3000
    async with EventSpool(path, max_bytes=1024 * MiB) as reopened:
        pending = await reopened.pending(5000)
        assert [r.ce_id for _, r in pending] == [f"id-{i}" for i in range(3000)]
        assert pending[-1][1] == records(2999, 1)[0]


def test_the_writer_checkpoints_only_as_a_backstop(tmp_path: Path) -> None:
    """The store's own connection, with no checkpointer running: 12 MiB of commits
    stay in the WAL (SQLite's default would have checkpointed every 4 MiB)."""
    path = tmp_path / "spool.db"
    store = SpoolStore(path, synchronous="normal", dedupe_window=1000, clock=time.time)
    store.open()
    try:
        for start in range(0, 3000, 100):
            outcome = store.append_groups([(records(start, 100), None)], 10**6, 1024 * MiB)
            assert outcome.results == [[True] * 100]
        assert path.with_name("spool.db-wal").stat().st_size > 11 * MiB
        assert path.stat().st_size < 1 * MiB
    finally:
        store.close()  # a TRUNCATE checkpoint: everything is in the database after it
    assert path.stat().st_size > 11 * MiB


async def test_a_checkpoint_follows_appends_and_an_idle_wal_is_left_alone(tmp_path: Path) -> None:
    """The WAL file keeps its size after a checkpoint (SQLite reuses it from its start),
    so its size cannot be the cue: the appended bytes the spool reports are."""
    path = tmp_path / "spool.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE t (v BLOB)")
    db.executemany("INSERT INTO t VALUES (?)", [(b"x" * 4000,) for _ in range(2000)])  # ~8 MiB
    assert path.with_name("spool.db-wal").stat().st_size > 4 * MiB
    checkpointer = WalCheckpointer(path, wal_bytes=4 * MiB, interval=0.01)
    checkpointer.start()
    try:
        await asyncio.sleep(0.2)
        assert checkpointer.checkpoints == 0  # nothing reported yet: a large WAL alone is no cue
        checkpointer.appended(8 * MiB)
        await wait_until(
            lambda: checkpointer.checkpoints == 1, within=5, what="a checkpoint after the appends"
        )
        assert checkpointer.frames_copied > 1000
        await asyncio.sleep(0.2)  # twenty rounds, idle
        assert checkpointer.checkpoints == 1
    finally:
        await asyncio.to_thread(checkpointer.stop)
        db.close()


async def test_a_failing_checkpoint_is_logged_and_the_thread_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not SQLite" * 1000)
    checkpointer = WalCheckpointer(path, wal_bytes=1 * MiB, interval=0.01)
    with caplog.at_level(logging.WARNING, logger="adapter.events.wal_checkpointer"):
        checkpointer.start()
        for _ in range(20):  # appends keep coming: the thread keeps trying
            checkpointer.appended(2 * MiB)
            await asyncio.sleep(0.02)
        await wait_until(
            lambda: "background checkpoint failed" in caplog.text, within=5, what="the failure logged"
        )
        await asyncio.to_thread(checkpointer.stop)
    assert checkpointer.checkpoints == 0
    assert str(path) in caplog.text
    assert "the writer's own checkpoint still bounds the WAL" in caplog.text
    checkpointer.stop()  # idempotent
