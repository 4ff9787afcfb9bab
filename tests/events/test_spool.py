"""EventSpool: durability, order, dedupe, limits, recovery (including after a real kill -9)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from adapter.events.records import OutboundRecord
from adapter.events.spool import EventSpool, SpoolClosed, SpoolFull, SpoolLocked
from adapter.events.spool_store import SpoolStore

ROOT = Path(__file__).resolve().parents[2]


def record(
    n: int, *, key: bytes | None = b"device-1", size: int = 10, ce_id: str | None = None
) -> OutboundRecord:
    return OutboundRecord(
        topic="mesh.events",
        key=key,
        value=b"%06d" % n + b"." * size,
        headers=(("ce_id", b"e-%d" % n), ("content-type", b"application/json"), ("empty", b"")),
        ce_id=ce_id or f"e-{n}",
    )


@pytest_asyncio.fixture
async def spool(tmp_path: Path) -> AsyncIterator[EventSpool]:
    async with EventSpool(tmp_path / "spool.db") as opened:
        yield opened


async def test_append_pending_ack_round_trip(spool: EventSpool) -> None:
    records = [record(1), record(2, key=None), record(3)]
    assert await spool.append(records) == [True, True, True]
    assert spool.depth == 3
    assert spool.bytes == sum(r.size for r in records)

    pending = await spool.pending(10)
    assert [r for _, r in pending] == records  # keys, None key, headers (empty value too) intact
    seqs = [seq for seq, _ in pending]
    assert seqs == sorted(seqs)

    await spool.ack(seqs[:2])
    assert [r for _, r in await spool.pending(10)] == records[2:]
    assert spool.depth == 1
    assert spool.bytes == records[2].size
    await spool.ack(seqs)  # acks are idempotent
    assert spool.depth == 0
    assert spool.bytes == 0
    assert spool.oldest_pending_age == 0.0


async def test_pending_is_oldest_first_and_limited(spool: EventSpool) -> None:
    for start in range(0, 30, 10):
        await spool.append([record(n) for n in range(start, start + 10)])
    first = await spool.pending(7)
    assert [r.ce_id for _, r in first] == [f"e-{n}" for n in range(7)]
    await spool.ack([seq for seq, _ in first])
    assert [r.ce_id for _, r in await spool.pending(100)] == [f"e-{n}" for n in range(7, 30)]


async def test_duplicate_ce_ids_are_reported_and_not_stored(spool: EventSpool) -> None:
    assert await spool.append([record(1), record(2)]) == [True, True]
    # A redelivery of 2, a new 3, and 3 again within the same batch.
    assert await spool.append([record(2), record(3), record(3)]) == [False, True, False]
    assert spool.depth == 3
    # Still a duplicate after delivery: the id is remembered, not the record.
    await spool.ack([seq for seq, _ in await spool.pending(10)])
    assert await spool.append([record(1)]) == [False]
    assert spool.depth == 0


async def test_the_same_event_on_another_topic_is_not_a_duplicate(spool: EventSpool) -> None:
    fanned_out = OutboundRecord("mesh.audit", b"device-1", b"x", (), "e-1")
    assert await spool.append([record(1), fanned_out, record(1)]) == [True, True, False]


async def test_dedupe_window_keeps_only_the_newest_ids(tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "s.db", dedupe_window=3) as spool:
        await spool.append([record(n) for n in range(5)])  # remembers 2, 3, 4
        assert await spool.append([record(4), record(0)]) == [False, True]


async def test_dedupe_survives_reopening(tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(1)])
    async with EventSpool(tmp_path / "s.db") as spool:
        assert await spool.append([record(1), record(2)]) == [False, True]


async def test_spool_full_is_all_or_nothing(tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "s.db", max_records=5) as spool:
        await spool.append([record(n) for n in range(4)])
        with pytest.raises(SpoolFull) as caught:
            await spool.append([record(10), record(11)])
        assert (caught.value.depth, caught.value.max_records, caught.value.wanted) == (4, 5, 2)
        assert spool.depth == 4
        # The ids of the refused batch were not remembered: a retry is accepted.
        assert await spool.append([record(10)]) == [True]
        # Duplicates take no room, so a full spool still answers them.
        assert await spool.append([record(1)]) == [False]
        assert not spool.has_room


async def test_spool_full_by_bytes(tmp_path: Path) -> None:
    one = record(0, size=1000).size
    async with EventSpool(tmp_path / "s.db", max_bytes=3 * one) as spool:
        await spool.append([record(n, size=1000) for n in range(3)])
        with pytest.raises(SpoolFull) as caught:
            await spool.append([record(9, size=1000)])
        assert caught.value.bytes == 3 * one


async def test_wait_for_room_after_ack(tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "s.db", max_records=2) as spool:
        await spool.append([record(1), record(2)])
        assert await spool.wait_for_room(timeout=0.05) is False
        waiter = asyncio.create_task(spool.wait_for_room(timeout=5))
        (seq, _), _ = await spool.pending(2)
        await spool.ack([seq])
        assert await waiter is True
        assert await spool.append([record(3)]) == [True]


async def test_wait_for_records_wakes_on_append(spool: EventSpool) -> None:
    assert await spool.wait_for_records(timeout=0.05) is False
    waiter = asyncio.create_task(spool.wait_for_records(timeout=5))
    await spool.append([record(1)])
    assert await waiter is True


async def test_concurrent_appends_share_commits_and_keep_each_callers_order(spool: EventSpool) -> None:
    async def source(s: int) -> None:
        for batch in range(10):
            await spool.append([record(s * 1000 + batch * 10 + i) for i in range(10)])

    await asyncio.gather(*(source(s) for s in range(20)))
    assert spool.depth == 2000
    pending = await spool.pending(5000)
    by_source: dict[int, list[int]] = {}
    for _, r in pending:
        n = int(r.ce_id.removeprefix("e-"))
        by_source.setdefault(n // 1000, []).append(n)
    assert all(ns == sorted(ns) and len(ns) == 100 for ns in by_source.values())


async def test_a_full_batch_does_not_fail_the_others_in_its_commit(tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "s.db", max_records=10) as spool:
        results = await asyncio.gather(
            spool.append([record(n) for n in range(5)]),
            spool.append([record(n) for n in range(100, 120)]),  # can never fit
            spool.append([record(n) for n in range(200, 205)]),
            return_exceptions=True,
        )
        assert results[0] == [True] * 5
        assert isinstance(results[1], SpoolFull)
        assert results[2] == [True] * 5
        assert spool.depth == 10


async def test_repeats_within_and_across_the_appends_of_one_commit_are_stored_once(tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "s.db") as spool:
        assert await spool.append([record(0)]) == [True]
        results = await asyncio.gather(  # queued together: one commit
            spool.append([record(1), record(2), record(1)]),
            spool.append([record(2), record(3), record(0)]),
        )
        assert results == [[True, True, False], [False, True, False]]
        pending = await spool.pending(10)
        assert [r.ce_id for _, r in pending] == ["e-0", "e-1", "e-2", "e-3"]
        seqs = [seq for seq, _ in pending]
        assert seqs == list(range(seqs[0], seqs[0] + 4))
    async with EventSpool(tmp_path / "s.db") as reopened:
        assert [r.ce_id for _, r in await reopened.pending(10)] == ["e-0", "e-1", "e-2", "e-3"]
        assert await reopened.append([record(3), record(4)]) == [False, True]


async def test_dead_letters_leave_the_queue_but_stay_on_disk(tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "s.db") as spool:
        await spool.append([record(1), record(2)])
        (seq, _), _ = await spool.pending(2)
        await spool.dead_letter([seq], "MessageSizeTooLargeError")
        assert [r.ce_id for _, r in await spool.pending(10)] == ["e-2"]
        assert spool.dead_letters == 1
    async with EventSpool(tmp_path / "s.db") as spool:
        assert spool.dead_letters == 1
        assert spool.depth == 1


@pytest.mark.parametrize(
    ("acked", "oldest_left_at"),
    [
        ([1, 2], 300.0),  # the head as a run: the drainer's usual ack
        ([3, 4], 100.0),  # a run in the middle
        ([5, 6], 100.0),  # the tail as a run
        ([1, 2, 3, 4], 500.0),
        ([1, 3], 200.0),  # not a run
        ([1, 2, 4], 300.0),
        ([1, 2, 3, 4, 5, 6], None),  # nothing left
        ([7, 8], 100.0),  # nothing of it stored: nothing removed
    ],
)
async def test_the_oldest_pending_age_follows_acks_of_any_shape(
    tmp_path: Path, acked: list[int], oldest_left_at: float | None
) -> None:
    clock = [0.0]
    async with EventSpool(tmp_path / "s.db", clock=lambda: clock[0]) as spool:
        for n in range(1, 7):  # records 1-6 enqueued at 100, 200, ... 600
            clock[0] = 100.0 * n
            await spool.append([record(n)])
        seqs = {int(r.ce_id[2:]): seq for seq, r in await spool.pending(10)}
        last = max(seqs.values())
        clock[0] = 1000.0
        await spool.ack([seqs[n] if n in seqs else last + n for n in acked])
        assert spool.depth == len(set(seqs) - set(acked))
        expected = 0.0 if oldest_left_at is None else 1000.0 - oldest_left_at
        assert spool.oldest_pending_age == expected
    async with EventSpool(tmp_path / "s.db", clock=lambda: clock[0]) as reopened:
        assert reopened.oldest_pending_age == expected  # as read from the file


async def test_pending_records_survive_reopening(tmp_path: Path) -> None:
    clock = [1000.0]
    async with EventSpool(tmp_path / "s.db", clock=lambda: clock[0]) as spool:
        await spool.append([record(n) for n in range(50)])
        await spool.ack([seq for seq, _ in await spool.pending(20)])
    clock[0] = 1042.0
    async with EventSpool(tmp_path / "s.db", clock=lambda: clock[0]) as spool:
        assert spool.depth == 30
        assert spool.oldest_pending_age == 42.0
        assert [r.ce_id for _, r in await spool.pending(100)] == [f"e-{n}" for n in range(20, 50)]
        # Sequence numbers are never reused, so new records queue behind the recovered ones.
        await spool.append([record(99)])
        assert (await spool.pending(100))[-1][1].ce_id == "e-99"


async def test_one_process_per_spool(tmp_path: Path) -> None:
    async with EventSpool(tmp_path / "s.db"):
        with pytest.raises(SpoolLocked):
            await EventSpool(tmp_path / "s.db").start()
    async with EventSpool(tmp_path / "s.db") as spool:  # released on stop
        assert spool.depth == 0


async def test_lifecycle_is_explicit_and_stop_idempotent(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "s.db")
    with pytest.raises(SpoolClosed):
        await spool.append([record(1)])
    await spool.start()
    await spool.start()
    appending = asyncio.create_task(spool.append([record(1)]))
    await asyncio.sleep(0)  # let the append queue, then stop: it is committed, not dropped
    await spool.stop()
    await spool.stop()
    assert await appending == [True]
    with pytest.raises(SpoolClosed):
        await spool.pending(1)
    async with EventSpool(tmp_path / "s.db") as reopened:
        assert reopened.depth == 1


async def test_state_after_an_ack_and_an_append_that_raced_is_the_newest(spool: EventSpool) -> None:
    await spool.append([record(n) for n in range(10)])
    seqs = [seq for seq, _ in await spool.pending(10)]
    ack = asyncio.ensure_future(spool.ack(seqs[:4]))
    append = asyncio.ensure_future(spool.append([record(n) for n in range(10, 13)]))
    await asyncio.sleep(0)  # both queued with the writer: it removes, then commits
    # The loop stands still while the writer answers both, so both answers land in one
    # loop step; they take paths one step apart, so the ack's snapshot comes last (an
    # older one if the writer took the ack alone, before the append was queued).
    time.sleep(0.3)  # noqa: ASYNC251 (blocking the loop is the point)
    await asyncio.gather(ack, append)
    assert (spool.depth, spool.last_seq) == (9, seqs[-1] + 3)
    assert spool.has_room and await spool.wait_for_records(timeout=0)


def test_acks_beside_appends_are_removed_first_in_their_transaction(tmp_path: Path) -> None:
    """The writer's round of acks and appends is one transaction: the removal makes the
    room the appends need; an append that fails does so alone, a transaction that fails
    undoes everything."""
    clock_broken = False

    def clock() -> float:
        if clock_broken:
            raise OSError("no clock")
        return time.time()

    store = SpoolStore(tmp_path / "s.db", synchronous="normal", dedupe_window=100, clock=clock)
    store.open()
    try:
        store.append_groups([([record(n) for n in range(3)], None)], 3, 2**30)
        outcome = store.append_groups([([record(3), record(4)], None)], 3, 2**30, [1, 2])
        assert outcome.results == [[True, True]]
        assert [seq for seq, _, _ in outcome.stored] == [4, 5]
        assert (outcome.snapshot.depth, outcome.snapshot.last_seq) == (3, 5)
        assert [r.ce_id for _, r in store.pending(10, 0)] == ["e-2", "e-3", "e-4"]

        class Broken(OutboundRecord):
            @property
            def identity(self) -> str:
                raise OSError("disk I/O error")

        # An append that fails fails alone: the removal beside it still commits.
        broken = Broken("mesh.events", None, b"v", (), "e-9")
        outcome = store.append_groups([([broken], None), ([record(5)], None)], 10, 2**30, [3])
        assert isinstance(outcome.results[0], OSError) and outcome.results[1] == [True]
        assert [r.ce_id for _, r in store.pending(10, 0)] == ["e-3", "e-4", "e-5"]
        # A transaction that fails after its removal undoes it, counts included.
        clock_broken = True
        with pytest.raises(OSError, match="no clock"):
            store.append_groups([([record(6)], None)], 10, 2**30, [4, 5])
        clock_broken = False
        assert [r.ce_id for _, r in store.pending(10, 0)] == ["e-3", "e-4", "e-5"]
        snapshot = store.append_groups([], 10, 2**30).snapshot
        assert (snapshot.depth, snapshot.bytes) == (3, 3 * record(0).size)
    finally:
        store.close()


async def test_a_dead_writer_thread_is_reported_and_appends_fail_fast(tmp_path: Path) -> None:
    failures: asyncio.Queue[str] = asyncio.Queue()
    async with EventSpool(tmp_path / "s.db", on_failure=failures.put_nowait) as spool:
        assert await spool.append([record(1)]) == [True]
        spool._writer._jobs.put("not a job")  # a bug in the writer's loop (private on purpose)
        async with asyncio.timeout(5):
            why = await failures.get()
        assert "spool writer spool-s.db died" in why
        with pytest.raises(RuntimeError, match="thread died"):
            await spool.append([record(2)])


# -- a real crash ---------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from adapter.events.records import OutboundRecord
    from adapter.events.spool import EventSpool

    async def main(path: str, synchronous: str) -> None:
        spool = EventSpool(Path(path), synchronous=synchronous)
        await spool.start()
        n = 0
        while True:  # runs until SIGKILL
            batch = [
                OutboundRecord("t", b"k%d" % (i % 7), b"v" * 100, (("ce_id", b"%d" % i),), f"id-{i}")
                for i in range(n, n + 50)
            ]
            await spool.append(batch)
            n += 50
            # Only now is the batch "acknowledged to the source".
            sys.stdout.write(f"{n}\\n")
            sys.stdout.flush()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_acknowledged_appends_survive_kill_9(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "crash.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        synchronous,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    acknowledged = 0
    async with asyncio.timeout(30):
        while acknowledged < 10_000:
            line = await child.stdout.readline()
            assert line, "the child exited before it was killed"
            acknowledged = int(line)
    child.send_signal(signal.SIGKILL)  # mid-append: the child appends without pause
    await child.wait()
    assert child.returncode == -signal.SIGKILL

    async with EventSpool(path) as spool:
        pending = await spool.pending(1_000_000)
    ids = [int(r.ce_id.removeprefix("id-")) for _, r in pending]
    # Every acknowledged record is there; later ones are there whole (batch by batch) or not at all.
    assert len(ids) >= acknowledged
    assert len(ids) % 50 == 0
    assert ids == list(range(len(ids)))
    assert all(
        r.value == b"v" * 100 and r.headers == (("ce_id", str(i).encode()),)
        for i, (_, r) in zip(ids, pending, strict=True)
    )
