"""ConnectionSlots on a real event loop: the bound, first come first served, and no
slot lost or doubled when waiters are cancelled, whenever they are cancelled."""

from __future__ import annotations

import asyncio
import random

import pytest

from adapter.upstream.connection_slots import ConnectionSlots

pytestmark = pytest.mark.timeout(20)


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_free_slots_are_taken_at_once_and_the_next_caller_waits() -> None:
    slots = ConnectionSlots(2)
    assert slots.take_now() and slots.take_now()
    assert not slots.take_now()
    third = asyncio.create_task(slots.take())
    await turns()
    assert not third.done() and slots.waiting == 1
    slots.give_back()
    await turns()
    assert third.done() and slots.free == 0 and slots.waiting == 0
    slots.give_back()
    slots.give_back()
    assert slots.free == 2


async def test_waiters_are_served_in_order_and_a_free_slot_does_not_jump_the_queue() -> None:
    slots = ConnectionSlots(1)
    assert slots.take_now()
    served: list[int] = []

    async def caller(n: int) -> None:
        await slots.take()
        served.append(n)

    waiting = [asyncio.create_task(caller(n)) for n in range(5)]
    await turns()
    slots.give_back()  # handed to caller 0 directly: not free for a newcomer meanwhile
    assert not slots.take_now()
    for _ in range(5):
        await turns()
        slots.give_back()
    await asyncio.gather(*waiting)
    assert served == [0, 1, 2, 3, 4]
    assert (slots.free, slots.waiting) == (1, 0)


async def test_a_waiter_cancelled_while_waiting_leaves_the_queue() -> None:
    slots = ConnectionSlots(1)
    assert slots.take_now()
    waiter = asyncio.create_task(slots.take())
    await turns()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.waiting == 0
    slots.give_back()
    assert slots.free == 1


async def test_a_waiter_cancelled_as_it_was_handed_a_slot_passes_it_on() -> None:
    slots = ConnectionSlots(1)
    assert slots.take_now()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await turns()
    slots.give_back()  # first's future is done...
    first.cancel()  # ...and it is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await turns()
    assert second.done() and not second.cancelled()
    slots.give_back()
    assert (slots.free, slots.waiting) == (1, 0)


async def test_a_cancelled_waiter_dropped_by_give_back_before_it_ran() -> None:
    slots = ConnectionSlots(1)
    assert slots.take_now()
    first = asyncio.create_task(slots.take())
    await turns()
    first.cancel()  # its future is cancelled at once; the task has not run yet
    slots.give_back()  # meets the cancelled future first and drops it
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (slots.free, slots.waiting) == (1, 0)


async def test_the_bound_holds_and_no_slot_is_lost_under_random_cancellation() -> None:
    size = 3
    slots = ConnectionSlots(size)
    rng = random.Random(7)
    holding = 0
    most = 0

    async def user() -> None:
        nonlocal holding, most
        if not slots.take_now():
            await slots.take()
        try:
            holding += 1
            most = max(most, holding)
            await asyncio.sleep(rng.random() / 1000)
        finally:
            holding -= 1
            slots.give_back()

    for _ in range(20):
        tasks = [asyncio.create_task(user()) for _ in range(40)]
        for _ in range(15):
            await asyncio.sleep(rng.random() / 2000)
            rng.choice(tasks).cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert holding == 0
        assert (slots.free, slots.waiting) == (size, 0)
    assert most == size


def test_size_at_least_one() -> None:
    with pytest.raises(ValueError):
        ConnectionSlots(0)
