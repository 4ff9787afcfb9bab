"""ReplySpin (adapter/server/reply_spin.py) on a real event loop, alone and counting the
calls of an UpstreamMethodHandler served over a real gRPC channel: it polls, giving the
core away at each poll, after a lone call ends; it stops when the next call starts or at
its bound; it does not spin after overlapping calls, nor after a gap longer than its
bound until a gap within it; its count goes back to zero whatever ended a call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from openframe.v1 import devices_pb2

from adapter.config.settings import Settings, UpstreamSettings
from adapter.descriptors.loader import load_service_specs
from adapter.runtime import reply_spin
from adapter.server.handlers import UpstreamMethodHandler
from adapter.server.reply_spin import MIN_GAP_SECONDS, ReplySpin
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.upstream.errors import UpstreamConnectError
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse
from tests.events.kafka_fixtures import wait_until

pytestmark = pytest.mark.timeout(20)

SPEC = next(
    m for s in load_service_specs() for m in s.methods if m.path == "/openframe.v1.DeviceService/GetDevice"
)


class Counting:
    """A clock (time.perf_counter) or a yield that counts its calls: a spin makes one of
    each a poll."""

    def __init__(self) -> None:
        self.calls = 0

    def clock(self) -> float:
        self.calls += 1
        return time.perf_counter()

    def yield_core(self) -> None:
        self.calls += 1


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def spun_out(spin: ReplySpin, within: float = 5.0) -> None:
    began = time.perf_counter()
    while spin.spinning:
        await asyncio.sleep(0)
        assert time.perf_counter() - began < within, "the spin did not stop at its bound"


async def test_after_a_lone_call_it_polls_giving_the_core_away_until_the_next_call() -> None:
    yields = Counting()
    spin = ReplySpin(5.0, yield_core=yields.yield_core)
    spin.started()
    await asyncio.sleep(0.01)
    assert not spin.spinning and yields.calls == 0  # a call in flight: nothing to spin for
    spin.ended()
    await asyncio.sleep(0.02)  # a sleeping loop would not run the spin's polls meanwhile
    assert spin.spinning
    assert yields.calls > 20
    spin.started()  # the next call came: the spin ends at its next poll
    await turns()
    assert not spin.spinning
    after = yields.calls
    await asyncio.sleep(0.02)
    assert yields.calls == after
    spin.ended()
    await spun_out(spin, within=10)  # (this gap was short: it spins again, up to its bound)


async def test_it_stops_at_its_bound() -> None:
    clock = Counting()
    spin = ReplySpin(0.01, clock=clock.clock, yield_core=lambda: None)
    spin.started()
    spin.ended()
    began = time.perf_counter()
    assert spin.spinning
    await spun_out(spin)
    assert time.perf_counter() - began >= 0.009
    stopped = clock.calls
    await asyncio.sleep(0.02)
    assert clock.calls == stopped  # idle, no longer polling
    assert spin.in_flight == 0


async def test_calls_that_overlapped_do_not_spin_when_the_last_ends() -> None:
    spin = ReplySpin(5.0, yield_core=lambda: None)
    spin.started()
    spin.started()
    spin.ended()
    await turns()
    assert not spin.spinning  # one is still in flight
    spin.ended()
    await turns()
    assert not spin.spinning, "spun after a busy stretch of two calls at once"
    assert spin.in_flight == 0
    await asyncio.sleep(0.002)  # the loop went idle between calls
    spin.started()  # a lone call again: it spins after this one
    spin.ended()
    await turns()
    assert spin.spinning
    spin.started()
    await turns()
    assert not spin.spinning
    spin.ended()
    spin.started()
    await turns()
    spin.ended()


async def test_no_spin_after_a_gap_longer_than_the_bound_until_one_is_within_it() -> None:
    spin = ReplySpin(0.005, yield_core=lambda: None)
    spin.started()
    spin.ended()
    await spun_out(spin)
    await asyncio.sleep(0.02)  # sporadic traffic: the next call comes after the bound
    spin.started()
    spin.ended()
    await turns()
    assert not spin.spinning, "spun again for calls further apart than the bound"
    await asyncio.sleep(0.001)
    spin.started()  # this one came soon: within the bound
    spin.ended()
    await turns()
    assert spin.spinning
    await spun_out(spin)


async def test_no_spin_when_the_next_call_was_already_waiting() -> None:
    # Cache hits at 16 in flight: each handler ends before the next starts, without a
    # gap, so they never overlap, yet the loop is never idle.
    yields = Counting()
    spin = ReplySpin(0.05, yield_core=yields.yield_core)
    spin.started()
    spin.ended()
    await turns()
    assert spin.spinning  # the first call: nothing known yet
    for _ in range(5):
        spin.started()  # at once: the next call was queued
        spin.ended()
    await turns()
    assert not spin.spinning, "spun while calls came back to back"
    assert gap_of(spin) < MIN_GAP_SECONDS
    after = yields.calls
    await asyncio.sleep(0.01)
    assert yields.calls == after
    spin.started()  # after an idle moment: it spins again
    spin.ended()
    await turns()
    assert spin.spinning
    await spun_out(spin)


def gap_of(spin: ReplySpin) -> float:
    return spin._last_gap


async def test_off_at_zero() -> None:
    clock = Counting()
    spin = ReplySpin(0.0, clock=clock.clock, yield_core=clock.yield_core)
    for _ in range(3):
        spin.started()
        spin.ended()
        await turns()
    assert (spin.spinning, spin.in_flight, clock.calls) == (False, 0, 0)


def test_the_setting_and_the_front() -> None:
    def settings(**grpc_settings: Any) -> Settings:
        return Settings(grpc=grpc_settings, upstreams={})

    spin = reply_spin(settings())
    assert spin is not None and spin._seconds == pytest.approx(0.001)  # the default: 1 ms
    assert reply_spin(settings(reply_spin_microseconds=0)) is None
    assert reply_spin(settings(front="envoy")) is None  # the next call does not come through grpc's threads
    with pytest.raises(ValueError):
        settings(reply_spin_microseconds=10_001)


# -- counted by the handler, over a real channel -------------------------------------------


class _Caller:
    """Answers a device, raises a connect error, or never answers, by device id."""

    name = "openframe"
    default_timeout = 5.0

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        if request.path.endswith("/unreachable"):
            raise UpstreamConnectError("refused", upstream=self.name, route=request.route)
        if request.path.endswith("/slow"):
            self.waiting.set()
            await asyncio.sleep(60)
        headers = CIMultiDictProxy(CIMultiDict([("content-type", "application/json")]))
        return UpstreamResponse(status=200, headers=headers, body=b'{"id": "dev_001"}')

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def served() -> AsyncIterator[tuple[grpc.aio.Channel, ReplySpin, _Caller, Counting]]:
    yields = Counting()
    spin = ReplySpin(5.0, yield_core=yields.yield_core)
    caller = _Caller()
    settings = UpstreamSettings(base_url="http://127.0.0.1:9", auth={"type": "api_key", "api_key": "k"})  # type: ignore[arg-type]
    transcoder = MethodTranscoder(SPEC, JsonCodec(), settings.pagination)
    handler = UpstreamMethodHandler(transcoder, caller, reply_spin=spin)  # type: ignore[arg-type]
    server = grpc.aio.server()
    rpc = grpc.unary_unary_rpc_method_handler(
        handler.handle,
        request_deserializer=devices_pb2.GetDeviceRequest.FromString,
        response_serializer=devices_pb2.Device.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("openframe.v1.DeviceService", {"GetDevice": rpc}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel, spin, caller, yields
    await server.stop(None)


def get_device(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        SPEC.path,
        request_serializer=devices_pb2.GetDeviceRequest.SerializeToString,
        response_deserializer=devices_pb2.Device.FromString,
    )


async def test_a_served_call_is_counted_and_its_reply_spins(served: Any) -> None:
    channel, spin, _caller, yields = served
    device = await get_device(channel)(devices_pb2.GetDeviceRequest(device_id="dev_001"), timeout=5)
    assert device.id == "dev_001"
    assert spin.in_flight == 0
    await wait_until(lambda: yields.calls > 5, within=5, what="the spin's polls after the reply")
    assert spin.spinning
    again = await get_device(channel)(devices_pb2.GetDeviceRequest(device_id="dev_002"), timeout=5)
    assert again.id == "dev_001" and spin.in_flight == 0


async def test_a_failed_and_a_cancelled_call_are_no_longer_in_flight(served: Any) -> None:
    channel, spin, caller, _yields = served
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await get_device(channel)(devices_pb2.GetDeviceRequest(device_id="unreachable"), timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert spin.in_flight == 0
    call = get_device(channel)(devices_pb2.GetDeviceRequest(device_id="slow"), timeout=5)
    await asyncio.wait_for(caller.waiting.wait(), 5)
    assert spin.in_flight == 1 and not spin.spinning
    call.cancel()
    await wait_until(lambda: spin.in_flight == 0, within=5, what="the cancelled call to end")
