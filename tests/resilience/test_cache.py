"""The response cache: TTL from the protos, ETag revalidation, invalidation by
writes to the same resource, bounded memory."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from openframe.v1 import devices_pb2, devices_pb2_grpc

from adapter.assembly.callers import build_credentials, build_upstream_caller
from adapter.descriptors.loader import load_service_specs
from adapter.resilience import ResponseCache, find_layer
from adapter.upstream.messages import UpstreamRequest

from .harness import StartSim, running_adapter, upstream_settings

pytestmark = pytest.mark.usefixtures("profile")

GET_DEVICE = "/v1/devices/{device_id}"
CACHE_ON = {"cache": {"enabled": True}}


async def _get_device(h, device_id: str = "dev_001") -> devices_pb2.Device:  # type: ignore[no-untyped-def]
    return await devices_pb2_grpc.DeviceServiceStub(h.channel).GetDevice(
        devices_pb2.GetDeviceRequest(device_id=device_id), timeout=2
    )


async def test_cacheable_read_is_served_from_memory_within_its_ttl(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim, resilience=CACHE_ON) as h:
        first = await _get_device(h)
        second = await _get_device(h)  # decoded from the kept body
        third = await _get_device(h)  # a copy of what the second decoded
        lookups = {a["result"]: v for a, v in h.metric("meshadapter.upstream.cache.lookups")}
    assert first == second == third and first.id == "dev_001"
    assert sim.count(route=GET_DEVICE) == 1
    assert lookups == {"miss": 1, "hit": 2}


async def test_expired_entry_is_fetched_again(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim, resilience={"cache": {"enabled": True, "max_ttl_seconds": 0.2}}) as h:
        await _get_device(h)
        cache = h.layer("openframe", ResponseCache)
        probe = UpstreamRequest(method="GET", path="/v1/devices/dev_001", route="GET /v1/devices/{device_id}")
        assert cache.is_fresh(probe)
        await sim.wait_for(lambda: not cache.is_fresh(probe), timeout_s=2)
        await _get_device(h)
    assert sim.count(route=GET_DEVICE) == 2


async def test_etag_revalidation_renews_without_a_body(start_sim: StartSim) -> None:
    sim = await start_sim()  # the simulator tags successful reads and answers 304 to a match
    async with running_adapter(sim, resilience={"cache": {"enabled": True, "max_ttl_seconds": 0.2}}) as h:
        first = await _get_device(h)
        cache = h.layer("openframe", ResponseCache)
        probe = UpstreamRequest(method="GET", path="/v1/devices/dev_001", route="GET /v1/devices/{device_id}")
        await sim.wait_for(lambda: not cache.is_fresh(probe), timeout_s=2)
        second = await _get_device(h)
        assert cache.is_fresh(probe)
        third = await _get_device(h)
        lookups = {a["result"]: v for a, v in h.metric("meshadapter.upstream.cache.lookups")}
    assert first == second == third
    first_req, second_req = sim.find_requests(route=GET_DEVICE)
    assert "If-None-Match" not in first_req.headers
    assert second_req.headers["If-None-Match"].startswith('"')
    assert second_req.status == 304
    assert lookups == {"miss": 1, "revalidated": 1, "hit": 1}


async def test_errors_are_not_cached(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim, resilience=CACHE_ON) as h:
        for _ in range(2):
            with pytest.raises(Exception, match="NOT_FOUND"):
                await _get_device(h, "dev_nope")
    assert sim.count(route=GET_DEVICE) == 2


async def test_cache_is_bounded(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with running_adapter(sim, resilience={"cache": {"enabled": True, "max_entries": 3}}) as h:
        for n in range(1, 6):
            await _get_device(h, f"dev_{n:03d}")
        cache = h.layer("openframe", ResponseCache)
        assert cache.entries == 3
        await _get_device(h, "dev_005")  # recent: still cached
        await _get_device(h, "dev_001")  # evicted first: fetched again
    assert sim.count(route=GET_DEVICE) == 6


async def test_writes_invalidate_the_resource_and_its_collection(start_sim: StartSim) -> None:
    sim = await start_sim()
    settings = upstream_settings(sim, resilience=CACHE_ON).upstreams["openframe"]
    # Make alert reads cacheable for this test: alerts, unlike devices, can be written.
    specs = [
        dataclasses.replace(m, cache_ttl_seconds=60) if m.http_method == "GET" else m
        for s in load_service_specs()
        if s.upstream == "openframe"
        for m in s.methods
    ]
    caller = build_upstream_caller(
        "openframe", settings, credentials=build_credentials("openframe", settings), methods=specs
    )
    cache = find_layer(caller, ResponseCache)
    assert cache is not None
    loop = asyncio.get_running_loop()
    headers = (("accept", "application/json"), ("content-type", "application/json"))
    one = UpstreamRequest(method="GET", path="/v1/alerts/alt_0001", route="GET /v1/alerts/{alert_id}")
    many = UpstreamRequest(method="GET", path="/v1/alerts", route="GET /v1/alerts", query=(("page", "1"),))
    patch = UpstreamRequest(
        method="PATCH",
        path="/v1/alerts/alt_0001",
        route="PATCH /v1/alerts/{alert.id}",
        body=b'{"status": "resolved"}',
        headers=headers,
    )
    try:
        for request in (one, many, one, many):
            assert (await caller.send(request, deadline=loop.time() + 2)).status == 200
        assert (sim.count(path="/v1/alerts/alt_0001"), sim.count(path="/v1/alerts")) == (1, 1)
        assert cache.entries == 2

        assert (await caller.send(patch, deadline=loop.time() + 2)).status == 200
        assert cache.entries == 0
        after = await caller.send(one, deadline=loop.time() + 2)
        await caller.send(many, deadline=loop.time() + 2)
    finally:
        await caller.aclose()
    assert b'"resolved"' in after.body
    assert sim.count(method="GET", path="/v1/alerts/alt_0001") == 2
    assert sim.count(method="GET", path="/v1/alerts") == 2
