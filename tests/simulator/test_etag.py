"""Conditional reads: ETag on successful GETs, 304 on a matching If-None-Match."""

from __future__ import annotations

import httpx

from simulator import Simulator, SimulatorConfig


async def test_etag_revalidation() -> None:
    async with Simulator(SimulatorConfig(openframe_port=0, octospine_port=0, openframe_api_key="k")) as sim:
        headers = {"Authorization": "Bearer k"}
        async with httpx.AsyncClient(base_url=sim.openframe_url, headers=headers) as client:
            first = await client.get("/v1/devices/dev_001")
            etag = first.headers["ETag"]
            same = await client.get("/v1/devices/dev_001", headers={"If-None-Match": etag})
            assert (same.status_code, same.content, same.headers["ETag"]) == (304, b"", etag)
            other = await client.get("/v1/devices/dev_002", headers={"If-None-Match": etag})
            assert other.status_code == 200 and other.headers["ETag"] != etag
            await client.patch("/v1/alerts/alt_0001", json={"status": "resolved"})
            before = (await client.get("/v1/alerts/alt_0001")).headers["ETag"]
            await client.patch("/v1/alerts/alt_0001", json={"status": "acknowledged"})
            changed = await client.get("/v1/alerts/alt_0001", headers={"If-None-Match": before})
            assert changed.status_code == 200  # the resource changed: a new tag, the full answer
