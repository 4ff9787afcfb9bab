"""The collector tuned for serving: the startup heap leaves its sight (a full collection
gets cheap), and the cycle grpc.aio leaves behind each call no longer triggers a young
collection every few dozen calls."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from adapter.config.settings import Settings
from adapter.gc_tuning import YOUNG_GENERATION_THRESHOLD, tune_collector_for_serving
from adapter.runtime import MeshAdapter

pytestmark = pytest.mark.timeout(30)

METHOD = "/test.Echo/Echo"


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold, debug = gc.get_threshold(), gc.get_debug()
    try:
        yield
    finally:
        gc.set_debug(debug)
        gc.garbage.clear()
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.fixture
async def echo() -> AsyncIterator[Any]:
    """A plain grpc.aio server answering bytes with bytes, and a stub on a real channel."""

    async def answer(request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(answer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {"Echo": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel.unary_unary(METHOD)
    await server.stop(None)


def test_freezing_the_assembled_adapter_takes_it_out_of_full_collections(collector_restored: None) -> None:
    adapter = MeshAdapter(Settings())
    frozen_before = gc.get_freeze_count()
    try:
        tune_collector_for_serving()
        assert gc.get_freeze_count() > frozen_before + 10_000  # the adapter's objects, at least
        # What a full collection still walks (frozen objects are not listed): a tenth at most.
        tracked = len(gc.get_objects())
        assert tracked < gc.get_freeze_count() / 10, (tracked, gc.get_freeze_count())
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
    finally:
        del adapter


async def test_grpc_aio_leaves_a_cycle_behind_each_served_call(echo: Any, collector_restored: None) -> None:
    """Why the threshold is raised. When a grpc release stops leaving this garbage, this
    fails: measure the default threshold again (adapter/gc_tuning.py)."""
    await echo(b"warm")
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    for _ in range(50):
        assert await echo(b"x") == b"x"
    gc.collect()
    left = [type(o).__name__ for o in gc.garbage]
    assert left.count("_HandlerCallDetails") >= 50, sorted(set(left))


async def young_collections_during(calls: int, echo: Any) -> int:
    seen: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            seen.append(1)

    gc.collect()  # every generation's count back to zero
    gc.callbacks.append(note)
    try:
        for _ in range(calls):
            assert await echo(b"x") == b"x"
    finally:
        gc.callbacks.remove(note)
    return len(seen)


async def test_served_calls_no_longer_trigger_young_collections(echo: Any, collector_restored: None) -> None:
    await echo(b"warm")
    gc.set_threshold(700, 10, 10)  # CPython's default
    at_default = await young_collections_during(600, echo)
    tune_collector_for_serving()
    tuned = await young_collections_during(600, echo)
    assert at_default >= 1, "600 calls leave ~3,000 objects in cycles: more than 700"
    assert tuned == 0
