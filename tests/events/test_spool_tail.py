"""The spool's in-memory tail answers ``pending`` exactly as SQLite would: random
appends, acks, dead letters and reads (tail bounds small enough to overflow all the
time), each answer compared with the same query run on the database file by a
second connection."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool
from adapter.events.spool_tail import PendingTail


def record(n: int) -> OutboundRecord:
    return OutboundRecord(
        topic="t",
        key=b"k%d" % (n % 7),
        value=b"v" * (n % 50),
        headers=(("ce_id", b"%d" % n),),
        ce_id=f"e-{n}",
    )


def on_disk(path: Path, after: int, limit: int) -> list[tuple[int, str]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT seq, ce_id FROM records WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
    return [(seq, ce_id) for seq, ce_id in rows]


@pytest.mark.parametrize("seed", range(4))
async def test_pending_from_the_tail_matches_the_database(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "s.db"
    served_from_tail = 0
    async with EventSpool(path, tail_records=40, tail_bytes=2500) as spool:
        n = 0
        after = 0
        for _ in range(400):
            action = rng.random()
            if action < 0.3:
                count = rng.randint(1, 12)
                # Repeats of recent ids: duplicates are not stored, so they must not reach the tail.
                batch = [
                    record(rng.randint(max(0, n - 5), n) if rng.random() < 0.1 else n + i)
                    for i in range(count)
                ]
                n += count
                await spool.append(batch)
            elif action < 0.7:
                limit = rng.randint(1, 20)
                if rng.random() < 0.2:
                    after = 0  # a new round starts from the oldest pending
                covered = spool._tail.covers(after)
                got = [(seq, r.ce_id) for seq, r in await spool.pending(limit, after=after)]
                assert got == on_disk(path, after, limit), f"after={after} limit={limit}"
                served_from_tail += covered and bool(got)
                if got:
                    after = got[-1][0]
            else:
                head = on_disk(path, 0, rng.randint(1, 25))
                chosen = [seq for seq, _ in head if rng.random() < 0.8]  # mostly a prefix, not always
                if rng.random() < 0.1:
                    await spool.dead_letter(chosen, "test")
                else:
                    await spool.ack(chosen)
    assert served_from_tail > 20  # the tail really answered, not only the database


def test_tail_bounds_drop_the_oldest_and_move_start() -> None:
    tail = PendingTail(max_records=3, max_bytes=10**6)
    tail.reset(1)
    tail.extend((seq, record(seq), 1) for seq in range(1, 6))
    assert len(tail) == 3 and tail.start == 3
    assert not tail.covers(1) and tail.covers(2)
    assert [seq for seq, _ in tail.after(2, 10)] == [3, 4, 5]
    tail.remove([3, 5])
    assert [seq for seq, _ in tail.after(2, 10)] == [4]
    tail.remove([4])
    assert len(tail) == 0 and tail.covers(5) and tail.after(5, 10) == []
