"""AnswerSpin on a real event loop, alone and inside the ``h1`` transport against a real
socket server: it polls while one answer is due, stops at its bound, when a second
exchange waits or the answer comes, and leaves its count at zero whatever ended the
exchange."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapter.config.settings import UpstreamSettings
from adapter.upstream.answer_spin import AnswerSpin
from adapter.upstream.errors import UpstreamConnectError
from adapter.upstream.transport_h1 import H1Exchange
from tests.events.kafka_fixtures import wait_until
from tests.upstream.scripted_server import ok
from tests.upstream.test_transport_h1 import exchange, get

pytestmark = pytest.mark.timeout(20)


def spinning_exchange(spin: AnswerSpin, **settings: object) -> H1Exchange:
    auth = {"type": "api_key", "api_key": "k"}
    return H1Exchange(UpstreamSettings(base_url="http://127.0.0.1", auth=auth, **settings), spin=spin)  # type: ignore[arg-type]


class CountingClock:
    """time.perf_counter, counting its readings (a spin reads it once a poll)."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return time.perf_counter()


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_it_polls_while_one_answer_is_due_and_stops_when_it_comes() -> None:
    clock = CountingClock()
    spin = AnswerSpin(5.0, clock=clock)
    spin.waiting(asyncio.get_running_loop())
    await asyncio.sleep(0.02)  # a sleeping loop would not read the clock meanwhile
    assert spin.spinning
    assert clock.readings > 20
    spin.answered()
    await turns()
    assert not spin.spinning
    after = clock.readings
    await asyncio.sleep(0.02)
    assert clock.readings == after


async def test_it_stops_at_its_bound() -> None:
    clock = CountingClock()
    spin = AnswerSpin(0.01, clock=clock)
    began = time.perf_counter()
    spin.waiting(asyncio.get_running_loop())
    while spin.spinning:
        await asyncio.sleep(0)
        assert time.perf_counter() - began < 5, "the spin did not stop at its bound"
    assert time.perf_counter() - began >= 0.01
    stopped = clock.readings
    await asyncio.sleep(0.02)
    assert clock.readings == stopped  # still waiting, no longer polling
    assert spin.waiting_now == 1


async def test_two_waiting_exchanges_do_not_spin() -> None:
    spin = AnswerSpin(5.0)
    loop = asyncio.get_running_loop()
    spin.waiting(loop)
    spin.waiting(loop)
    await turns()
    assert not spin.spinning
    spin.answered()  # the other still waits, but did not begin alone
    spin.answered()
    assert spin.waiting_now == 0


async def test_off_at_zero() -> None:
    spin = AnswerSpin(0.0)
    spin.waiting(asyncio.get_running_loop())
    await turns()
    assert not spin.spinning
    spin.answered()


async def test_no_spin_after_an_answer_slower_than_the_bound_until_one_is_within_it() -> None:
    spin = AnswerSpin(0.005)
    loop = asyncio.get_running_loop()
    spin.waiting(loop)
    await asyncio.sleep(0.02)  # a distant upstream: longer than the bound
    spin.answered()
    spin.waiting(loop)
    await turns()
    assert not spin.spinning, "spun again for an upstream slower than the bound"
    spin.answered()  # this one came at once: within the bound
    spin.waiting(loop)
    await turns()
    assert spin.spinning
    spin.answered()
    await turns()
    assert not spin.spinning


async def test_the_h1_transport_spins_while_its_answer_is_due(served) -> None:  # type: ignore[no-untyped-def]
    script, base = await served(lambda _r: ok(b'{"id":"dev_001"}'))
    script.hold = asyncio.Event()
    clock = CountingClock()
    spin = AnswerSpin(5.0, clock=clock)
    client = spinning_exchange(spin)
    call = asyncio.create_task(get(client, f"{base}/v1/devices/dev_001"))
    await wait_until(lambda: bool(script.requests), within=5, what="the request")
    readings = clock.readings
    await asyncio.sleep(0.02)  # the answer is held: the loop polls meanwhile
    assert spin.spinning and spin.waiting_now == 1
    assert clock.readings > readings + 20
    script.hold.set()
    answer = await call
    assert answer.status == 200
    await turns()
    assert (spin.spinning, spin.waiting_now) == (False, 0)
    await client.aclose()


async def test_the_count_goes_back_to_zero_when_the_exchange_is_cancelled(served) -> None:  # type: ignore[no-untyped-def]
    script, base = await served(lambda _r: ok(b"{}"))
    script.hold = asyncio.Event()
    spin = AnswerSpin(5.0)
    client = spinning_exchange(spin)
    call = asyncio.create_task(get(client, f"{base}/v1/x"))
    await wait_until(lambda: bool(script.requests), within=5, what="the request")
    assert spin.waiting_now == 1
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await turns()
    assert (spin.spinning, spin.waiting_now) == (False, 0)
    script.hold.set()
    await client.aclose()


async def test_an_exchange_that_never_sent_is_not_counted() -> None:
    spin = AnswerSpin(5.0)
    client = spinning_exchange(spin, connect_timeout_seconds=2)
    with pytest.raises(UpstreamConnectError):
        await get(client, "http://127.0.0.1:9/v1/x")  # discard port: refused
    assert (spin.spinning, spin.waiting_now) == (False, 0)
    await client.aclose()


def test_the_setting_bounds() -> None:
    assert exchange()._spin._seconds == pytest.approx(0.0004)  # the default: 400 µs
    assert exchange(answer_spin_microseconds=0)._spin._seconds == 0
    with pytest.raises(ValueError):
        exchange(answer_spin_microseconds=10_001)
