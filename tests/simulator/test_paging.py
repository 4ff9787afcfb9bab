"""The three paging styles: walking every page returns every item once, in creation order."""

from __future__ import annotations

import httpx
import pytest

from simulator import Simulator
from tests.simulator.conftest import OF_KEY, StartSim


def _client(sim: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=sim.openframe_url, headers={"Authorization": f"Bearer {OF_KEY}"})


async def test_page_style_walk(start_sim: StartSim) -> None:
    sim = await start_sim(pagination="page")
    seen: list[str] = []
    async with _client(sim) as client:
        for page in range(1, 10):
            body = (await client.get("/v1/alerts", params={"page": page, "per_page": 7})).json()
            assert body["meta"] == {"page": page, "per_page": 7, "total": 40}
            if not body["data"]:
                break
            seen += [a["id"] for a in body["data"]]
    assert seen == [a["id"] for a in sim.state.openframe.alerts]


async def test_cursor_style_walk_survives_inserts_and_deletes(start_sim: StartSim) -> None:
    sim = await start_sim(pagination="cursor")
    seen: list[str] = []
    async with _client(sim) as client:
        params: dict[str, str | int] = {"limit": 15}
        while True:
            body = (await client.get("/v1/alerts", params=params)).json()
            assert set(body["meta"]) == {"next_cursor"}
            seen += [a["id"] for a in body["data"]]
            if len(seen) == 15:  # changes between pages do not disturb the walk
                await client.post("/v1/alerts", json={"title": "late", "severity": "low"})
                sim.state.openframe.alerts.delete("alt_0016")
            if body["meta"]["next_cursor"] is None:
                break
            params["cursor"] = body["meta"]["next_cursor"]
    assert seen == [a["id"] for a in sim.state.openframe.alerts]
    assert seen[-1] == "alt_0041"


async def test_offset_style_walk(start_sim: StartSim) -> None:
    sim = await start_sim(pagination="offset")
    seen: list[str] = []
    async with _client(sim) as client:
        for skip in range(0, 40, 12):
            body = (await client.get("/v1/devices", params={"skip": skip, "limit": 12})).json()
            assert body["meta"] == {"skip": skip, "limit": 12, "total": 25}
            seen += [d["id"] for d in body["data"]]
    assert seen == [d["id"] for d in sim.state.openframe.devices]


@pytest.mark.parametrize(
    ("style", "params", "status", "field"),
    [
        ("cursor", {"limit": "101"}, 400, "limit"),
        ("cursor", {"limit": "0"}, 400, "limit"),
        ("cursor", {"cursor": "not-a-cursor"}, 400, "cursor"),
        ("offset", {"skip": "-1"}, 400, "skip"),
        ("offset", {"limit": "500"}, 400, "limit"),
        ("page", {"page": "0"}, 400, "page"),
        ("page", {"per_page": "abc"}, 400, "per_page"),
    ],
)
async def test_bad_paging_parameters(
    start_sim: StartSim, style: str, params: dict[str, str], status: int, field: str
) -> None:
    sim = await start_sim(pagination=style)
    async with _client(sim) as client:
        response = await client.get("/v1/alerts", params=params)
    assert response.status_code == status
    assert response.json()["errors"][0]["field"] == field


async def test_per_page_above_max_is_clamped(start_sim: StartSim) -> None:
    sim = await start_sim(pagination="page")
    async with _client(sim) as client:
        body = (await client.get("/v1/alerts", params={"per_page": 500})).json()
    assert body["meta"]["per_page"] == 100
    assert len(body["data"]) == 40


async def test_other_styles_parameters_are_ignored(start_sim: StartSim) -> None:
    """An adapter paging in the wrong style gets the first page, not an error (drift)."""
    sim = await start_sim(pagination="cursor")
    async with _client(sim) as client:
        body = (await client.get("/v1/alerts", params={"page": 3, "per_page": 5})).json()
    assert body["data"][0]["id"] == "alt_0001"
    assert len(body["data"]) == 10
    assert body["meta"]["next_cursor"]
