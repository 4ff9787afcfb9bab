"""One loop timer for the deadlines of the calls in flight: each call expires at its
own deadline as under ``asyncio.timeout_at`` (the others untouched), a cancellation
from elsewhere stays a cancellation (also when it comes with the deadline's), a
task whose block ended after its expiry is not left cancelled, and the timer moves
only when an earlier deadline arrives or when it fires."""

from __future__ import annotations

import asyncio
import contextlib
import math

import pytest
import uvloop

from adapter.upstream.deadline_timer import Deadline, DeadlineTimer


async def run_until(timers: DeadlineTimer, deadline: float, work: asyncio.Future[None] | None = None) -> str:
    """Waits under ``timers.start(deadline)``, as the upstream client does: "timed
    out" or "finished" (a cancellation from elsewhere propagates)."""
    expiry = timers.start(deadline)
    try:
        await (work if work is not None else asyncio.Event().wait())
        return "finished"
    except asyncio.CancelledError:
        if timers.expired(expiry):
            return "timed out"
        raise
    finally:
        timers.forget(expiry)


async def test_each_call_expires_at_its_own_deadline_and_the_others_go_on() -> None:
    loop = asyncio.get_running_loop()
    timers = DeadlineTimer()
    start = loop.time()
    late_work: asyncio.Future[None] = loop.create_future()
    calls = [
        asyncio.create_task(run_until(timers, start + 0.30)),
        asyncio.create_task(run_until(timers, start + 0.10)),  # earlier than the armed one: re-armed
        asyncio.create_task(run_until(timers, start + 5.0, late_work)),
    ]
    first = await calls[1]
    assert first == "timed out" and 0.09 <= loop.time() - start < 0.25
    assert not calls[0].done()
    assert await calls[0] == "timed out" and 0.29 <= loop.time() - start < 0.45
    assert not calls[2].done() and timers.in_flight == 1
    late_work.set_result(None)
    assert await calls[2] == "finished"
    assert timers.in_flight == 0


async def test_a_deadline_already_past_expires_at_once() -> None:
    loop = asyncio.get_running_loop()
    timers = DeadlineTimer()
    assert await asyncio.wait_for(run_until(timers, loop.time() - 1.0), 2.0) == "timed out"


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    loop = asyncio.get_running_loop()
    timers = DeadlineTimer()
    task = asyncio.create_task(run_until(timers, loop.time() + 5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert timers.in_flight == 0


async def test_calls_ending_in_time_leave_one_timer_armed_and_nothing_pending() -> None:
    loop = asyncio.get_running_loop()
    timers = DeadlineTimer()
    for _ in range(200):
        done: asyncio.Future[None] = loop.create_future()
        done.set_result(None)
        assert await run_until(timers, loop.time() + 10.0, done) == "finished"
    assert timers.in_flight == 0
    armed = timers._handle
    assert armed is not None and not armed.cancelled()  # the first call's timer, never moved
    assert timers._armed_for <= loop.time() + 10.0


async def test_a_timer_firing_for_a_call_that_has_ended_re_arms_for_those_left() -> None:
    loop = asyncio.get_running_loop()
    timers = DeadlineTimer()
    done: asyncio.Future[None] = loop.create_future()
    done.set_result(None)
    assert await run_until(timers, loop.time() + 0.05, done) == "finished"  # armed for +0.05
    later = asyncio.create_task(run_until(timers, loop.time() + 0.15))
    start = loop.time()
    assert await later == "timed out"  # the timer fired at +0.05 for nobody, then re-armed
    assert 0.09 <= loop.time() - start < 0.3


def test_a_new_event_loop_gets_a_timer_of_its_own() -> None:
    timers = DeadlineTimer()

    async def one_call() -> str:
        return await run_until(timers, asyncio.get_running_loop().time() + 0.05)

    assert asyncio.run(one_call()) == "timed out"
    assert uvloop.run(one_call()) == "timed out"  # the first loop is closed; its timer is dropped
    assert asyncio.run(one_call()) == "timed out"


async def test_a_cancellation_from_elsewhere_with_the_deadlines_stays_a_cancellation() -> None:
    loop = asyncio.get_running_loop()
    timers = DeadlineTimer()
    task = asyncio.create_task(run_until(timers, loop.time() + 0.05))
    await asyncio.sleep(0)  # started and waiting
    timers._fire(loop)  # not yet due: nothing expires
    assert not task.done()
    # Expired and cancelled from elsewhere before the task runs again: as under
    # timeout_at, the outside cancellation wins.
    for deadline in list(timers._pending):
        deadline.when = loop.time()
    timers._armed_for = loop.time()
    timers._fire(loop)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_block_that_ends_after_its_expiry_takes_its_cancel_request_back() -> None:
    loop = asyncio.get_running_loop()
    timers = DeadlineTimer()
    counts: list[int] = []

    async def block() -> None:
        expiry = timers.start(loop.time() + 10)
        expiry.when = timers._armed_for = loop.time() - 1
        timers._fire(loop)  # expired while the block runs on without awaiting
        task = asyncio.current_task()
        assert task is not None
        counts.append(task.cancelling())
        timers.forget(expiry)  # the block ends without meeting the cancellation
        counts.append(task.cancelling())

    child = asyncio.create_task(block())
    with contextlib.suppress(asyncio.CancelledError):  # (3.11 still delivers the request, as with Timeout)
        await child
    assert counts == [1, 0]


async def test_a_deadline_of_a_task_that_has_ended_does_not_stop_the_timer() -> None:
    loop = asyncio.get_running_loop()
    timers = DeadlineTimer()
    ended = asyncio.create_task(asyncio.sleep(0))
    await ended
    assert await run_until(timers, loop.time() + 0.01, ended) == "finished"  # the loop is set
    stale = Deadline(loop.time() + 0.02, ended)
    timers._pending.add(stale)
    timers._arm(loop, stale.when)
    assert await run_until(timers, loop.time() + 0.08) == "timed out"


async def test_an_endless_deadline_never_expires_and_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    timers = DeadlineTimer()
    endless = asyncio.create_task(run_until(timers, math.inf))
    await asyncio.sleep(0)
    assert timers._handle is None  # nothing to arm for
    assert await run_until(timers, loop.time() + 0.03) == "timed out"  # fired, then nothing to re-arm
    assert not endless.done() and timers._handle is None and timers.in_flight == 1
    endless.cancel()
    with pytest.raises(asyncio.CancelledError):
        await endless
    assert timers.in_flight == 0
