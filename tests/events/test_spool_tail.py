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


@pytest.mark.parametrize(
    ("acked", "left"),
    [
        ([1, 2, 3], [4, 5, 7, 8]),  # the oldest, as a run: the drainer's usual ack
        ((1, 2, 3), [4, 5, 7, 8]),  # the same as a tuple
        ([1, 2, 3, 4, 5], [7, 8]),
        ([4, 5], [1, 2, 3, 7, 8]),  # a run, not the oldest
        ([5, 6, 7], [1, 2, 3, 4, 8]),  # a run of numbers across a gap in what is held
        ([1, 2, 3, 4, 5, 6], [7, 8]),  # a run reaching past the gap (6 is not held)
        ([1, 1, 3], [2, 4, 5, 7, 8]),  # first, last and count of a run, but not one
        ([3, 2, 1], [4, 5, 7, 8]),  # the oldest, out of order
        ([1, 2, 3, 4, 5, 7, 8, 9, 10], []),  # more than is held
        ([], [1, 2, 3, 4, 5, 7, 8]),
    ],
)
def test_remove_leaves_exactly_the_others(acked: list[int], left: list[int]) -> None:
    tail = PendingTail(max_records=100, max_bytes=10**6)
    tail.extend((seq, record(seq), seq * 10) for seq in (1, 2, 3, 4, 5, 7, 8))
    tail.remove(acked)
    assert [seq for seq, _ in tail.after(0, 100)] == left
    assert [r.ce_id for _, r in tail.after(0, 100)] == [f"e-{seq}" for seq in left]
    assert tail._bytes == sum(seq * 10 for seq in left)  # what the byte bound trims by


@pytest.mark.parametrize("seed", range(3))
def test_tail_against_a_model(seed: int) -> None:
    """Random extends and removals, mostly the oldest records as runs (as the drainer
    acknowledges), against a dict of what must be held, under a byte bound."""
    rng = random.Random(seed)
    tail = PendingTail(max_records=10**6, max_bytes=3000)
    held: dict[int, int] = {}
    next_seq = 1
    for _ in range(3000):
        if rng.random() < 0.5:
            stored = [(next_seq + i, rng.randint(1, 60)) for i in range(rng.randint(1, 30))]
            next_seq += len(stored)
            tail.extend((seq, record(seq), size) for seq, size in stored)
            held.update(stored)
            while sum(held.values()) > 3000:  # the bound drops the oldest
                del held[min(held)]
        else:
            order = sorted(held)
            cut = rng.randint(0, len(order))
            if rng.random() < 0.7:
                acked = order[:cut]  # the oldest, a run if nothing was removed between
            else:
                acked = [*rng.sample(order, min(cut, len(order))), next_seq + 5]
            tail.remove(acked)
            for seq in acked:
                held.pop(seq, None)
        assert [seq for seq, _ in tail.after(0, 10**6)] == sorted(held)
        assert tail._bytes == sum(held.values())
