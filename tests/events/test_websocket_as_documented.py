"""WebSocket streams in the shape the guides document, end to end through the
simulator and the real broker: ``{type, data}`` frames without id or timestamp
still move the backfill watermark (receipt time minus the safety margin), so a
drop is healed by backfill; a backfill route that answers 404 is dropped from
the stream's backfill with one warning instead of reconnecting forever."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider

from adapter.config.settings import Settings
from adapter.runtime import MeshAdapter
from simulator import Fault, Simulator, SimulatorConfig

from ..conftest import OCTOSPINE_KEY, OPENFRAME_KEY
from .kafka_fixtures import BOOTSTRAP, consume_all, wait_until
from .mesh_fixtures import headers, mesh_settings

pytest_plugins = ["tests.events.kafka_fixtures"]
pytestmark = pytest.mark.usefixtures("kafka_bootstrap")

MARGIN = 3.0


@pytest_asyncio.fixture
async def documented_sim() -> AsyncIterator[Simulator]:
    sim = Simulator(
        SimulatorConfig(
            openframe_api_key=OPENFRAME_KEY,
            octospine_api_key=OCTOSPINE_KEY,
            openframe_port=0,
            octospine_port=0,
            ws_event_shape="documented",
        )
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def _settings(sim: Simulator, tmp_path: Path, prefix: str) -> Settings:
    fast = {
        "ping_interval_seconds": 0.5,
        "stall_timeout_seconds": 1.0,
        "backoff_initial_seconds": 0.1,
        "backoff_max_seconds": 0.5,
        "watermark_margin_seconds": MARGIN,
    }
    settings: Settings = mesh_settings(
        sim, tmp_path, prefix, websockets={"openframe": fast, "octospine": fast}
    )
    return settings


async def test_documented_frames_move_the_watermark_and_a_drop_is_backfilled(
    documented_sim: Simulator, tmp_path: Path, prefix: str, tracer_provider: TracerProvider
) -> None:
    sim = documented_sim
    async with MeshAdapter(_settings(sim, tmp_path, prefix), tracer_provider=tracer_provider) as mesh:
        assert mesh.events is not None
        source = mesh.events.sources["openframe"]
        await asyncio.wait_for(source.streaming.wait(), 10)
        before = dt.datetime.now(dt.UTC)
        [live] = await sim.generate_events("openframe", "alert")
        assert set(orjson.loads(sim.hubs["openframe"].recent()[-1].text)) == {"type", "data"}
        await wait_until(lambda: source.counts["events"] >= 1, within=10, what="the live frame")
        mark = mesh.events.watermarks.get("openframe")
        assert mark is not None, "a frame without a timestamp must still set the watermark"
        after = dt.datetime.now(dt.UTC)
        # Receipt time minus the margin: between the two clocks read around it.
        margin = dt.timedelta(seconds=MARGIN)
        assert before - margin <= mark <= after - margin

        # The stream goes down (upgrades refused) while alerts change; it comes back.
        sim.faults.add(Fault(vendor="openframe", route="/v1/ws", status=503, times=3))
        sim.ws_drop("openframe")
        await wait_until(lambda: source.counts["reconnects"] >= 1, within=10, what="the drop")
        missed = [sim.openframe.alerts.create({"title": f"missed {i}", "severity": "low"}) for i in range(3)]
        await wait_until(source.streaming.is_set, within=20, what="streaming again")
        backfills = sim.find_requests(vendor="openframe", path="/v1/alerts")
        assert any(dict(r.query).get("updated_after") for r in backfills)

        records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=4, within=30)
        keys = [r.key.decode() for r in records]
        assert sorted(keys) == sorted([live["id"], *(a["id"] for a in missed)])  # none lost, none twice
        live_record = next(r for r in records if r.key == live["id"].encode())
        h = headers(live_record)
        assert h["ce_type"] == "io.openframe.alert"  # the documented frame names no action
        assert h["ce_time"]  # receipt time stands in for the missing timestamp


async def test_backfill_route_answering_404_is_dropped_with_one_warning(
    simulator: Simulator,
    tmp_path: Path,
    prefix: str,
    tracer_provider: TracerProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="adapter.events.backfill")
    settings = _settings(simulator, tmp_path, prefix)
    async with MeshAdapter(settings, tracer_provider=tracer_provider) as mesh:
        assert mesh.events is not None
        source = mesh.events.sources["openframe"]
        await asyncio.wait_for(source.streaming.wait(), 10)
        await simulator.generate_events("openframe", "alert")  # sets the watermark
        await wait_until(lambda: source.counts["events"] >= 1, within=10, what="a first event")
        # This deployment has no security-events endpoint.
        simulator.faults.add(Fault(vendor="openframe", method="GET", route="/v1/security-events", status=404))
        for drop in (1, 2):
            simulator.ws_drop("openframe")
            await wait_until(lambda: source.counts["reconnects"] >= drop, within=10, what="the drop")  # noqa: B023
            missed = simulator.openframe.alerts.create({"title": f"after drop {drop}", "severity": "low"})
            await wait_until(source.streaming.is_set, within=10, what="streaming again")
            records = await consume_all(BOOTSTRAP, f"{prefix}openframe.alerts", expected=1 + drop, within=30)
            assert missed["id"].encode() in {r.key for r in records}
        # One 404, one warning; the second reconnect did not ask again, and never gave up.
        assert len(simulator.find_requests(vendor="openframe", path="/v1/security-events")) == 1
        warnings = [r for r in caplog.records if "answered 404" in r.getMessage()]
        assert len(warnings) == 1 and "/v1/security-events" in warnings[0].getMessage()
        assert source.counts["reconnects"] == 2 and source.counts["backfill_failures"] == 0
        assert source.counts["backfill_disabled"] == 1
