"""SpoolWriter: one thread, jobs in order, appends that waited committed together.

The commit function here is a small fake (pure logic of the writer); the spool's
own tests run the writer over real SQLite.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from adapter.events.records import OutboundRecord
from adapter.events.spool_store import AppendOutcome, SpoolSnapshot
from adapter.events.spool_writer import AppendGroup, SpoolWriter


def record(n: int) -> OutboundRecord:
    return OutboundRecord("t", None, b"v", (), f"e-{n}")


class GatedCommits:
    """Commits that wait for ``gate`` and note each group, the thread it ran on, and the order of work."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.begun = threading.Event()
        self.groups: list[list[str]] = []
        self.threads: set[str] = set()
        self.log: list[str] = []
        self.committed: list[int] = []  # groups the loop heard of, in order
        self.fail_with: Exception | None = None
        self.fail_with_acks: Exception | None = None  # only transactions that remove too

    def commit(self, groups: AppendGroup, delivered: list[int]) -> AppendOutcome:
        self.threads.add(threading.current_thread().name)
        self.begun.set()
        self.gate.wait(5)
        ids = [r.ce_id for records, _ in groups for r in records]
        removal = f"remove {','.join(map(str, delivered))} + " if delivered else ""
        self.log.append(removal + "commit " + ",".join(ids))
        if self.fail_with is not None:
            raise self.fail_with
        if delivered and self.fail_with_acks is not None:
            raise self.fail_with_acks
        self.groups.append(ids)
        results: list[list[bool] | Exception] = [
            ValueError("refused") if records[0].ce_id == "e-bad" else [True] * len(records)
            for records, _ in groups
        ]
        return AppendOutcome(results, SpoolSnapshot(len(ids), 0, None, 0, len(self.groups)), [])

    def remove(self, seqs: list[int]) -> SpoolSnapshot:
        self.gate.wait(5)
        self.log.append("remove " + ",".join(map(str, seqs)))
        if self.fail_with is not None:
            raise self.fail_with
        return SpoolSnapshot(0, 0, None, 0, len(self.groups))

    def heard(self, outcome: AppendOutcome) -> None:
        self.committed.append(outcome.snapshot.last_seq)


@pytest_asyncio.fixture
async def commits() -> AsyncIterator[GatedCommits]:
    yield GatedCommits()


@pytest_asyncio.fixture
async def writer(commits: GatedCommits) -> AsyncIterator[SpoolWriter]:
    started = SpoolWriter("spool-test", commit=commits.commit, committed=commits.heard, remove=commits.remove)
    started.start()
    yield started
    commits.gate.set()
    await started.stop()


async def commit_begun(commits: GatedCommits) -> None:
    """Waits until a commit has begun (and waits at the gate)."""
    assert await asyncio.to_thread(commits.begun.wait, 5)


async def test_appends_that_wait_for_a_commit_share_the_next_one(
    writer: SpoolWriter, commits: GatedCommits
) -> None:
    commits.gate.clear()
    first = writer.append([record(1)], None)
    await commit_begun(commits)
    waiting = [writer.append([record(n), record(n + 100)], None) for n in (2, 3, 4)]
    commits.gate.set()
    assert await first == [True]
    assert await asyncio.gather(*waiting) == [[True, True]] * 3
    assert commits.groups == [["e-1"], ["e-2", "e-102", "e-3", "e-103", "e-4", "e-104"]]
    assert commits.threads == {"spool-test"}
    assert commits.committed == [1, 2]  # the loop heard each commit once, in order


async def test_calls_and_appends_run_in_the_order_they_were_queued(
    writer: SpoolWriter, commits: GatedCommits
) -> None:
    commits.gate.clear()
    first = writer.append([record(1)], None)
    await commit_begun(commits)
    before = writer.append([record(2)], None)

    def double(x: int) -> int:
        commits.log.append(f"call {x}")
        return x * 2

    call = writer.call(double, 21)
    after = writer.append([record(3)], None)
    commits.gate.set()
    assert list(await asyncio.gather(first, before, call, after)) == [[True], [True], 42, [True]]
    # The call is not overtaken by the append queued after it, nor does it join a commit.
    assert commits.log == ["commit e-1", "commit e-2", "call 21", "commit e-3"]


async def test_acks_that_wait_are_merged_into_one_removal_in_the_commit_of_the_appends_beside_them(
    writer: SpoolWriter, commits: GatedCommits
) -> None:
    commits.gate.clear()
    first = writer.append([record(1)], None)
    await commit_begun(commits)
    acks = [writer.ack([n, n + 10]) for n in (1, 2)]
    append = writer.append([record(2)], None)
    more = writer.ack([3])
    call = writer.call(commits.log.append, "call")
    late = writer.ack([4])
    commits.gate.set()
    await asyncio.gather(first, *acks, append, more, call, late)
    assert commits.log == ["commit e-1", "remove 1,11,2,12,3 + commit e-2", "call", "remove 4"]


async def test_acks_and_appends_whose_transaction_failed_run_again_apart(
    writer: SpoolWriter, commits: GatedCommits
) -> None:
    commits.gate.clear()
    first = writer.append([record(1)], None)
    await commit_begun(commits)
    ack = writer.ack([1])
    append = writer.append([record(2)], None)
    commits.fail_with_acks = OSError("database is locked")
    commits.gate.set()
    await first
    assert (await ack).depth == 0  # the removal alone succeeded
    assert await append == [True]
    assert commits.log == ["commit e-1", "remove 1 + commit e-2", "remove 1", "commit e-2"]


async def test_a_failed_removal_fails_the_acks_merged_into_it(
    writer: SpoolWriter, commits: GatedCommits
) -> None:
    commits.fail_with = OSError("disk I/O error")
    with pytest.raises(OSError, match="disk I/O error"):
        await writer.ack([1])
    commits.fail_with = None
    assert (await writer.ack([1])).depth == 0


async def test_the_loop_hears_of_a_commit_before_its_appends_return(
    writer: SpoolWriter, commits: GatedCommits
) -> None:
    await writer.append([record(1)], None)
    assert commits.committed == [1]


async def test_one_refused_append_does_not_fail_the_others_in_its_commit(
    writer: SpoolWriter, commits: GatedCommits
) -> None:
    commits.gate.clear()
    first = writer.append([record(1)], None)
    await commit_begun(commits)
    ok = writer.append([record(2)], None)
    bad = writer.append([OutboundRecord("t", None, b"v", (), "e-bad")], None)
    commits.gate.set()
    await first
    assert await ok == [True]
    with pytest.raises(ValueError, match="refused"):
        await bad


async def test_a_failed_commit_fails_every_append_of_it_and_the_writer_goes_on(
    writer: SpoolWriter, commits: GatedCommits
) -> None:
    commits.gate.clear()
    first = writer.append([record(1)], None)
    await commit_begun(commits)
    commits.fail_with = OSError("disk full")
    group = [writer.append([record(n)], None) for n in (2, 3)]
    commits.gate.set()
    results = await asyncio.gather(first, *group, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)  # the first commit raised too: set before it ended
    commits.fail_with = None
    assert await writer.append([record(4)], None) == [True]


async def test_a_call_that_raises_hands_its_error_to_the_caller(writer: SpoolWriter) -> None:
    def broken() -> None:
        raise RuntimeError("no such table")

    with pytest.raises(RuntimeError, match="no such table"):
        await writer.call(broken)
    assert await writer.call(lambda: "still running") == "still running"


async def test_stop_runs_what_was_queued_then_ends_the_thread(commits: GatedCommits) -> None:
    writer = SpoolWriter("spool-stop", commit=commits.commit, committed=commits.heard, remove=commits.remove)
    with pytest.raises(RuntimeError, match="not running"):
        writer.append([record(0)], None)
    writer.start()
    commits.gate.clear()
    queued = [writer.append([record(n)], None) for n in range(3)]
    stopping = asyncio.ensure_future(writer.stop())
    await asyncio.sleep(0.01)
    assert not stopping.done()  # held by the gated commit
    commits.gate.set()
    await stopping
    assert await asyncio.gather(*queued) == [[True]] * 3
    assert not any(t.name == "spool-stop" for t in threading.enumerate())
    await writer.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        writer.call(lambda: None)


async def test_a_dead_thread_is_reported_and_new_jobs_fail_at_once_not_hang(
    commits: GatedCommits, caplog: pytest.LogCaptureFixture
) -> None:
    deaths: asyncio.Queue[str] = asyncio.Queue()
    writer = SpoolWriter(
        "spool-test",
        commit=commits.commit,
        committed=commits.heard,
        remove=commits.remove,
        died=deaths.put_nowait,
    )
    writer.start()
    writer._jobs.put("not a job")  # a bug inside the writer's own loop (private on purpose)
    async with asyncio.timeout(5):
        why = await deaths.get()
    assert why.startswith("spool writer spool-test died: TypeError")
    assert "spool writer spool-test died" in caplog.text
    with pytest.raises(RuntimeError, match="thread died"):
        writer.append([record(1)], None)
    await writer.stop()
