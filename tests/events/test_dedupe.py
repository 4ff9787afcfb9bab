"""The spool's dedupe memory: a log in the file, lookups in memory; what a rolled-back
transaction claimed is forgotten, the window holds across reopening, and a spool from
before the log keeps what it remembered (and stays openable by an older adapter)."""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path

from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool
from adapter.events.spool_store import SpoolStore

TOPIC = "mesh.events"


def record(n: int) -> OutboundRecord:
    return OutboundRecord(TOPIC, b"k", b"v%d" % n, (("ce_id", b"e-%d" % n),), f"e-{n}")


def log_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [i.split("\x00", 1)[1] for (i,) in db.execute("SELECT identity FROM seen_log ORDER BY id")]


async def test_the_window_holds_across_reopening_and_the_log_is_bounded(tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "s.db", dedupe_window=32) as spool:  # slack: 32 // 256, none
        for n in range(0, 100, 10):
            assert await spool.append([record(i) for i in range(n, n + 10)]) == [True] * 10
    assert log_ids(tmp_path / "s.db") == [f"e-{n}" for n in range(68, 100)]
    async with EventSpool(tmp_path / "s.db", dedupe_window=32) as spool:
        assert await spool.append([record(99), record(68), record(60)]) == [False, False, True]
    async with EventSpool(tmp_path / "s.db", dedupe_window=8) as spool:  # a smaller window: pruned at open
        assert log_ids(tmp_path / "s.db") == [f"e-{n}" for n in (93, 94, 95, 96, 97, 98, 99, 60)]
        assert await spool.append([record(93), record(92)]) == [False, True]


async def test_the_log_is_pruned_in_small_steps(tmp_path: Path) -> None:
    """Pruning waits for window // 256 new identities, no more: a larger prune is a commit
    that holds up the appends behind it (dedupe.py)."""
    sizes = []
    async with EventSpool(tmp_path / "s.db", dedupe_window=2048) as spool:  # slack: 8
        for n in range(0, 2400, 3):
            await spool.append([record(i) for i in range(n, n + 3)])
            sizes.append(len(log_ids(tmp_path / "s.db")))
    assert max(sizes) <= 2048 + 8 + 2  # (a prune happens on the commit past the slack)
    assert sizes[-1] >= 2048
    pruned = [after for before, after in itertools.pairwise(sizes) if after < before]
    assert len(pruned) >= (2400 - 2048) // 11  # every few appends, not once


class _UnbindableTopic:
    """A topic SQLite cannot bind, whose record has the identity of ``record(2)``."""

    def __format__(self, spec: str) -> str:
        return TOPIC


def test_what_a_rolled_back_append_claimed_is_forgotten(tmp_path: Path) -> None:
    """An insert that fails after the claims: the group's transaction rolls back, then
    the append alone (its savepoint) does; neither leaves its identities remembered."""
    store = SpoolStore(tmp_path / "s.db", synchronous="normal", dedupe_window=100, clock=time.time)
    store.open()
    try:
        assert store.append_groups([([record(1)], None)], 10, 2**30).results == [[True]]
        unbindable = OutboundRecord(_UnbindableTopic(), b"k", b"{}", (), "e-2")  # type: ignore[arg-type]
        assert unbindable.identity == record(2).identity
        (failed,) = store.append_groups([([record(3), unbindable], None)], 10, 2**30).results
        assert isinstance(failed, sqlite3.Error)
        outcome = store.append_groups([([record(2), record(1), record(3)], None)], 10, 2**30)
        assert outcome.results == [[True, False, True]]
        assert store.remember([f"{TOPIC}\x00e-3", f"{TOPIC}\x00e-4"]) == 1
    finally:
        store.close()
    assert log_ids(tmp_path / "s.db") == ["e-1", "e-2", "e-3", "e-4"]


async def test_an_older_spool_keeps_what_it_remembered(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with EventSpool(path):  # the tables records, dead letters and claims, as before
        pass
    with sqlite3.connect(path) as db:  # the dedupe table of the adapters before the log
        db.execute("DROP TABLE seen_log")
        db.execute("CREATE TABLE seen (id INTEGER PRIMARY KEY, ce_id TEXT NOT NULL UNIQUE)")
        db.executemany("INSERT INTO seen (ce_id) VALUES (?)", [(f"{TOPIC}\x00e-{n}",) for n in (1, 2)])
    async with EventSpool(path) as spool:
        assert await spool.append([record(2), record(3), record(1)]) == [False, True, False]
    assert log_ids(path) == ["e-1", "e-2", "e-3"]
    with sqlite3.connect(path) as db:
        # Emptied and left as it was: an older adapter opening the file still finds its table.
        assert db.execute("SELECT count(*) FROM seen").fetchone() == (0,)
        db.execute("INSERT INTO seen (ce_id) VALUES (?) ON CONFLICT (ce_id) DO NOTHING", (f"{TOPIC}\x00e-9",))
    async with EventSpool(path) as spool:  # what it remembered meanwhile moves in too
        assert await spool.append([record(9), record(3), record(4)]) == [False, False, True]
    assert log_ids(path) == ["e-1", "e-2", "e-3", "e-9", "e-4"]
